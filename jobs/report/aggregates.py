"""The report's numbers that come from the data itself: Spark aggregates over an output's
committed rows (group counts, approximate percentiles, log-bucket length histograms) and a
hash sample of a few rows per source. Only aggregate rows and the sample reach the driver:
the data's size never matters to it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

# The columns every chart of rows is a marginal of: one groupBy serves them all.
GROUP_KEYS = ("source", "language", "script", "task_cluster", "split")
# A null group value (no script detected, say) is shown as a value of its own.
NO_VALUE = "(none)"
LENGTH_COLUMNS = ("instruction", "response")
PERCENTILES = (("p5", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95))
# percentile_approx's accuracy: a relative rank error of 1/10,000, exact on small outputs.
ACCURACY = 10_000
BUCKETS_PER_DECADE = 10
# The bucket of empty texts: log10(0) has no bucket of its own.
EMPTY_BUCKET = -1
SAMPLE_ROWS = 5
# What the sample table shows of each text; the rest is never shipped to the driver.
SHOWN_CHARS = {"instruction": 300, "response": 200}


@dataclass(frozen=True)
class LengthStats:
    """Character lengths of one text column."""

    percentiles: dict[str, int | None]  # p5 ... p95 and max; None for no rows
    buckets: dict[int, int]  # log bucket -> rows (see :func:`length_bucket`)


@dataclass(frozen=True)
class DataAggregates:
    rows: int
    groups: dict[tuple[str, ...], int]  # GROUP_KEYS values -> rows
    lengths: dict[str, LengthStats]
    samples: dict[str, list[dict[str, str]]]  # source -> its sample rows, in hash order

    def by(self, *keys: str) -> dict[tuple[str, ...], int]:
        """Rows per combination of some of GROUP_KEYS, summed over the others."""
        positions = [GROUP_KEYS.index(key) for key in keys]
        totals: dict[tuple[str, ...], int] = defaultdict(int)
        for group, count in self.groups.items():
            totals[tuple(group[i] for i in positions)] += count
        return dict(sorted(totals.items()))

    def counts_of(self, key: str) -> dict[str, int]:
        return {group[0]: count for group, count in self.by(key).items()}


def group_counts(frame: DataFrame) -> dict[tuple[str, ...], int]:
    keys = [F.coalesce(F.col(key).cast("string"), F.lit(NO_VALUE)).alias(key) for key in GROUP_KEYS]
    rows = frame.groupBy(*keys).count().collect()
    return dict(sorted((tuple(row[key] for key in GROUP_KEYS), int(row["count"])) for row in rows))


def length_bucket(length: Column) -> Column:
    """Bucket ``k`` holds lengths in [10^(k/10), 10^((k+1)/10)); an empty text is bucket -1.
    The small addend keeps an exact power of ten in its own bucket: in floating point
    log10(1000) * 10 can fall just short of 30."""
    scaled = F.log10(length.cast("double")) * BUCKETS_PER_DECADE + F.lit(1e-9)
    return F.when(length <= 0, F.lit(EMPTY_BUCKET)).otherwise(F.floor(scaled)).cast("int")


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """The [lower, upper) lengths of a bucket (empty texts: [0, 1))."""
    if bucket == EMPTY_BUCKET:
        return 0.0, 1.0
    return 10 ** (bucket / BUCKETS_PER_DECADE), 10 ** ((bucket + 1) / BUCKETS_PER_DECADE)


def length_histograms(
    frame: DataFrame, columns: tuple[str, ...] = LENGTH_COLUMNS
) -> dict[str, dict[int, int]]:
    """Rows per length bucket of each column, in one groupBy over the columns stacked."""
    stacked = frame.select(
        F.explode(
            F.array(
                *[
                    F.struct(F.lit(name).alias("column"), length_bucket(F.length(name)).alias("b"))
                    for name in columns
                ]
            )
        ).alias("entry")
    ).select("entry.column", "entry.b")
    found: dict[str, dict[int, int]] = {name: {} for name in columns}
    for row in stacked.where(F.col("b").isNotNull()).groupBy("column", "b").count().collect():
        found[row["column"]][int(row["b"])] = int(row["count"])
    return {name: dict(sorted(buckets.items())) for name, buckets in found.items()}


def length_percentiles(
    frame: DataFrame, columns: tuple[str, ...] = LENGTH_COLUMNS
) -> tuple[int, dict[str, dict[str, int | None]]]:
    """The row count and, per column, p5 ... p95 and the max of its length: one aggregate."""
    fractions = [fraction for _, fraction in PERCENTILES]
    measures: list[Column] = []
    for name in columns:
        length = F.length(name)
        measures += [
            F.percentile_approx(length, fractions, ACCURACY).alias(f"{name}_p"),
            F.max(length).alias(f"{name}_max"),
        ]
    row = frame.agg(F.count(F.lit(1)).alias("rows"), *measures).first()
    assert row is not None  # a global aggregate always has its one row
    result: dict[str, dict[str, int | None]] = {}
    for name in columns:
        values = row[f"{name}_p"] or [None] * len(PERCENTILES)
        result[name] = {
            label: None if value is None else int(value)
            for (label, _), value in zip(PERCENTILES, values, strict=True)
        }
        maximum = row[f"{name}_max"]
        result[name]["max"] = None if maximum is None else int(maximum)
    return int(row["rows"]), result


def _shown(text: Any, limit: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sample_rows(frame: DataFrame, per_source: int = SAMPLE_ROWS) -> dict[str, list[dict[str, str]]]:
    """The first ``per_source`` rows of each source in xxhash64(id) order: the same rows on
    every run over the same output, spread over its partitions, and only their shown part.
    A rank filter this small is planned with Spark's WindowGroupLimit: each task keeps its own
    first rows per source before the shuffle, so a source's rows never meet in one task."""
    order = Window.partitionBy("source").orderBy(F.xxhash64("id"), "id", "run_id")
    texts = [F.substring(name, 1, limit + 1).alias(name) for name, limit in SHOWN_CHARS.items()]
    rank = F.row_number().over(order).alias("rank")
    shown = frame.select("source", "id", "language", "template_id", *texts, rank)
    picked = shown.where(F.col("rank") <= per_source).collect()
    samples: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in sorted(picked, key=lambda r: (r["source"], r["rank"])):
        entry = {key: _shown(row[key], 200) for key in ("id", "language", "template_id")}
        entry.update({name: _shown(row[name], limit) for name, limit in SHOWN_CHARS.items()})
        samples[row["source"]].append(entry)
    return dict(samples)


def data_aggregates(frame: DataFrame) -> DataAggregates:
    rows, percentiles = length_percentiles(frame)
    histograms = length_histograms(frame)
    lengths = {
        name: LengthStats(percentiles[name], histograms.get(name, {})) for name in LENGTH_COLUMNS
    }
    return DataAggregates(rows, group_counts(frame), lengths, sample_rows(frame))
