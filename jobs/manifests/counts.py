"""Counting: every number of a manifest comes from an aggregate, never from collected rows.

``read`` is counted on the input, ``written`` and ``rejected`` on what is on disk after the
write, so a manifest's reconciliation checks the pipeline rather than restating it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from jobs.config import SourcePlan
from jobs.io.outputs import read_back
from jobs.schema import is_accepted
from jobs.stages.render import INPUT_ROWS


def count_by(frame: DataFrame, *keys: str) -> dict[tuple[Any, ...], int]:
    """Aggregated counts; the result has one row per key combination, not per record."""
    return {
        tuple(row[key] for key in keys): int(row["count"])
        for row in frame.groupBy(*keys).count().collect()
    }


def count_shared_ids(rows: DataFrame) -> dict[str, int]:
    """Rows per source whose id another row also has: records that repeat an ``id_field``
    value, or identical records without one (the dedup stage decides between them)."""
    repeated = rows.groupBy("source", "id").count().where(F.col("count") > 1)
    totals = repeated.groupBy("source").agg(F.sum("count").alias("rows")).collect()
    return {row["source"]: int(row["rows"]) for row in totals}


class RenderedCounts(NamedTuple):
    accepted: int  # rows no stage rejected, duplicates included
    rejected: int
    duplicates: dict[str, int]  # rows per source that dedup removes
    # For rows that reached language ID: (source, detected content language, mismatch).
    languages: dict[tuple[Any, ...], int]
    # Written rows whose SuperNI encoding is not the one their hash picked (their task file
    # could not support it): (source, wanted, used).
    fallbacks: dict[tuple[Any, ...], int]


def count_rendered(rendered: DataFrame) -> RenderedCounts:
    """One aggregation over the persisted frame."""
    groups = count_by(
        rendered.select(
            "source",
            is_accepted().alias("accepted"),
            F.col("instruction").isNotNull().alias("reached_langid"),
            "detected_language",
            "lang_mismatch",
            F.coalesce(F.col("is_duplicate"), F.lit(False)).alias("duplicate"),
            "format_fallback",
            F.when(F.col("format_fallback").isNotNull(), F.col("template_format")).alias("used"),
        ),
        "source",
        "accepted",
        "reached_langid",
        "detected_language",
        "lang_mismatch",
        "duplicate",
        "format_fallback",
        "used",
    )
    accepted = sum(count for (_, was_accepted, *_), count in groups.items() if was_accepted)
    languages: dict[tuple[Any, ...], int] = defaultdict(int)
    duplicates: dict[str, int] = defaultdict(int)
    fallbacks: dict[tuple[Any, ...], int] = defaultdict(int)
    for key, count in groups.items():
        source, was_accepted, reached, code, mismatch, duplicate, wanted, used = key
        if reached:
            languages[(source, code, mismatch)] += count
        if was_accepted and duplicate:
            duplicates[source] += count
        if was_accepted and not duplicate and wanted is not None:
            fallbacks[(source, wanted, used)] += count
    rejected = sum(groups.values()) - accepted
    return RenderedCounts(accepted, rejected, dict(duplicates), dict(languages), dict(fallbacks))


# Upper bounds of the cluster-size histogram's buckets (records per cluster).
CLUSTER_BUCKETS = (1, 2, 3, 5, 10, 100, 1_000, 10_000, 100_000, 1_000_000)


def cluster_summary(rows: DataFrame, largest: int = 5, samples: int = 5) -> dict[str, Any]:
    """Clusters of source records: a size histogram and the largest few with sample ids,
    from aggregates (the largest clusters are found with a bounded top-k, not a collect)."""
    records = rows.select("dup_cluster", "source", "source_key").distinct()
    sizes = records.groupBy("dup_cluster").agg(F.count(F.lit(1)).alias("size"))
    bucket = F.lit(None).cast("string")
    for upper in reversed(CLUSTER_BUCKETS):
        bucket = F.when(F.col("size") <= upper, F.lit(f"<={upper:,}")).otherwise(bucket)
    bucket = F.coalesce(bucket, F.lit(f">{CLUSTER_BUCKETS[-1]:,}"))
    histogram = {
        row["bucket"]: (int(row["clusters"]), int(row["records"]))
        for row in sizes.groupBy(bucket.alias("bucket"))
        .agg(F.count(F.lit(1)).alias("clusters"), F.sum("size").alias("records"))
        .collect()
    }
    ordered = [f"<={upper:,}" for upper in CLUSTER_BUCKETS] + [f">{CLUSTER_BUCKETS[-1]:,}"]
    top = sizes.where(F.col("size") > 1).orderBy(F.desc("size"), "dup_cluster").limit(largest)
    top_rows = top.collect()
    ranked = (
        rows.join(F.broadcast(top.select("dup_cluster")), "dup_cluster")
        .select("dup_cluster", "id", "source")
        .withColumn("n", F.row_number().over(Window.partitionBy("dup_cluster").orderBy("id")))
        .where(F.col("n") <= samples)
        .collect()
    )
    sample_ids: dict[str, list[str]] = defaultdict(list)
    for row in sorted(ranked, key=lambda r: (r["dup_cluster"], r["n"])):
        sample_ids[row["dup_cluster"]].append(f"{row['source']}:{row['id']}")
    return {
        "histogram": [
            {"size": name, "clusters": histogram[name][0], "records": histogram[name][1]}
            for name in ordered
            if name in histogram
        ],
        "largest": [
            {
                "dup_cluster": row["dup_cluster"],
                "records": int(row["size"]),
                "sample_rows": sample_ids[row["dup_cluster"]],
            }
            for row in top_rows
        ],
    }


def count_on_disk(
    spark: SparkSession,
    path: str,
    schema: T.StructType,
    partition_cols: tuple[str, ...],
    run_id: str,
    keys: tuple[str, ...],
    subfolder: str | None = None,
) -> dict[tuple[Any, ...], int]:
    """Rows this run wrote under ``path``, counted by ``keys``."""
    frame = read_back(spark, path, schema, partition_cols, subfolder)
    if frame is None:
        return {}
    return count_by(frame.where(F.col("run_id") == F.lit(run_id)), *keys)


def per_source(frame: DataFrame) -> dict[str, int]:
    return {key[0]: count for key, count in count_by(frame, "source").items()}


def count_input_rows(rows: DataFrame, sources: Sequence[SourcePlan]) -> dict[str, int]:
    """Input records per source, as the render pass counted them (``_input_rows``, one
    value per input batch): no second scan of the input."""
    totals = rows.groupBy("source").agg(F.sum(INPUT_ROWS).alias("read")).collect()
    found = {row["source"]: int(row["read"] or 0) for row in totals}
    return {source.name: found.get(source.name, 0) for source in sources}
