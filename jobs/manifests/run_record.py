"""The sections of a build manifest about the run rather than its counts: the steps'
seconds and staged datasets, and the Spark session that ran it."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from jobs.io.staging import Staging
from jobs.pipeline import StageRunner
from jobs.task_clock import TaskClock


def stage_record(
    runner: StageRunner, staging: Staging, resume: bool, clock: TaskClock
) -> dict[str, Any]:
    """Each step's seconds (the steps that ran Spark jobs; a materialised step is named by
    the stages it ran), the executor seconds of the staged pass's Python stages, and each
    staged dataset's fate (written, or reused by a resume)."""
    return {
        "resumed": resume,
        "seconds": {name: round(value, 3) for name, value in runner.seconds.items()},
        "planning_seconds": round(runner.planning_seconds, 3),
        "task_seconds": clock.seconds(),
        "datasets": dict(staging.datasets),
    }


def spark_record(spark: SparkSession) -> dict[str, str]:
    context = spark.sparkContext
    return {"master": context.master, "app_id": context.applicationId, "version": spark.version}
