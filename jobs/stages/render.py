"""The render stage: a source frame -> rendered rows and rejects, over Arrow batches; and the
literal columns every row gets from its registry and its run."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date

import pyarrow as pa
from pyspark import Accumulator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from jobs.config import SourcePlan
from jobs.io.readers import read_source
from jobs.layout import LOAD_DATE
from jobs.task_clock import timed_batches
from udfs.render_batches import RENDER_SCHEMA, RENDER_STAGE, RenderPlan, render_batches

# Input records of the batch a row was rendered from, on the batch's first row (null on the
# others): the build's read count, taken from the render pass instead of a second scan.
INPUT_ROWS = "_input_rows"
STAGE_SCHEMA = RENDER_SCHEMA.append(pa.field(INPUT_ROWS, pa.int64()))
RENDER_STRUCT = from_arrow_schema(STAGE_SCHEMA)


def _with_input_rows(batch: pa.RecordBatch, records: int) -> pa.RecordBatch:
    if batch.num_rows == 0 and records:
        # render_batches yields at least one row per record (a pair or a reject): a batch
        # without any would lose records silently, so it stops the job instead.
        raise RuntimeError(f"render produced no rows for a batch of {records} records")
    counts = pa.array([records][: batch.num_rows] + [None] * (batch.num_rows - 1), pa.int64())
    return pa.RecordBatch.from_arrays([*batch.columns, counts], schema=STAGE_SCHEMA)


def render_stage(
    plan: RenderPlan, meter: Accumulator | None = None
) -> Callable[[DataFrame], DataFrame]:
    """``frame.transform(render_stage(plan))``: one row per record and chosen template, with
    ``reason`` set on rejects, and ``_input_rows``. Templates compile once per Python worker
    (cached in udfs)."""

    def render_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            # A batch past the output budget comes back in several: its input count goes
            # on the first, so the read count stays one per input record.
            rendering = timed_batches(meter, render_batches(plan, [batch]))
            for n, rendered in enumerate(rendering):
                yield _with_input_rows(rendered, batch.num_rows if n == 0 else 0)

    def stage(frame: DataFrame) -> DataFrame:
        return frame.mapInArrow(render_partition, RENDER_STRUCT)

    return stage


def with_source_metadata(source: SourcePlan) -> Callable[[DataFrame], DataFrame]:
    """Registry facts that are constant per source, added as literals (no Python)."""

    def stage(frame: DataFrame) -> DataFrame:
        return frame.select(
            "*",
            F.lit(RENDER_STAGE).alias("stage"),
            F.lit(source.registry.license).alias("license"),
        )

    return stage


def rendered_sources(
    spark: SparkSession, sources: Sequence[SourcePlan], meter: Accumulator | None = None
) -> DataFrame:
    """Every source read and rendered, unioned into one frame of rows and rejects."""
    frames = [
        read_source(spark, source)
        .transform(render_stage(source.render, meter))
        .transform(with_source_metadata(source))
        for source in sources
    ]
    return union_all(frames)


def union_all(frames: Sequence[DataFrame]) -> DataFrame:
    """One frame of many, unioned as a balanced tree: the plan of thousands of sources (FLAN,
    SuperNI tasks) is log2(n) unions deep instead of n."""
    if len(frames) == 1:
        return frames[0]
    middle = len(frames) // 2
    return union_all(frames[:middle]).unionByName(union_all(frames[middle:]))


def with_run_columns(load_date: date, run_id: str) -> Callable[[DataFrame], DataFrame]:
    def stage(frame: DataFrame) -> DataFrame:
        return frame.select(
            "*",
            F.lit(load_date.isoformat()).cast("date").alias(LOAD_DATE),
            F.lit(run_id).alias("run_id"),
        )

    return stage
