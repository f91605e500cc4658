"""Which run a build is: a new one, or a stopped one resumed.

A run's identity (``run_id``, start, dates) is kept in its staging folder
(``_staging/<run_id>/_run.json``), with the hash of the config it was planned with. ``--resume
RUN_ID`` continues that run; a ``--run-date`` rerun continues the stopped run of the same date
and config on its own, because that is what a scheduler's retry means. A resumed run keeps its
``run_id``, so its rows are the rows the uninterrupted run would have written.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timezone

from pyspark.sql import SparkSession

from jobs.config import ConfigError, RunPlan
from jobs.io import commit as commits
from jobs.layout import OutputLayout
from jobs.manifests.build import BuildRun
from udfs.records import stable_hash

log = logging.getLogger("instructmill")


def config_hash(plan: RunPlan) -> str:
    return stable_hash(str(plan.describe()), digest_size=4)


def run_context(plan: RunPlan, run_date: date | None) -> BuildRun:
    """A new run."""
    started = datetime.now(timezone.utc)
    return BuildRun(
        run_id=f"{started:%Y%m%dT%H%M%SZ}-{config_hash(plan)}",
        started=started.isoformat(timespec="seconds"),
        run_date=run_date,
        load_date=run_date or started.date(),
    )


def _from_record(record: dict[str, str | None]) -> BuildRun:
    run_date = record.get("run_date")
    return BuildRun(
        run_id=str(record["run_id"]),
        started=str(record["started"]),
        run_date=date.fromisoformat(run_date) if run_date else None,
        load_date=date.fromisoformat(str(record["load_date"])),
    )


def _stopped_run_of_date(
    spark: SparkSession, layout: OutputLayout, plan: RunPlan, run_date: date
) -> BuildRun | None:
    """The newest stopped run of ``run_date`` with this config, which has not begun its
    commit (a half-done commit is finished instead, by ``jobs.io.commit.recover``)."""
    for run_id in reversed(commits.leftover_runs(spark, layout)):
        record = commits.read_run_record(spark, layout, run_id)
        if (
            record.get("run_date") == run_date.isoformat()
            and record.get("config_hash") == config_hash(plan)
            and not commits.is_committing(spark, layout, run_id)
        ):
            return _from_record(record)
    return None


def resolve_run(
    spark: SparkSession,
    plan: RunPlan,
    layout: OutputLayout,
    run_date: date | None,
    resume: str | None,
) -> tuple[BuildRun, bool]:
    """The run to carry out, and whether it resumes a stopped one."""
    if resume:
        record = commits.read_run_record(spark, layout, resume)
        if not record:
            runs = ", ".join(commits.leftover_runs(spark, layout)) or "none"
            raise ConfigError(
                f"--resume {resume}: no stopped run of that id under {layout.staging_root} "
                f"(stopped runs there: {runs})"
            )
        if record.get("config_hash") != config_hash(plan):
            raise ConfigError(
                f"--resume {resume}: that run was planned with another config (hash "
                f"{record.get('config_hash')}, this one {config_hash(plan)}); run without "
                "--resume to start afresh"
            )
        run = _from_record(record)
        if run.run_date != run_date:
            raise ConfigError(
                f"--resume {resume}: that run's --run-date was {run.run_date}, not {run_date}"
            )
        return run, True
    if run_date is not None:
        stopped = _stopped_run_of_date(spark, layout, plan, run_date)
        if stopped is not None:
            log.warning("resume: run %s of %s stopped before its commit; continuing it",
                        stopped.run_id, run_date)  # fmt: skip
            return stopped, True
    return run_context(plan, run_date), False


def record_run(spark: SparkSession, layout: OutputLayout, plan: RunPlan, run: BuildRun) -> None:
    commits.write_run_record(
        spark, layout, run.run_id, {**run.to_dict(), "config_hash": config_hash(plan)}
    )
