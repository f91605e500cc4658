"""Executor seconds per stage inside one materialised pass.

The build renders, signs, identifies languages and tags in one pass over the wide rows (one
count runs them all), so the driver's clock can only time the pass. Each stage's Python code
adds the seconds it spent to a Spark accumulator instead: summed over tasks on every executor,
they say how the pass's work splits (``render``, ``sign``, ``langid``). These are task seconds,
not wall seconds: with N cores busy they add up to about N times the pass's wall time, and a
retried task counts twice (Spark's rule for accumulators updated in transformations).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from pyspark import Accumulator, SparkContext

T = TypeVar("T")


class TaskClock:
    def __init__(self, context: SparkContext) -> None:
        self.context = context
        self.meters: dict[str, Accumulator] = {}

    def meter(self, name: str) -> Accumulator:
        if name not in self.meters:
            self.meters[name] = self.context.accumulator(0.0)
        return self.meters[name]

    def seconds(self) -> dict[str, float]:
        return {name: round(float(meter.value), 3) for name, meter in self.meters.items()}


@contextmanager
def spent(meter: Accumulator | None) -> Iterator[None]:
    """Add the seconds of the block to ``meter`` (runs on the executors). A context manager,
    not a wrapper: Spark reads an Arrow UDF's kind from its function's type hints."""
    if meter is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        meter.add(time.perf_counter() - started)


def timed_batches(meter: Accumulator | None, batches: Iterator[T]) -> Iterator[T]:
    """``batches`` with the time spent making each one added to ``meter``: the time of a
    generator stage, not of whoever consumes it."""
    if meter is None:
        yield from batches
        return
    while True:
        started = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            meter.add(time.perf_counter() - started)
            return
        meter.add(time.perf_counter() - started)
        yield batch
