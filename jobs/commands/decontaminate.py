"""``instructmill decontaminate``: an existing build output in, a copy without the train
records that overlap new benchmarks (or the output's own held-out rows) out.

It reads ``INPUT/data`` (the rows carry ``dedup_text``, the fields their templates insert,
and ``split``), runs the build's n-gram check with the given ``decontamination:`` settings,
and writes ``OUTPUT/data`` partitioned as the input was, ``OUTPUT/rejects`` (the
contaminated rows, with the benchmark, item and n-gram in their detail) and
``OUTPUT/_manifest.json``, where for every source ``read = written + contaminated`` on disk,
with the source x benchmark matrix the build reports.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import ConfigError, PipelineConfig
from jobs.config.plan import DecontaminationRun, load_decontamination_config
from jobs.io.outputs import existing_layout, read_back, read_data, write_json
from jobs.io.staging import Staging
from jobs.io.writer import write_partitioned
from jobs.layout import OutputLayout
from jobs.manifests.counts import per_source
from jobs.pipeline import Stage, StageRunner
from jobs.report import report_after_run
from jobs.runner import EXIT_OK, EXIT_UNRECONCILED, config_failure, configure_logging, run_command
from jobs.schema import REJECT_SCHEMA, is_accepted, rejected_rows, select_output, select_rejects
from jobs.stages.decontaminate import (
    DECONTAMINATION_INPUTS,
    Decontamination,
    DecontaminationPlan,
)

ROWS_PER_FILE: int = PipelineConfig.model_fields["rows_per_file"].default
COMPRESSION: str = PipelineConfig.model_fields["compression"].default
REJECT_STATE = ("stage", "reason", "detail", "record", "source_file")


def unchecked(frame: DataFrame) -> DataFrame:
    """Written rows as accepted rows again (no reject state yet)."""
    return frame.select("*", *[F.lit(None).cast("string").alias(name) for name in REJECT_STATE])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _reconciled(read: dict[str, int], written: dict[str, int], rejected: dict[str, int]) -> dict:
    sources = {}
    for name in sorted(read):
        entry = {"read": read[name], "written": written.get(name, 0),
                 "contaminated": rejected.get(name, 0)}  # fmt: skip
        entry["reconciled"] = entry["read"] == entry["written"] + entry["contaminated"]
        sources[name] = entry
    return sources


def run_decontaminate(
    spark: SparkSession, settings: DecontaminationRun, input_path: str, output_path: str
) -> dict[str, Any]:
    """The manifest of the decontaminated copy."""
    started = _now()
    source, _ = existing_layout(spark, input_path)
    target = OutputLayout(output_path, source.data_partitions)
    run_id = f"decontaminate-{started}"
    staging = Staging(spark, target.staging(run_id.replace(":", "")))
    plan = DecontaminationPlan(settings.config, settings.benchmarks, settings.config.heldout)
    checks = Decontamination(plan, staging)
    rows = read_data(spark, source)
    read = per_source(rows)
    stages = [
        Stage("unchecked", unchecked, adds=REJECT_STATE),
        Stage("decontaminate", checks.stage, DECONTAMINATION_INPUTS),
    ]
    with StageRunner(spark, "decontaminate", staging) as runner:
        checked = runner.run(rows, stages)
        with runner.step("write data"):
            write_partitioned(
                checked.where(is_accepted()).transform(select_output), target.data,
                list(target.data_partitions), sum(read.values()), ROWS_PER_FILE, COMPRESSION,
            )  # fmt: skip
        with runner.step("write rejects"):
            write_partitioned(
                checked.transform(rejected_rows).transform(select_rejects), target.rejects,
                list(target.reject_partitions), sum(read.values()), ROWS_PER_FILE,
                COMPRESSION,
            )  # fmt: skip
        with runner.step("count"):
            found = checks.report()
            written = per_source(read_data(spark, target))
            rejects = read_back(spark, target.rejects, REJECT_SCHEMA, target.reject_partitions)
            rejected = per_source(rejects) if rejects is not None else {}
        staging.remove()
    sources = _reconciled(read, written, rejected)
    totals = {key: sum(entry[key] for entry in sources.values())
              for key in ("read", "written", "contaminated")}  # fmt: skip
    manifest = {
        "job": "decontaminate",
        "started": started,
        "finished": _now(),
        "input": input_path,
        "output": {
            "data": target.data,
            "rejects": target.rejects,
            "partition_by": list(target.data_partitions),
        },
        "decontamination_settings": settings.describe(),
        "sources": sources,
        "totals": {**totals, "reconciled": all(e["reconciled"] for e in sources.values())},
        "decontamination": found,
    }
    write_json(spark, target.manifest, manifest)
    return manifest


def summary(manifest: dict[str, Any]) -> str:
    lines = [
        f"{name}: read {entry['read']:,} = written {entry['written']:,} + contaminated "
        f"{entry['contaminated']:,}{'' if entry['reconciled'] else '  DOES NOT RECONCILE'}"
        for name, entry in manifest["sources"].items()
    ]
    for name, entry in (manifest["decontamination"] or {}).get("sets", {}).items():
        lines.append(
            f"{name}: {entry['items']:,} items ({entry['bad_lines']:,} bad lines skipped), "
            f"{entry['found_in_train']:,} found in train, {entry['contaminated_records']:,} "
            "train records removed"
        )
    return "\n".join(lines)


def decontaminate_command(args: argparse.Namespace) -> int:
    configure_logging()
    try:
        settings = load_decontamination_config(args.conf)
    except ConfigError as exc:
        return config_failure(exc)

    def decontaminate(spark: SparkSession) -> int:
        manifest = run_decontaminate(spark, settings, args.input, args.output)
        report = report_after_run(spark, "decontaminate", args.output)
        print(summary(manifest))
        print(f"manifest: {OutputLayout(args.output).manifest}")
        if report is not None:
            print(f"report: {report}")
        return EXIT_OK if manifest["totals"]["reconciled"] else EXIT_UNRECONCILED

    return run_command(
        "decontaminate", "instructmill decontaminate", args.master, {}, decontaminate
    )
