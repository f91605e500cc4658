"""``instructmill mix``: a build output in, a sampled mixture of it out.

It reads ``INPUT/data`` (partition columns from the input's ``_manifest.json``), keeps the
config's split, caps, plans and samples (``jobs.stages.mixture`` and ``udfs.mixture_plan``
document the semantics), and writes ``OUTPUT/data`` partitioned as the input was. Rows keep
their columns as the build wrote them (``run_id`` stays the build's: lineage).
``OUTPUT/_mixture.json`` holds the config, the counts and the per group / language / cell
tables; a copy is written as ``OUTPUT/_manifest.json`` so the mixture is itself an input for
``instructmill mix`` or ``instructmill dedup`` (which read the layout from it).

Counts (each from its own aggregate, so that they check the job rather than restate it):
``read`` on the input, ``other_split`` by the split filter, ``capped`` = rows of the split
minus rows after caps, ``not_sampled`` by the sampling decision, ``written`` on disk after the
write; ``read = written + other_split + capped + not_sampled``, else exit 3. Exit 2: config
error (including a column the output does not have), 1: failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from jobs.config import ConfigError, MixtureConfig, check_columns, load_mixture_config
from jobs.io.outputs import existing_layout, read_data, write_json
from jobs.io.writer import write_partitioned
from jobs.layout import OutputLayout
from jobs.manifests.counts import count_by
from jobs.manifests.mix import MixCounts, MixManifest
from jobs.pipeline import Stage, StageRunner
from jobs.report import report_after_run
from jobs.runner import (
    EXIT_OK,
    EXIT_UNRECONCILED,
    config_failure,
    configure_logging,
    run_command,
    run_job,
)
from jobs.schema import select_output
from jobs.stages.mixture import (
    GROUP,
    KEEP,
    LANGUAGE,
    cap_stage,
    cell_stage,
    has_caps,
    in_split,
    language_alpha,
    language_column,
    largest_cap,
    probability_frame,
    sample_stage,
    sampled_rows,
    split_stage,
)
from udfs.mixture_plan import Cell, MixturePlan, MixturePlanError, plan_mixture
from udfs.records import stable_hash

log = logging.getLogger("instructmill")

GROUP_LIMIT_THRESHOLD = "spark.sql.optimizer.windowGroupLimitThreshold"


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
    return count_by(frame, GROUP, LANGUAGE, *extra)


def run_id_for(config: MixtureConfig, input_path: str, started: datetime) -> str:
    digest = stable_hash(json.dumps([config.model_dump(mode="json"), input_path]), digest_size=4)
    return f"{started:%Y%m%dT%H%M%SZ}-{digest}"


def pool_stages(config: MixtureConfig) -> list[Stage]:
    """The split's rows after caps, with their cells: what planning counts and sampling
    draws from (materialised: both read it)."""
    return [
        Stage("split", split_stage(config.split)),
        Stage("caps", cap_stage(config.caps, config.seed)),
        Stage("cells", cell_stage(config.groups.by, language_column(config)),
              adds=(GROUP, LANGUAGE), materialise=True),
    ]  # fmt: skip


def plan_for(config: MixtureConfig, counts: Mapping[Cell, int]) -> MixturePlan:
    try:
        return plan_mixture(
            counts, config.groups.weights, config.groups.default_weight,
            language_alpha(config), config.total,
        )  # fmt: skip
    except MixturePlanError as exc:
        raise ConfigError(str(exc)) from None


def _sample(
    runner: StageRunner, pool: DataFrame, config: MixtureConfig, target: OutputLayout
) -> tuple[MixturePlan, dict[tuple[Any, ...], int]]:
    """Plan from the pool's cell counts, sample, write; the plan and the decision counts."""
    plan = plan_for(config, {(g, lang): n for (g, lang), n in cell_counts(pool).items()})
    log.info("plan: %d cells, %d rows after caps, target %.0f rows",
             len(plan.cells), plan.available, plan.target_rows)  # fmt: skip
    if config.total is not None and config.total > plan.target_rows + 0.5:
        log.warning("total %d is more than the %.0f rows the weighted groups have: taking all",
                    config.total, plan.target_rows)  # fmt: skip
    probabilities = probability_frame(runner.spark, plan.probabilities())
    decided = pool.transform(sample_stage(probabilities, config.seed))
    decisions = cell_counts(decided, KEEP)
    with runner.step("write data"):
        write_partitioned(
            decided.transform(sampled_rows).transform(select_output), target.data,
            list(target.data_partitions), max(1, math.ceil(plan.target_rows)),
            config.rows_per_file, config.compression,
        )  # fmt: skip
    return plan, decisions


def run_mix(
    spark: SparkSession, config: MixtureConfig, input_path: str, output_path: str
) -> MixManifest:
    """The mixture written to ``OUTPUT/data`` and its manifest (returned and written)."""
    check_columns(config)
    started = datetime.now(timezone.utc)
    source, _ = existing_layout(spark, input_path)
    target = OutputLayout(output_path, source.data_partitions)
    rows = read_data(spark, source)
    by_split = count_by(rows.select(in_split(config.split).alias("in_split")), "in_split")
    read, other_split = sum(by_split.values()), by_split.get((False,), 0)
    log.info("read: %d rows, %d of another split", read, other_split)
    with group_limit_threshold(spark, config), StageRunner(spark, "mix") as runner:
        pool = runner.run(rows, pool_stages(config))
        plan, decisions = _sample(runner, pool, config, target)
    celled = read_data(spark, target).transform(
        cell_stage(config.groups.by, language_column(config))
    )
    written: dict[Cell, int] = {(g, lang): n for (g, lang), n in cell_counts(celled).items()}
    manifest = MixManifest(
        run_id=run_id_for(config, input_path, started),
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        input=input_path,
        output={"data": target.data, "partition_by": list(target.data_partitions)},
        config=config.model_dump(mode="json"),
        plan=plan,
        counts=MixCounts(
            read=read,
            other_split=other_split,
            capped=read - other_split - plan.available,
            not_sampled=sum(n for (_, _, keep), n in decisions.items() if not keep),
            written=sum(written.values()),
        ),
        written=written,
    )
    document = manifest.to_dict()
    for path in (target.mixture_manifest, target.manifest):
        write_json(spark, path, document)
    return manifest


def _mix_job(
    config: MixtureConfig, input_path: str, output_path: str
) -> Callable[[SparkSession], int]:
    def mix(spark: SparkSession) -> int:
        manifest = run_mix(spark, config, input_path, output_path)
        report = report_after_run(spark, "mix", output_path)
        print()
        print(manifest.summary())
        print(f"\nmixture {manifest.run_id}: data in {manifest.output['data']}")
        print(f"manifest: {OutputLayout(output_path).mixture_manifest}")
        if report is not None:
            print(f"report: {report}")
        if not manifest.counts.reconciled:
            print("counts do not reconcile", file=sys.stderr)
            return EXIT_UNRECONCILED
        return EXIT_OK

    return mix


def execute(spark: SparkSession, config: MixtureConfig, input_path: str, output_path: str) -> int:
    """Run, print the summary, and give the exit code (the session stays open)."""
    return run_job(spark, "mix", _mix_job(config, input_path, output_path))


def mix_command(args: argparse.Namespace) -> int:
    configure_logging()
    try:
        config = load_mixture_config(args.conf)
        check_columns(config)
    except ConfigError as exc:
        return config_failure(exc)
    job = _mix_job(config, args.input, args.output)
    return run_command("mix", "instructmill mix", args.master, {}, job)
