"""MinHash LSH between exact-group representatives: candidate pairs from shared band buckets,
verified by the Jaccard similarity their signatures estimate.

Every step moves narrow rows except one: the signatures are shuffled once, by node, and both
sides of every candidate pair read them from that one exchange.

- Buckets: a (band, key) bucket's smallest node is found with a ``groupBy().agg(min)``, which
  aggregates partially before its shuffle, so a boilerplate bucket of a million members sends
  one row per task instead of a million. Members then join their bucket's root (a star, never
  all pairs); a skewed bucket is one large join partition, which adaptive execution splits.
- Verification: an edge is kept only if the estimated Jaccard similarity reaches the threshold,
  so a chain of weak matches cannot grow one giant cluster.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def null_safe_join(
    left: DataFrame, right: DataFrame, keys: Sequence[str], how: str = "inner"
) -> DataFrame:
    """``left.join(right, keys)``, where null keys match each other (as they group together
    in a window or ``groupBy``); the result has ``left``'s key columns once."""
    renamed = right.select(
        *[F.col(key).alias(f"_r_{key}") for key in keys],
        *[F.col(name) for name in right.columns if name not in keys],
    )
    condition = [left[key].eqNullSafe(renamed[f"_r_{key}"]) for key in keys]
    return left.join(renamed, condition, how).drop(*[f"_r_{key}" for key in keys])


def candidate_pairs(band_keys: DataFrame, scope: Sequence[str]) -> DataFrame:
    """``node, band, band_key, *scope`` rows -> distinct ``src, dst`` pairs: every bucket
    member points at its bucket's smallest node."""
    keys = ["band", "band_key", *scope]
    roots = (
        band_keys.groupBy(*keys)
        .agg(F.min("node").alias("root"), F.count(F.lit(1)).alias("members"))
        .where(F.col("members") > 1)
        .drop("members")
    )
    return (
        null_safe_join(band_keys, roots, keys)
        .where(F.col("node") != F.col("root"))
        .select(F.col("node").alias("src"), F.col("root").alias("dst"))
        .distinct()
    )


def matching_fraction(left: str, right: str, num_perm: int) -> Column:
    equal = F.zip_with(F.col(left), F.col(right), lambda a, b: (a == b).cast("int"))
    return F.aggregate(equal, F.lit(0), lambda total, x: total + x) / F.lit(num_perm)


def verified_pairs(
    candidates: DataFrame, signatures: DataFrame, num_perm: int, threshold: float
) -> DataFrame:
    """Candidate ``src, dst`` pairs whose signatures (``node, signature``) agree on at least
    ``threshold`` of their positions."""
    by_node = signatures.select("node", "signature").repartition("node")
    first = by_node.select(F.col("node").alias("src"), F.col("signature").alias("a"))
    second = by_node.select(F.col("node").alias("dst"), F.col("signature").alias("b"))
    return (
        candidates.join(first, "src")
        .join(second, "dst")
        .where(matching_fraction("a", "b", num_perm) >= threshold)
        .select("src", "dst")
    )
