"""``instructmill export``: a build (or mixture) output in, the files a trainer loads out.

It reads ``INPUT/data`` through the input's manifest (``jobs.io.outputs``), keeps the rows of
``--split`` and ``--where`` (a Spark SQL filter over the output's columns), and writes each
row in a format (``jobs.exports.formats``) as JSON Lines (optionally gzip) or, for the TRL
formats, Parquet: per split a known number of balanced files, ``data/{split}-{i:05d}-of-
{n:05d}.{ext}`` (the LLaMA-Factory formats: ``data/{split}/...``, a folder per split), the same
bytes on every run (``jobs.exports.shards``). Beside them go the Hub dataset card
``README.md``, LLaMA-Factory's ``dataset_info.json`` for alpaca and sharegpt
(``jobs.exports.card``) and ``_export.json``, the export's manifest.

Everything is written under ``OUTPUT/_staging-export`` and moved in when complete. An earlier
export in ``OUTPUT`` (it has ``_export.json``) is replaced; any other non-empty folder is
refused. Counts: rows selected (one aggregate, by split and id bucket, which also sizes the
files), rows written (the files read back); ``written = selected`` per split, else exit 3.
Exit 2: a config error (an unknown ``--columns`` name, a ``--where`` Spark cannot analyse, an
option the format does not take, a folder that is not an export), 1: failure.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import ConfigError
from jobs.exports import card, shards
from jobs.exports.formats import (
    COMPRESSIONS,
    FILE_FORMATS,
    FORMATS,
    JSONL,
    ExportFormat,
    check_request,
    export_columns,
)
from jobs.io import hadoop_fs
from jobs.io.outputs import existing_layout, read_data, write_json
from jobs.manifests.counts import count_by
from jobs.pipeline import StageRunner
from jobs.runner import (
    EXIT_OK,
    EXIT_UNRECONCILED,
    MASTER_HELP,
    config_failure,
    configure_logging,
    run_command,
    run_job,
)

DEFAULT_SHARD_ROWS = 100_000
SPLITS = ("train", "heldout")
SPLIT_CHOICES = (*SPLITS, "all")
STAGING = "_staging-export"
EXPORT_MANIFEST = "_export.json"
CARD = "README.md"
DATASET_INFO = "dataset_info.json"
# What an export puts in its folder, and so what replacing an earlier export removes.
PUBLISHED = ("data", CARD, DATASET_INFO)


@dataclass(frozen=True)
class ExportRequest:
    input: str
    output: str
    format: str
    split: str = "all"
    columns: tuple[str, ...] = ()
    shard_rows: int = DEFAULT_SHARD_ROWS
    where: str | None = None
    compression: str | None = None
    file_format: str = JSONL

    @property
    def root(self) -> str:
        return self.output.rstrip("/")

    @property
    def staged(self) -> str:
        return f"{self.root}/{STAGING}"

    def check(self) -> ExportFormat:
        return check_request(
            self.format, self.columns, self.file_format, self.compression, self.shard_rows
        )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def select_rows(rows: DataFrame, split: str, where: str | None) -> DataFrame:
    """The rows to export; a ``where`` Spark cannot parse or analyse is a config error."""
    if split not in SPLIT_CHOICES:
        raise ConfigError(f"--split {split!r}: one of {', '.join(SPLIT_CHOICES)}")
    chosen = rows if split == "all" else rows.where(F.col("split") == split)
    if where is None:
        return chosen
    try:
        return chosen.where(where)
    except AnalysisException as exc:
        reason = str(exc).strip().splitlines()[0]
        raise ConfigError(
            f"--where {where!r}: not a Spark SQL filter over the output's columns: {reason}"
        ) from None


def export_splits(split: str, found: set[str]) -> list[str]:
    """The splits the export lists: the one asked for, or train, heldout and any other the
    rows hold (an empty one is listed with 0 rows)."""
    if split != "all":
        return [split]
    return [*SPLITS, *sorted(found - set(SPLITS))]


def check_target(spark: SparkSession, root: str) -> None:
    """Refuse a folder that holds something other than an earlier export (or one a failed
    export left half-moved: it still has its staging folder)."""
    names = hadoop_fs.children(spark, root)
    if not names or EXPORT_MANIFEST in names or STAGING in names:
        return
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    raise ConfigError(
        f"--output {root}: the folder is not empty and holds no earlier export (no "
        f"{EXPORT_MANIFEST}): {shown}. Export into a new or empty folder."
    )


def publish(spark: SparkSession, root: str) -> None:
    """Move the staged export in: the old manifest goes first and the new one comes last, so a
    folder with ``_export.json`` always holds a whole export."""
    staged = f"{root}/{STAGING}"
    for name in (EXPORT_MANIFEST, *PUBLISHED):
        hadoop_fs.delete(spark, f"{root}/{name}")
    for name in hadoop_fs.children(spark, staged):
        if name != EXPORT_MANIFEST:
            hadoop_fs.rename(spark, f"{staged}/{name}", f"{root}/{name}")
    hadoop_fs.rename(spark, f"{staged}/{EXPORT_MANIFEST}", f"{root}/{EXPORT_MANIFEST}")
    hadoop_fs.delete(spark, staged)


def split_entries(
    plans: Sequence[shards.SplitShards], extension: str, written: dict[str, int]
) -> dict[str, dict[str, Any]]:
    entries = {}
    for plan in plans:
        files = [{"path": name, "rows": written.get(name, 0)} for name in plan.names(extension)]
        rows = sum(file["rows"] for file in files)
        entries[plan.split] = {
            "folder": plan.folder,
            "selected": plan.rows,
            "written": rows,
            "files": files,
            "reconciled": rows == plan.rows,
        }
    return entries


def export_manifest(
    request: ExportRequest,
    chosen: ExportFormat,
    source: dict[str, Any],
    splits: dict[str, dict[str, Any]],
    counts: card.Counts,
    started: str,
) -> dict[str, Any]:
    entries = splits.values()
    return {
        "job": "export",
        "started": started,
        "finished": _now(),
        "input": request.input,
        "input_job": source.get("job", "build"),
        "input_run_id": source.get("run_id"),
        "output": request.output,
        "format": chosen.name,
        "format_summary": chosen.summary,
        "file_format": request.file_format,
        "compression": request.compression,
        "split": request.split,
        "where": request.where,
        "columns": list(request.columns),
        "shard_rows": request.shard_rows,
        "splits": splits,
        "totals": {
            "selected": sum(e["selected"] for e in entries),
            "written": sum(e["written"] for e in entries),
            "files": sum(len(e["files"]) for e in entries),
            "reconciled": all(e["reconciled"] for e in entries),
        },
        "rows_by": {key: card.totals(counts, key) for key in card.COUNT_KEYS[1:]},
        "card": CARD,
        "dataset_info": DATASET_INFO if chosen.llama_factory else None,
    }


def _write_documents(
    spark: SparkSession, staged: str, manifest: dict[str, Any], counts: card.Counts
) -> None:
    hadoop_fs.write_text(spark, f"{staged}/{CARD}", card.dataset_card(manifest, counts))
    info = card.dataset_info(manifest)
    if info is not None:
        write_json(spark, f"{staged}/{DATASET_INFO}", info)
    write_json(spark, f"{staged}/{EXPORT_MANIFEST}", manifest)


def _export(
    spark: SparkSession, request: ExportRequest, chosen: ExportFormat
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], card.Counts]:
    """The split entries of the manifest, the input's manifest and the exported rows'
    counts."""
    layout, source = existing_layout(spark, request.input)
    rows = select_rows(read_data(spark, layout), request.split, request.where)
    fields = export_columns(chosen, request.columns)
    ext = shards.extension(request.file_format, request.compression)
    with StageRunner(spark, "export") as runner:
        with runner.step("count"):
            buckets = count_by(
                rows.select("split", shards.bucket_column().alias(shards.BUCKET)),
                "split",
                shards.BUCKET,
            )
            counts = count_by(rows, *card.COUNT_KEYS)
        splits = export_splits(request.split, {split for split, _ in buckets})
        plans = shards.plan_shards(buckets, splits, request.shard_rows, chosen.folder)
        numbered = shards.assign_files(rows, shards.offsets_frame(spark, plans, buckets))
        with runner.step("write"):
            names = shards.write_shards(
                numbered, fields, plans, request.staged, request.file_format, request.compression
            )
        with runner.step("read back"):
            schema = rows.select(*fields).schema
            written = shards.count_written(
                spark, request.staged, names, request.file_format, schema
            )
    return split_entries(plans, ext, written), source, counts


def run_export(
    spark: SparkSession,
    input_path: str,
    output_path: str,
    fmt: str,
    split: str = "all",
    columns: Sequence[str] = (),
    shard_rows: int = DEFAULT_SHARD_ROWS,
    where: str | None = None,
    compression: str | None = None,
    file_format: str = JSONL,
) -> dict[str, Any]:
    """Export, and give the export's manifest (also written as ``OUTPUT/_export.json``)."""
    request = ExportRequest(
        input_path, output_path, fmt, split, tuple(columns), shard_rows, where, compression,
        file_format,
    )  # fmt: skip
    chosen = request.check()
    started = _now()
    check_target(spark, request.root)
    hadoop_fs.delete(spark, request.staged)  # a failed export's leftovers
    entries, source, counts = _export(spark, request, chosen)
    manifest = export_manifest(request, chosen, source, entries, counts, started)
    _write_documents(spark, request.staged, manifest, counts)
    shards.drop_checksums(spark, request.staged)
    publish(spark, request.root)
    return manifest


