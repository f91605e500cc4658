"""The dedup stage as its own job: an existing build output in, a deduplicated copy out.

    instructmill dedup --input out/demo --output out/demo-dedup [--conf dedup.yaml]

It reads ``INPUT/data`` (the rows carry ``dedup_text``, the text the build compared), decides
again with the given settings (a new threshold, scope or representative rule), and writes
``OUTPUT/data`` partitioned as the input was, ``OUTPUT/duplicates`` when asked (with the train
rows removed as near-duplicates of held-out ones), and ``OUTPUT/_manifest.json``, where for
every source ``read = written + duplicates + contaminates_heldout`` on disk.
Also runs as ``python -m jobs.dedup_job`` and ``spark-submit jobs/dedup_job.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `spark-submit jobs/dedup_job.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import hadoop_fs
from jobs import manifest as manifests
from jobs.build import (
    EXIT_UNRECONCILED,
    config_failure,
    configure_logging,
    duplicate_rows,
    kept_rows,
    run_in_session,
)
from jobs.config import ConfigError, DedupConfig, PipelineConfig, load_dedup_config
from jobs.dedup import DECISION_COLUMNS, DedupPlan, dedup_stage
from jobs.schema import OUTPUT_SCHEMA, select_output
from jobs.writer import write_partitioned

log = logging.getLogger("instructmill")

# The copy is laid out as a build with default settings would lay it out.
ROWS_PER_FILE: int = PipelineConfig.model_fields["rows_per_file"].default
COMPRESSION: str = PipelineConfig.model_fields["compression"].default


def add_dedup_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--input", required=True, help="a build output folder (holds data/)")
    parser.add_argument("--output", required=True, help="where the deduplicated copy goes")
    parser.add_argument(
        "--conf", help="YAML with the dedup settings (a pipeline conf's `dedup:` or the mapping)"
    )
    parser.add_argument("--master", help="Spark master (default: spark-submit's, else local[*])")
    return parser


def input_manifest(spark: SparkSession, input_path: str) -> dict[str, Any]:
    """The input's ``_manifest.json``, or {} when it has none."""
    manifest = f"{input_path.rstrip('/')}/{manifests.MANIFEST_NAME}"
    if hadoop_fs.exists(spark, manifest):
        return json.loads(hadoop_fs.read_text(spark, manifest))  # type: ignore[no-any-return]
    return {}


def partition_columns(spark: SparkSession, input_path: str) -> list[str]:
    """How the input is partitioned: from its manifest, else the build's default."""
    columns = input_manifest(spark, input_path).get("output", {}).get("partition_by")
    if columns:
        return list(columns)
    return list(PipelineConfig.model_fields["partition_by"].default_factory())  # type: ignore[misc]


def decontaminates(spark: SparkSession, input_path: str) -> bool:
    """Whether the build that wrote the input removed train rows near held-out ones."""
    pipeline = input_manifest(spark, input_path).get("config", {}).get("pipeline", {})
    return bool(pipeline.get("decontaminate", True))


def read_data(spark: SparkSession, data_path: str, partition_cols: list[str]) -> DataFrame:
    frame = manifests.read_back(spark, data_path, OUTPUT_SCHEMA, partition_cols, None)
    if frame is None:
        raise FileNotFoundError(f"{data_path}: no build output here (expected Parquet in data/)")
    return frame


def per_source(frame: DataFrame) -> dict[str, int]:
    return {key[0]: count for key, count in manifests.count_by(frame, "source").items()}


def run_dedup(
    spark: SparkSession, settings: DedupConfig, input_path: str, output_path: str
) -> dict[str, Any]:
    started = datetime.now(timezone.utc)
    partition_cols = partition_columns(spark, input_path)
    data_in = f"{input_path.rstrip('/')}/data"
    data_out = f"{output_path.rstrip('/')}/data"
    duplicates_out = f"{output_path.rstrip('/')}/duplicates"
    # The output's held-out rows stay first in their clusters, and (unless the build turned
    # decontamination off) a train row a new threshold now finds near one is removed.
    plan = DedupPlan.of(settings, decontaminate=decontaminates(spark, input_path))
    rows = read_data(spark, data_in, partition_cols)
    read = per_source(rows)
    decided = (
        rows.drop(*DECISION_COLUMNS)
        .select("*", F.lit(None).cast("string").alias("reason"))
        .transform(dedup_stage(plan))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        duplicates = per_source(decided.transform(duplicate_rows))
        contaminated = per_source(decided.where(F.col("contaminates_heldout")))
        clusters = manifests.cluster_summary(decided)
        write_partitioned(
            decided.transform(kept_rows)
            .where(~F.col("contaminates_heldout"))
            .transform(select_output),
            data_out,
            partition_cols,
            sum(read.values()),
            ROWS_PER_FILE,
            COMPRESSION,
            dynamic=False,
        )
        if settings.write_duplicates:
            write_partitioned(
                decided.where(F.col("is_duplicate") | F.col("contaminates_heldout")).transform(
                    select_output
                ),
                duplicates_out,
                ["source"],
                sum(duplicates.values()) + sum(contaminated.values()),
                ROWS_PER_FILE,
                COMPRESSION,
                dynamic=False,
            )
    finally:
        decided.unpersist()
    written = per_source(read_data(spark, data_out, partition_cols))
    sources = {
        name: {
            "read": read[name],
            "written": written.get(name, 0),
            "duplicates": duplicates.get(name, 0),
            "contaminates_heldout": contaminated.get(name, 0),
            "reconciled": read[name]
            == written.get(name, 0) + duplicates.get(name, 0) + contaminated.get(name, 0),
        }
        for name in sorted(read)
    }
    manifest = {
        "job": "dedup",
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": input_path,
        "output": {"data": data_out, "partition_by": partition_cols},
        "dedup": {**settings.model_dump(mode="json"), "bands": plan.bands, "rows": plan.rows},
        "sources": sources,
        "totals": {
            "read": sum(read.values()),
            "written": sum(written.values()),
            "duplicates": sum(duplicates.values()),
            "contaminates_heldout": sum(contaminated.values()),
            "reconciled": all(entry["reconciled"] for entry in sources.values()),
        },
        "dedup_clusters": clusters,
    }
    hadoop_fs.write_text(
        spark,
        f"{output_path.rstrip('/')}/{manifests.MANIFEST_NAME}",
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
    )
    return manifest


def dedup_command(args: argparse.Namespace) -> int:
    configure_logging()
    try:
        settings = load_dedup_config(args.conf) if args.conf else DedupConfig()
    except ConfigError as exc:
        return config_failure(exc)

    def dedup(spark: SparkSession) -> int:
        manifest = run_dedup(spark, settings, args.input, args.output)
        for name, entry in manifest["sources"].items():
            print(
                f"{name}: read {entry['read']:,} = written {entry['written']:,} + duplicates "
                f"{entry['duplicates']:,}{'' if entry['reconciled'] else '  DOES NOT RECONCILE'}"
            )
        print(f"manifest: {args.output.rstrip('/')}/{manifests.MANIFEST_NAME}")
        return 0 if manifest["totals"]["reconciled"] else EXIT_UNRECONCILED

    return run_in_session("dedup", "instructmill dedup", args.master, {}, dedup)


def main(argv: Sequence[str] | None = None) -> int:
    parser = add_dedup_arguments(
        argparse.ArgumentParser(prog="instructmill dedup", description=__doc__)
    )
    return dedup_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
