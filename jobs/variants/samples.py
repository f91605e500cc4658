"""Sample records of a conf's source, read and prepared exactly as the build reads them (the
source's reader, renames, declared types, blank fields): a Spark job over the first rows."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import SparkSession

from jobs.config import RunPlan, SourcePlan
from jobs.io.readers import read_source
from jobs.variants.checks import Sample
from udfs.record_prepare import prepare


def source_samples(spark: SparkSession, source: SourcePlan, limit: int) -> tuple[Sample, ...]:
    # A limit of a handful of rows: the only records that reach the driver.
    table = read_source(spark, source).limit(limit).toArrow()
    samples = []
    for row in table.to_pylist(maps_as_pydicts="strict"):
        prepared = prepare(source.render, row)
        if prepared.record is not None:
            samples.append(Sample(prepared.key, prepared.record))
    return tuple(samples)


def sampler(spark: SparkSession, limit: int) -> Callable[[RunPlan, SourcePlan], tuple[Sample, ...]]:
    def samples_of(_plan: RunPlan, source: SourcePlan) -> tuple[Sample, ...]:
        return source_samples(spark, source, limit)

    return samples_of
