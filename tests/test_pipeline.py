"""The house the commands live in: the stage runner (column checks, materialisation, job
descriptions), the build's declared stage list, the output layout, the typed manifests'
reconciliation and the one table formatter."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import pyarrow as pa
import pytest

from jobs.failures import StageError
from jobs.layout import OutputLayout
from jobs.manifests.build import SourceCounts
from jobs.manifests.dedup import DedupSourceCounts
from jobs.manifests.mix import MixCounts
from jobs.manifests.table import format_table
from tests.conftest import ROOT


def test_output_layout_of_a_dated_build() -> None:
    layout = OutputLayout.for_run("s3a://bucket/run/", ["language", "task_cluster"], None)
    assert layout.data == "s3a://bucket/run/data"
    assert layout.rejects == "s3a://bucket/run/rejects"
    assert layout.manifest == "s3a://bucket/run/_manifest.json"
    assert layout.manifest_history("r1") == "s3a://bucket/run/_manifests/r1.json"
    assert layout.data_partitions == ("language", "task_cluster")
    assert layout.reject_partitions == ("source",)
    assert layout.date_folder is None and not layout.dated
    dated = OutputLayout.for_run("/out", ("language",), date(2026, 11, 20))
    assert dated.data_partitions == ("load_date", "language")
    assert dated.reject_partitions == ("load_date", "source")
    assert dated.date_folder == "load_date=2026-11-20"
    assert OutputLayout("/out").mixture_manifest == "/out/_mixture.json"


def source_counts(**changes: Any) -> SourceCounts:
    fields: dict[str, Any] = {
        "read": 10, "templates_per_record": 2, "written": 15, "rejected": 3,
        "rejected_by_reason": {"missing_field": 3}, "duplicates": 2, "shared_ids": 0,
        "task_clusters": {"nli": 12, "unassigned": 3}, "splits": {"train": 15},
        "langid": {"mismatched": 0}, "templates": {},
    }  # fmt: skip
    return SourceCounts(**{**fields, **changes})


def test_each_manifest_reconciles_by_its_own_formula() -> None:
    counts = source_counts()
    assert counts.rows == 20 and counts.unassigned == 3 and counts.reconciled
    assert counts.to_dict()["reconciled"] is True
    assert list(counts.to_dict())[:3] == ["read", "templates_per_record", "rows"]
    assert not source_counts(written=14).reconciled
    assert DedupSourceCounts(10, 7, 2, 1).reconciled
    assert not DedupSourceCounts(10, 7, 2, 0).to_dict()["reconciled"]
    assert MixCounts(read=10, other_split=2, capped=3, not_sampled=1, written=4).reconciled
    assert not MixCounts(read=10, other_split=2, capped=3, not_sampled=1, written=5).reconciled


def test_table_formatter_aligns_numbers_right_and_names_left() -> None:
    table = format_table(
        ("name", "rows", "note"), [("a", 1234, "x"), ("bb", 5, "")], ("T", 1239, "")
    )
    lines = table.splitlines()
    assert lines[0] == "name   rows  note"
    assert lines[2] == "a     1,234  x"
    assert lines[3] == "bb        5"
    assert lines[1] == lines[4] == "----  -----  ----"
    assert lines[5] == "T     1,239"


@pytest.mark.spark
def test_runner_checks_columns_names_jobs_and_releases_what_it_persisted(spark: Any) -> None:
    from pyspark.sql import functions as F

    from jobs.pipeline import Stage, StageRunner

    descriptions: list[str | None] = []

    def described(frame: Any) -> Any:
        descriptions.append(spark.sparkContext.getLocalProperty("spark.job.description"))
        return frame.withColumn("double", F.col("id") * 2)

    frame = spark.range(10)
    stages = [Stage("double", described, needs=("id",), adds=("double",), materialise=True)]
    with StageRunner(spark, "test") as runner:
        result = runner.run(frame, stages)
        assert result.is_cached
        assert sorted(r["double"] for r in result.collect()) == list(range(0, 20, 2))
        assert set(runner.seconds) == {"double"}
    assert not result.is_cached
    assert descriptions == ["instructmill test: double"]
    # Jobs after a step are still named: after the command.
    assert spark.sparkContext.getLocalProperty("spark.job.description") == "instructmill test"
    # A failure names its stage (jobs.failures.StageError), the check's own error as cause.
    with pytest.raises(StageError, match=r"stage 'late' needs the columns \['missing'\]"):
        StageRunner(spark, "test").run(frame, [Stage("late", lambda f: f, needs=("missing",))])
    with pytest.raises(StageError, match=r"stage 'lazy' should add the columns \['new'\]"):
        StageRunner(spark, "test").run(frame, [Stage("lazy", lambda f: f, adds=("new",))])


def test_the_demo_build_reads_like_the_design_flow() -> None:
    from jobs.commands.build import build_stages, run_context
    from jobs.config import load_plan
    from jobs.io.staging import Staging

    plan = load_plan(ROOT / "conf" / "demo.yaml")
    # Planning the stages starts no Spark job: the staging folder is only used when they run.
    staging = Staging(None, "/nonexistent/_staging/run")  # type: ignore[arg-type]
    stages = build_stages(plan, run_context(plan, None), staging)
    names = [stage.name for stage in stages]
    assert names == [
        "run columns", "sign", "langid", "tag", "keys", "exclude", "decontaminate", "dedup",
        "held-out near-duplicates", "exact repeats",
    ]  # fmt: skip
    # The wide rows are staged once, after the last stage that adds to them.
    assert [stage.name for stage in stages if stage.materialise] == ["tag"]


@pytest.mark.spark
def test_steps_keep_the_seconds_of_the_jobs_they_ran_and_the_clock_splits_a_pass(
    spark: Any,
) -> None:
    from pyspark.sql import functions as F

    from jobs.pipeline import Stage, StageRunner
    from jobs.task_clock import TaskClock, spent

    clock = TaskClock(spark.sparkContext)
    meter = clock.meter("slow")

    def slow(values: pa.Array) -> pa.Array:
        with spent(meter):
            time.sleep(0.2)
            return values

    udf = F.arrow_udf(slow, "long")
    stages = [
        Stage("plan only", lambda f: f.withColumn("x", udf(F.col("id")))),
        Stage("also plan", lambda f: f.withColumn("y", F.col("x") + 1), materialise=True),
    ]
    with StageRunner(spark, "test") as runner:
        runner.run(spark.range(8, numPartitions=2), stages, upstream=("read",))
    # The stages only planned: their time is planning, the pass is timed where it ran.
    assert set(runner.seconds) == {"read+plan only+also plan"}
    assert runner.planning_seconds < runner.seconds["read+plan only+also plan"]
    # Two partitions, one Arrow batch each: each task spent at least 0.2 s in the stage.
    assert clock.seconds()["slow"] >= 0.4


@pytest.mark.spark
def test_the_progress_bar_names_the_step_that_runs(spark: Any) -> None:
    import io
    import threading

    from pyspark.sql import functions as F

    from jobs.pipeline import StageRunner
    from jobs.progress import ConsoleProgress, progress_line

    def slow(values: pa.Array) -> pa.Array:
        time.sleep(1.5)
        return values

    udf = F.arrow_udf(slow, "long")
    stream = io.StringIO()
    progress = ConsoleProgress(spark.sparkContext, stream).start()
    seen: list[str | None] = []

    def poll() -> None:
        time.sleep(1.0)
        seen.append(progress_line(spark.sparkContext, "label"))

    poller = threading.Thread(target=poll)
    with StageRunner(spark, "test") as runner, runner.step("slow step"):
        poller.start()
        spark.range(4, numPartitions=2).select(udf(F.col("id")).alias("id")).collect()
    poller.join()
    progress.stop()
    assert "[instructmill test: slow step | stage " in stream.getvalue()
    assert seen[0] is not None and "/ 2]" in seen[0]  # two tasks in the stage
    assert "\r" not in stream.getvalue()  # a log, not a terminal: whole lines
