"""The mixture job: a build output in, a sampled mixture of it out.

    instructmill mix --conf mixture.yaml --input out/demo --output out/demo-mix [--master URL]

Also runs as ``python -m jobs.mix_job`` and ``spark-submit jobs/mix_job.py``. It reads
``INPUT/data`` (partition columns from the input's ``_manifest.json``), keeps the config's
split, caps, plans and samples (``jobs.mixture`` documents the semantics), and writes
``OUTPUT/data`` partitioned as the input was. Rows keep their columns as the build wrote them
(``run_id`` stays the build's: lineage). ``OUTPUT/_mixture.json`` holds the config, the counts
and the per group / language / cell tables; a copy is written as ``OUTPUT/_manifest.json`` so the
mixture is itself an input for ``instructmill mix`` or ``instructmill dedup`` (which read the
layout from it).

Counts (each from its own aggregate, so that they check the job rather than restate it):
``read`` on the input, ``other_split`` by the split filter, ``capped`` = rows of the split
minus rows after caps, ``not_sampled`` by the sampling decision, ``written`` on disk after the
write; ``read = written + other_split + capped + not_sampled``, else exit 3. Exit 2: config
error (including a column the output does not have), 1: failure.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `spark-submit jobs/mix_job.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from jobs import hadoop_fs
from jobs import manifest as manifests
from jobs.build import (
    EXIT_FAILED,
    EXIT_UNRECONCILED,
    config_failure,
    configure_logging,
    run_in_session,
)
from jobs.config import ConfigError, MixtureConfig, load_mixture_config
from jobs.dedup_job import partition_columns, read_data
from jobs.mixture import (
    GROUP,
    KEEP,
    LANGUAGE,
    Cell,
    MixturePlan,
    cap_stage,
    cell_stage,
    check_columns,
    decide_stage,
    has_caps,
    in_split,
    language_column,
    largest_cap,
    plan_for,
    probability_frame,
    report_tables,
    sampled_rows,
    share_table,
    split_stage,
)
from jobs.schema import select_output
from jobs.writer import write_partitioned
from udfs.records import stable_hash

log = logging.getLogger("instructmill")

MIXTURE_NAME = "_mixture.json"
GROUP_LIMIT_THRESHOLD = "spark.sql.optimizer.windowGroupLimitThreshold"


def add_mix_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--conf", required=True, help="mixture YAML (caps, groups, languages...)")
    parser.add_argument("--input", required=True, help="a build output folder (holds data/)")
    parser.add_argument("--output", required=True, help="where the mixture goes")
    parser.add_argument("--master", help="Spark master (default: spark-submit's, else local[*])")
    return parser


@contextmanager
def group_limit_threshold(spark: SparkSession, config: MixtureConfig) -> Iterator[None]:
    """Raise the largest limit Spark turns into a partial top-k to the largest cap, for this
    run only: Spark's default (1000) is below typical caps (FLAN: 5k-30k), and without it every
    row of a huge task is shuffled to one task just to be ranked and dropped."""
    if config.caps is None or not has_caps(config.caps):
        yield
        return
    before = spark.conf.get(GROUP_LIMIT_THRESHOLD)
    spark.conf.set(GROUP_LIMIT_THRESHOLD, str(max(int(before or 0), largest_cap(config.caps))))
    try:
        yield
    finally:
        spark.conf.set(GROUP_LIMIT_THRESHOLD, before)


def cell_counts(frame: DataFrame, *extra: str) -> dict[tuple[Any, ...], int]:
    return manifests.count_by(frame, GROUP, LANGUAGE, *extra)


def run_id_for(config: MixtureConfig, input_path: str, started: datetime) -> str:
    digest = stable_hash(json.dumps([config.model_dump(mode="json"), input_path]), digest_size=4)
    return f"{started:%Y%m%dT%H%M%SZ}-{digest}"


def pool_frame(rows: DataFrame, config: MixtureConfig) -> DataFrame:
    """The split's rows after caps, with their cells: what planning counts and sampling draws."""
    return (
        rows.transform(split_stage(config.split))
        .transform(cap_stage(config.caps, config.seed))
        .transform(cell_stage(config.groups.by, language_column(config)))
    )


