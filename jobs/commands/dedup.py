"""``instructmill dedup``: an existing build output in, a deduplicated copy out.

It reads ``INPUT/data`` (the rows carry ``dedup_text``, the text the build compared), decides
again with the given settings (a new threshold, scope or representative rule), and writes
``OUTPUT/data`` partitioned as the input was, ``OUTPUT/duplicates`` when asked (with the train
rows removed as near-duplicates of held-out ones), and ``OUTPUT/_manifest.json``, where for
every source ``read = written + duplicates + contaminates_heldout`` on disk.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import ConfigError, DedupConfig, PipelineConfig, load_dedup_config
from jobs.io.outputs import existing_layout, read_data, write_json
from jobs.io.writer import write_partitioned
from jobs.layout import OutputLayout
from jobs.manifests.counts import cluster_summary, per_source
from jobs.manifests.dedup import DedupManifest
from jobs.pipeline import Stage, StageRunner
from jobs.report import report_after_run
from jobs.runner import EXIT_OK, EXIT_UNRECONCILED, config_failure, configure_logging, run_command
from jobs.schema import duplicate_rows, select_output, unique_rows
from jobs.stages.dedup import DECISION_COLUMNS, DedupPlan, dedup_stage

# The copy is laid out as a build with default settings would lay it out.
ROWS_PER_FILE: int = PipelineConfig.model_fields["rows_per_file"].default
COMPRESSION: str = PipelineConfig.model_fields["compression"].default


def undecided(frame: DataFrame) -> DataFrame:
    """Written rows without the build's decisions, as accepted rows again."""
    return frame.drop(*DECISION_COLUMNS).select("*", F.lit(None).cast("string").alias("reason"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_dedup(
    spark: SparkSession, settings: DedupConfig, input_path: str, output_path: str
) -> DedupManifest:
    started = _now()
    source, build_manifest = existing_layout(spark, input_path)
    target = OutputLayout(output_path, source.data_partitions)
    # The output's held-out rows stay first in their clusters, and (unless the build turned
    # decontamination off) a train row a new threshold now finds near one is removed.
    pipeline = build_manifest.get("config", {}).get("pipeline", {})
    plan = DedupPlan.of(settings, decontaminate=bool(pipeline.get("decontaminate", True)))
    rows = read_data(spark, source)
    read = per_source(rows)
    stages = [
        Stage("undecided", undecided, adds=("reason",)),
        Stage("dedup", dedup_stage(plan), adds=DECISION_COLUMNS, materialise=True),
    ]
    with StageRunner(spark, "dedup") as runner:
        decided = runner.run(rows, stages)
        contaminates = F.col("contaminates_heldout")
        with runner.step("count"):
            duplicates = per_source(decided.transform(duplicate_rows))
            contaminated = per_source(decided.where(contaminates))
            clusters = cluster_summary(decided)
        written = decided.transform(unique_rows).where(~contaminates)
        removed = decided.where(F.col("is_duplicate") | contaminates)
        with runner.step("write data"):
            write_partitioned(written.transform(select_output), target.data,
                              list(target.data_partitions), sum(read.values()), ROWS_PER_FILE,
                              COMPRESSION)  # fmt: skip
        if settings.write_duplicates:
            with runner.step("write duplicates"):
                write_partitioned(removed.transform(select_output), target.duplicates,
                                  list(target.reject_partitions),
                                  sum(duplicates.values()) + sum(contaminated.values()),
                                  ROWS_PER_FILE, COMPRESSION)  # fmt: skip
    manifest = DedupManifest.counted(
        read, per_source(read_data(spark, target)), duplicates, contaminated,
        started=started, finished=_now(), input=input_path, clusters=clusters,
        output={"data": target.data, "partition_by": list(target.data_partitions)},
        dedup={**settings.model_dump(mode="json"), "bands": plan.bands, "rows": plan.rows},
    )  # fmt: skip
    write_json(spark, target.manifest, manifest.to_dict())
    return manifest


def dedup_command(args: argparse.Namespace) -> int:
    configure_logging()
    try:
        settings = load_dedup_config(args.conf) if args.conf else DedupConfig()
    except ConfigError as exc:
        return config_failure(exc)

    def dedup(spark: SparkSession) -> int:
        manifest = run_dedup(spark, settings, args.input, args.output)
        report = report_after_run(spark, "dedup", args.output)
        print(manifest.summary())
        print(f"manifest: {OutputLayout(args.output).manifest}")
        if report is not None:
            print(f"report: {report}")
        return EXIT_OK if manifest.reconciled else EXIT_UNRECONCILED

    return run_command("dedup", "instructmill dedup", args.master, {}, dedup)
