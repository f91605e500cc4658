"""The build job: sources -> rendered pairs -> partitioned Parquet + rejects + manifest.

Run it as ``instructmill build``, ``python -m jobs.build`` or ``spark-submit jobs/build.py``;
all three take the same arguments.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `spark-submit jobs/build.py`: make `jobs`/`udfs` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timezone
from functools import reduce
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import manifest as manifests
from jobs.config import ConfigError, RunPlan, load_plan
from jobs.dedup import DedupPlan, dedup_stage, without_dedup
from jobs.langid import langid_stage, ship_model, without_langid
from jobs.readers import read_source
from jobs.render import render_stage, with_source_metadata
from jobs.schema import messages_column, select_output, select_rejects
from jobs.session import JavaMissingError, build_session
from jobs.tagging import TagPlan, contamination_rejects, exclude_shared_sources, tag_stage
from jobs.writer import LOAD_DATE, remove_stale_partitions, write_partitioned
from udfs.records import stable_hash

log = logging.getLogger("instructmill")

EXIT_CONFIG = 2
EXIT_FAILED = 1
EXIT_UNRECONCILED = 3


def add_build_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--conf", required=True, help="pipeline YAML file")
    parser.add_argument("--output", help="output folder or URI (overrides the conf's `output`)")
    parser.add_argument("--master", help="Spark master URL (default: local[*], or spark-submit's)")
    parser.add_argument(
        "--run-date",
        type=date.fromisoformat,
        help="YYYY-MM-DD: a scheduled load; sets load_date and replaces exactly that date",
    )
    return parser


def run_context(plan: RunPlan, run_date: date | None) -> dict[str, Any]:
    started = datetime.now(timezone.utc)
    config_hash = stable_hash(str(plan.describe()), digest_size=4)
    return {
        "run_id": f"{started:%Y%m%dT%H%M%SZ}-{config_hash}",
        "started": started.isoformat(timespec="seconds"),
        "run_date": run_date.isoformat() if run_date else None,
        "load_date": (run_date or started.date()).isoformat(),
    }


def render_sources(spark: SparkSession, plan: RunPlan) -> DataFrame:
    """Every source read and rendered, unioned into one frame of rows and rejects."""
    frames = [
        read_source(spark, source)
        .transform(render_stage(source.render))
        .transform(with_source_metadata(source))
        for source in plan.sources
    ]
    return reduce(DataFrame.unionByName, frames)


def with_run_columns(run: dict[str, Any]) -> Any:
    def stage(frame: DataFrame) -> DataFrame:
        return frame.select(
            "*",
            F.lit(run["load_date"]).cast("date").alias(LOAD_DATE),
            F.lit(run["run_id"]).alias("run_id"),
        )

    return stage


def accepted_rows(frame: DataFrame) -> DataFrame:
    return frame.where(F.col("reason").isNull()).select("*", messages_column().alias("messages"))


def kept_rows(frame: DataFrame) -> DataFrame:
    return frame.where(~F.col("is_duplicate"))


def duplicate_rows(frame: DataFrame) -> DataFrame:
    return frame.where(F.col("is_duplicate"))


def rejected_rows(frame: DataFrame) -> DataFrame:
    return frame.where(F.col("reason").isNotNull())


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self.start = now - self.start, now
        return elapsed


def run_build(spark: SparkSession, plan: RunPlan, run: dict[str, Any]) -> dict[str, Any]:
    clock = Stopwatch()
    total_clock = Stopwatch()
    dated = run["run_date"] is not None
    data_path = f"{plan.output.rstrip('/')}/data"
    rejects_path = f"{plan.output.rstrip('/')}/rejects"
    duplicates_path = f"{plan.output.rstrip('/')}/duplicates"
    data_partitions = [LOAD_DATE, *plan.partition_by] if dated else list(plan.partition_by)
    reject_partitions = [LOAD_DATE, "source"] if dated else ["source"]
    load_date = date.fromisoformat(run["load_date"])

    read = manifests.count_read(spark, plan)
    log.info(
        "read: %s records from %d sources (%.1fs)",
        f"{sum(read.values()):,}",
        len(read),
        clock.lap(),
    )

    rendered = render_sources(spark, plan).transform(with_run_columns(run))
    if plan.langid is not None and plan.langid_model is not None:
        ship_model(spark, plan.langid_model, plan.langid)
        rendered = rendered.transform(langid_stage(plan.langid))
    else:
        rendered = rendered.transform(without_langid)
    # Persisted before the exclusion and dedup, which read it several times: the Python
    # stages (render, language ID) run once.
    rendered = rendered.transform(tag_stage(TagPlan.of(plan))).persist(StorageLevel.MEMORY_AND_DISK)
    base = rendered
    if plan.heldout_clusters and plan.exclude_shared_sources:
        rendered = rendered.transform(exclude_shared_sources)
    write_duplicates = plan.dedup is not None and plan.dedup.write_duplicates
    clustering = plan.dedup is not None or plan.decontaminating
    try:
        if clustering:
            settings = plan.dedup_settings
            dedup_plan = DedupPlan.of(
                settings,
                remove_duplicates=plan.dedup is not None,
                decontaminate=plan.decontaminating,
            )
            log.info(
                "dedup: threshold %.2f, %d permutations = %d bands x %d rows, scope %s%s",
                settings.threshold,
                settings.num_perm,
                dedup_plan.bands,
                dedup_plan.rows,
                settings.scope,
                "" if plan.dedup is not None else " (decontamination only)",
            )
            # The decisions joined onto the rows are persisted in their turn, and the rendered
            # rows they came from are released once the count below has materialized them.
            rendered = (
                rendered.transform(dedup_stage(dedup_plan))
                .transform(contamination_rejects)
                .persist(StorageLevel.MEMORY_AND_DISK)
            )
        else:
            # Constant columns over the persisted rows: nothing new to keep.
            rendered = rendered.transform(without_dedup)
        counts = manifests.count_rendered(rendered)
        if clustering:
            base.unpersist()
        log.info(
            "render: %s rows, %s rejected, %s duplicates (%.1fs)",
            f"{counts.kept:,}",
            f"{counts.rejected:,}",
            f"{sum(counts.duplicates.values()):,}",
            clock.lap(),
        )
        clusters = (
            manifests.cluster_summary(rendered.transform(accepted_rows))
            if plan.dedup is not None
            else None
        )
        shared_ids = manifests.count_shared_ids(
            rendered.transform(accepted_rows).transform(kept_rows)
        )
        for name, rows in sorted(shared_ids.items()):
            log.warning("render: %s: %s rows share their id with another row", name, f"{rows:,}")

        write_partitioned(
            rendered.transform(accepted_rows).transform(kept_rows).transform(select_output),
            data_path,
            data_partitions,
            counts.kept - sum(counts.duplicates.values()),
            plan.rows_per_file,
            plan.compression,
            dynamic=dated,
        )
        write_partitioned(
            rendered.transform(rejected_rows).transform(select_rejects),
            rejects_path,
            reject_partitions,
            counts.rejected,
            plan.rows_per_file,
            plan.compression,
            dynamic=dated,
        )
        if write_duplicates:
            write_partitioned(
                rendered.transform(accepted_rows)
                .transform(duplicate_rows)
                .transform(select_output),
                duplicates_path,
                reject_partitions,
                sum(counts.duplicates.values()),
                plan.rows_per_file,
                plan.compression,
                dynamic=dated,
            )
    finally:
        rendered.unpersist()
        base.unpersist()
    if dated:
        stale = [
            folder
            for path in (data_path, rejects_path, duplicates_path)
            for folder in remove_stale_partitions(spark, path, load_date, run["run_id"])
        ]
        for folder in stale:
            log.info("write: removed stale partition %s", folder)
    log.info("write: %s (%.1fs)", plan.output, clock.lap())

    date_folder = f"{LOAD_DATE}={load_date.isoformat()}" if dated else None
    written = manifests.count_on_disk(
        spark,
        data_path,
        "data",
        data_partitions,
        run["run_id"],
        ("source", "template_id", "task_cluster", "split"),
        date_folder,
    )
    rejected = manifests.count_on_disk(
        spark,
        rejects_path,
        "rejects",
        reject_partitions,
        run["run_id"],
        ("source", "template_id", "reason"),
        date_folder,
    )
    run = {
        **run,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(total_clock.lap(), 3),
        "spark": {
            "master": spark.sparkContext.master,
            "app_id": spark.sparkContext.applicationId,
            "version": spark.version,
        },
        "output": {
            "data": data_path,
            "rejects": rejects_path,
            "duplicates": duplicates_path if write_duplicates else None,
            "partition_by": data_partitions,
            "rejects_partition_by": reject_partitions,
        },
    }
    manifest = manifests.build_manifest(
        plan,
        run,
        read,
        written,
        rejected,
        shared_ids,
        duplicates=counts.duplicates,
        languages=counts.languages,
        clusters=clusters,
    )
    paths = manifests.write_manifest(spark, plan.output, manifest)
    log.info(
        "manifest: %s written, %s rejected, reconciled=%s -> %s",
        f"{manifest['totals']['written']:,}",
        f"{manifest['totals']['rejected']:,}",
        manifest["totals"]["reconciled"],
        paths[0],
    )
    return manifest


def config_failure(error: ConfigError) -> int:
    """Every command's answer to a config error: the message, exit code 2, no Spark."""
    print(f"config error:\n{error}", file=sys.stderr)
    return EXIT_CONFIG