def run_mix(
    spark: SparkSession, config: MixtureConfig, input_path: str, output_path: str
) -> dict[str, Any]:
    """The mixture written to ``OUTPUT/data`` and its manifest (returned and written)."""
    check_columns(config)
    started = datetime.now(timezone.utc)
    partition_cols = partition_columns(spark, input_path)
    data_in = f"{input_path.rstrip('/')}/data"
    data_out = f"{output_path.rstrip('/')}/data"
    rows = read_data(spark, data_in, partition_cols)
    by_split = manifests.count_by(rows.select(in_split(config.split).alias("in_split")), "in_split")
    read = sum(by_split.values())
    other_split = by_split.get((False,), 0)
    log.info("read: %d rows, %d of another split", read, other_split)
    with group_limit_threshold(spark, config):
        pool = pool_frame(rows, config).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            available: dict[Cell, int] = {
                (g, lang): n for (g, lang), n in cell_counts(pool).items()
            }
            plan = plan_for(config, available)
            log.info(
                "plan: %d cells, %d rows after caps, target %.0f rows",
                len(plan.cells),
                plan.available,
                plan.target_rows,
            )
            if config.total is not None and config.total > plan.target_rows + 0.5:
                log.warning(
                    "total %d is more than the %.0f rows the weighted groups have: taking all",
                    config.total,
                    plan.target_rows,
                )
            decided = pool.transform(
                decide_stage(probability_frame(spark, plan.probabilities()), config.seed)
            )
            decisions = cell_counts(decided, KEEP)
            write_partitioned(
                decided.transform(sampled_rows).transform(select_output),
                data_out,
                partition_cols,
                max(1, math.ceil(plan.target_rows)),
                config.rows_per_file,
                config.compression,
                dynamic=False,
            )
        finally:
            pool.unpersist()
    written = {
        (g, lang): n
        for (g, lang), n in cell_counts(
            read_data(spark, data_out, partition_cols).transform(
                cell_stage(config.groups.by, language_column(config))
            )
        ).items()
    }
    manifest = mixture_manifest(
        config,
        plan,
        run={
            "run_id": run_id_for(config, input_path, started),
            "started": started.isoformat(timespec="seconds"),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "input": input_path,
            "output": {"data": data_out, "partition_by": partition_cols},
        },
        counts={
            "read": read,
            "other_split": other_split,
            "capped": read - other_split - plan.available,
            "not_sampled": sum(n for (_, _, keep), n in decisions.items() if not keep),
            "written": sum(written.values()),
        },
        written=written,
    )
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    for name in (MIXTURE_NAME, manifests.MANIFEST_NAME):
        hadoop_fs.write_text(spark, f"{output_path.rstrip('/')}/{name}", text)
    return manifest


def mixture_manifest(
    config: MixtureConfig,
    plan: MixturePlan,
    run: dict[str, Any],
    counts: dict[str, int],
    written: dict[Cell, int],
) -> dict[str, Any]:
    counts = {
        **counts,
        "reconciled": counts["read"]
        == counts["written"] + counts["other_split"] + counts["capped"] + counts["not_sampled"],
    }
    return {
        "job": "mix",
        **run,
        "config": config.model_dump(mode="json"),
        "total": {
            "requested": plan.total_requested,
            "planned": round(plan.total, 2),
            "target_rows": round(plan.target_rows, 2),
        },
        "counts": counts,
        **report_tables(plan, written),
    }


def summary(manifest: dict[str, Any]) -> str:
    counts = manifest["counts"]
    verdict = "reconciled" if counts["reconciled"] else "DOES NOT RECONCILE"
    return "\n\n".join(
        [
            share_table(manifest["groups"], "group"),
            share_table(manifest["languages"], "language"),
            f"read {counts['read']:,} = written {counts['written']:,} + other split "
            f"{counts['other_split']:,} + capped {counts['capped']:,} + not sampled "
            f"{counts['not_sampled']:,}: {verdict}",
        ]
    )


def execute(spark: SparkSession, config: MixtureConfig, input_path: str, output_path: str) -> int:
    """Run, print the summary, and give the exit code (the session stays open)."""
    try:
        manifest = run_mix(spark, config, input_path, output_path)
    except ConfigError as exc:
        return config_failure(exc)
    except Exception as exc:
        first_line = (str(exc).splitlines() or [""])[0]
        log.exception("mix failed: %s: %s", type(exc).__name__, first_line)
        return EXIT_FAILED
    print()
    print(summary(manifest))
    print(f"\nmixture {manifest['run_id']}: data in {manifest['output']['data']}")
    print(f"manifest: {output_path.rstrip('/')}/{MIXTURE_NAME}")
    if not manifest["counts"]["reconciled"]:
        print("counts do not reconcile", file=sys.stderr)
        return EXIT_UNRECONCILED
    return 0


def mix_command(args: argparse.Namespace) -> int:
    configure_logging()
    try:
        config = load_mixture_config(args.conf)
        check_columns(config)
    except ConfigError as exc:
        return config_failure(exc)
    return run_in_session(
        "mix", "instructmill mix", args.master, {},
        lambda spark: execute(spark, config, args.input, args.output),
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = add_mix_arguments(
        argparse.ArgumentParser(prog="instructmill mix", description=__doc__)
    )
    return mix_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