def summary(manifest: dict[str, Any]) -> str:
    lines = []
    for split, entry in manifest["splits"].items():
        verdict = "" if entry["reconciled"] else "  DOES NOT RECONCILE"
        lines.append(
            f"{split}: selected {entry['selected']:,} = written {entry['written']:,} in "
            f"{len(entry['files'])} file(s){verdict}"
        )
    documents = [CARD, *([manifest["dataset_info"]] if manifest["dataset_info"] else [])]
    lines.append(
        f"export: {manifest['output']} ({manifest['format']}, {', '.join(documents)}, "
        f"{EXPORT_MANIFEST})"
    )
    return "\n".join(lines)


def _request(args: argparse.Namespace) -> ExportRequest:
    return ExportRequest(
        args.input, args.output, args.format, args.split, tuple(args.columns), args.shard_rows,
        args.where, args.compression, args.file_format,
    )  # fmt: skip


def _export_job(request: ExportRequest) -> Callable[[SparkSession], int]:
    def export(spark: SparkSession) -> int:
        manifest = run_export(
            spark, request.input, request.output, request.format, request.split,
            request.columns, request.shard_rows, request.where, request.compression,
            request.file_format,
        )  # fmt: skip
        print(summary(manifest))
        return EXIT_OK if manifest["totals"]["reconciled"] else EXIT_UNRECONCILED

    return export