def run_in_session(
    command: str, app_name: str, master: str | None, conf: dict[str, str],
    job: Callable[[SparkSession], int],
) -> int:  # fmt: skip
    """Every command's Spark run: start the session (one clear line and exit 1 when Java is
    missing), run ``job`` for its exit code, log any failure with its first line (exit 1),
    and stop the session whatever happens."""
    try:
        spark = build_session(app_name, master, conf)
    except JavaMissingError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    try:
        return job(spark)
    except Exception as exc:
        first_line = (str(exc).splitlines() or [""])[0]
        log.exception("%s failed: %s: %s", command, type(exc).__name__, first_line)
        return EXIT_FAILED
    finally:
        spark.stop()


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s instructmill %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    parser = add_build_arguments(
        argparse.ArgumentParser(prog="instructmill build", description=__doc__)
    )
    args = parser.parse_args(argv)
    return build_command(args)


def build_command(args: argparse.Namespace) -> int:
    configure_logging()
    try:
        plan = load_plan(args.conf, args.output)
    except ConfigError as exc:
        return config_failure(exc)
    log.info(
        "plan: %d sources, %d templates -> %s",
        len(plan.sources),
        sum(len(s.render.templates) for s in plan.sources),
        plan.output,
    )
    run = run_context(plan, args.run_date)

    def build(spark: SparkSession) -> int:
        manifest = run_build(spark, plan, run)
        print()
        print(manifests.summary_table(manifest))
        print(f"\nrun {manifest['run_id']}: data in {manifest['output']['data']}")
        print(f"manifest: {plan.output.rstrip('/')}/{manifests.MANIFEST_NAME}")
        problems = manifests.unreconciled(manifest)
        if problems:
            print("counts do not reconcile:\n  " + "\n  ".join(problems), file=sys.stderr)
            return EXIT_UNRECONCILED
        return 0

    name = f"instructmill build {run['run_id']}"
    return run_in_session("build", name, args.master, plan.spark_conf, build)


if __name__ == "__main__":
    sys.exit(main())
