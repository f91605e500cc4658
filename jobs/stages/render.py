"""The render stage: a source frame -> rendered rows and rejects, over Arrow batches; and the
literal columns every row gets from its registry and its run."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date
from functools import reduce

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from jobs.config import SourcePlan
from jobs.io.readers import read_source
from jobs.layout import LOAD_DATE
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
            F.lit(source.registry.license).alias("license"),
        )

    return stage


def rendered_sources(spark: SparkSession, sources: Sequence[SourcePlan]) -> DataFrame:
    """Every source read and rendered, unioned into one frame of rows and rejects."""
    frames = [
        read_source(spark, source)
        .transform(render_stage(source.render))
        .transform(with_source_metadata(source))
        for source in sources
    ]
    return reduce(DataFrame.unionByName, frames)


def with_run_columns(load_date: date, run_id: str) -> Callable[[DataFrame], DataFrame]:
    def stage(frame: DataFrame) -> DataFrame:
        return frame.select(
            "*",
            F.lit(load_date.isoformat()).cast("date").alias(LOAD_DATE),
            F.lit(run_id).alias("run_id"),
        )

    return stage
