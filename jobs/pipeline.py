"""Stages and the small runner that composes them.

A stage is a named ``DataFrame -> DataFrame`` function with the columns it needs and the
columns it adds; a command declares its stages as a list and :class:`StageRunner` applies them
in order, each under a Spark job description naming it. Spark is lazy, so most stages cost
nothing until something is materialised: the runner persists the frame after each stage
marked ``materialise`` (later stages read it several times), counts it under a description
naming the stages whose work that count runs (``render+sign+langid+tag``), times it, and
releases the frame materialised before it. Writes and aggregates after the stages are timed
and named the same way with :meth:`StageRunner.step`.

A step's seconds are kept only when it ran a Spark job (its job group has one): a stage that
only planned costs nothing then, and its work is timed in the step that materialises it.
The Python time inside a materialised pass is split by stage with :class:`jobs.task_clock`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from jobs.failures import in_stage
from jobs.io.staging import Staging
from jobs.progress import describe

log = logging.getLogger("instructmill")
_STEP_NUMBERS = itertools.count(1)


@dataclass(frozen=True)
class Stage:
    name: str
    transform: Callable[[DataFrame], DataFrame]
    needs: tuple[str, ...] = ()  # columns the stage reads
    adds: tuple[str, ...] = ()  # columns it adds (or replaces)
    materialise: bool = False  # persist and count the frame after this stage

    def apply(self, frame: DataFrame) -> DataFrame:
        missing = [name for name in self.needs if name not in frame.columns]
        if missing:
            raise ValueError(
                f"stage {self.name!r} needs the columns {missing}, which the frame before it "
                f"does not have (it has {frame.columns})"
            )
        result = frame.transform(self.transform)
        absent = [name for name in self.adds if name not in result.columns]
        if absent:
            raise ValueError(f"stage {self.name!r} should add the columns {absent}")
        return result


class StageRunner:
    """Runs one command's stages; use it as a context manager, so the frames it persisted are
    released whatever happens."""

    def __init__(self, spark: SparkSession, command: str, staging: Staging | None = None) -> None:
        self.spark = spark
        self.command = command
        # With a staging folder, a materialised frame is written there once and read back
        # (jobs.io.staging) instead of being persisted.
        self.staging = staging
        self.seconds: dict[str, float] = {}
        # Steps that only planned (no Spark job ran in them): their seconds, summed.
        self.planning_seconds = 0.0
        self._persisted: list[DataFrame] = []

    def __enter__(self) -> StageRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Spark jobs started inside are described as ``instructmill command: name`` (the
        Spark UI, the progress bar) and grouped, so the step's time is kept only when one ran."""
        context = self.spark.sparkContext
        # Unique in the session: a group's job list outlives the runner that named it.
        group = f"instructmill-{self.command}-{next(_STEP_NUMBERS)}"
        label = f"instructmill {self.command}: {name}"
        context.setJobGroup(group, label)
        describe(context, label)
        started = time.perf_counter()
        try:
            # A failure names the stage and its cause, not only Py4J's call id.
            with in_stage(self.command, name):
                yield
        finally:
            spent = time.perf_counter() - started
            if context.statusTracker().getJobIdsForGroup(group):
                self.seconds[name] = self.seconds.get(name, 0.0) + spent
            else:
                self.planning_seconds += spent
            context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
            describe(context, f"instructmill {self.command}")

    def run(
        self, frame: DataFrame, stages: Sequence[Stage], upstream: Sequence[str] = ()
    ) -> DataFrame:
        """``upstream``: the lazy work ``frame`` already holds (``read+render``), named with
        the stages of the first materialised step, whose count runs it."""
        pending: list[str] = list(upstream)
        for stage in stages:
            # Most stages only plan here; some (dedup's graph rounds) run jobs of their own.
            with self.step(stage.name):
                frame = stage.apply(frame)
            pending.append(stage.name)
            if stage.materialise:
                frame = self.materialise(frame, "+".join(pending), stage.name)
                pending = []
        return frame

    def materialise(self, frame: DataFrame, name: str, last: str | None = None) -> DataFrame:
        """Stage (or persist) and count ``frame``; a frame persisted before it is then
        released (its rows are in this one)."""
        if self.staging is not None and self.staging.root is not None:
            with self.step(name):
                staged = self.staging.keep(frame, f"after-{(last or name).replace(' ', '-')}")
                rows = staged.count()
            log.info("%s: %s rows staged (%.1fs)", name, f"{rows:,}", self.seconds.get(name, 0))
            return staged
        persisted = frame.persist(StorageLevel.MEMORY_AND_DISK)
        with self.step(name):
            rows = persisted.count()
        log.info("%s: %s rows (%.1fs)", name, f"{rows:,}", self.seconds.get(name, 0))
        self.release()
        self._persisted.append(persisted)
        return persisted

    def release(self) -> None:
        for frame in self._persisted:
            frame.unpersist()
        self._persisted.clear()