def execute(spark: SparkSession, args: argparse.Namespace) -> int:
    """Run the parsed command on ``spark``, print the summary, give the exit code (the
    session stays open)."""
    return run_job(spark, "export", _export_job(_request(args)))


def export_command(args: argparse.Namespace) -> int:
    configure_logging()
    request = _request(args)
    try:
        request.check()
    except ConfigError as exc:
        return config_failure(exc)
    return run_command("export", "instructmill export", args.master, {}, _export_job(request))


def _names(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="a build or mixture output folder")
    parser.add_argument("--format", required=True, choices=list(FORMATS), help="row format")
    parser.add_argument(
        "--output", required=True, help="the export folder: new, empty or an earlier export"
    )
    parser.add_argument("--split", choices=SPLIT_CHOICES, default="all", help="default: all")
    parser.add_argument(
        "--columns",
        type=_names,
        default=(),
        help="a,b: output columns kept beside the pair (e.g. id,language,source)",
    )
    parser.add_argument(
        "--shard-rows",
        type=int,
        default=DEFAULT_SHARD_ROWS,
        help=f"most rows per file (default {DEFAULT_SHARD_ROWS:,}); files are balanced",
    )
    parser.add_argument(
        "--where", help="a Spark SQL filter over the output's columns, e.g. \"language = 'sw'\""
    )
    parser.add_argument("--compression", choices=COMPRESSIONS, help="JSON Lines only")
    parser.add_argument(
        "--file-format",
        choices=FILE_FORMATS,
        default=JSONL,
        help="jsonl (default) or parquet (the trl-* formats only)",
    )
    parser.add_argument("--master", help=MASTER_HELP)
    parser.set_defaults(handler=export_command)
