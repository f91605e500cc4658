"""The render stage: a source frame -> rendered rows and rejects, over Arrow batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from jobs.config import SourcePlan
from udfs.render_batches import RENDER_SCHEMA, RENDER_STAGE, RenderPlan, render_batches

RENDER_STRUCT = from_arrow_schema(RENDER_SCHEMA)


def render_stage(plan: RenderPlan) -> Callable[[DataFrame], DataFrame]:
    """``frame.transform(render_stage(plan))``: one row per record and chosen template, with
    ``reason`` set on rejects. Templates compile once per Python worker (cached in udfs)."""

    def render_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        yield from render_batches(plan, batches)

    def stage(frame: DataFrame) -> DataFrame:
        return frame.mapInArrow(render_partition, RENDER_STRUCT)

    return stage


def with_source_metadata(source: SourcePlan) -> Callable[[DataFrame], DataFrame]:
    """Registry facts that are constant per source, added as literals (no Python)."""

    def stage(frame: DataFrame) -> DataFrame:
        return frame.select(
            "*",
            F.lit(RENDER_STAGE).alias("stage"),
            F.lit(source.license).alias("license"),
        )

    return stage
