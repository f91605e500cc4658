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
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

if TYPE_CHECKING:
    from jobs.stages.field_dedup import FieldCheck


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


def candidate_pairs(
    band_keys: DataFrame, scope: Sequence[str], all_pairs_up_to: int = 0
) -> DataFrame:
    """``node, band, band_key, *scope`` rows -> distinct ``src, dst`` pairs (``src > dst``):
    every bucket member points at its bucket's smallest node (a star); a bucket of at most
    ``all_pairs_up_to`` members gives all its pairs instead.

    A star is enough when similarity is nearly transitive (whole-record Jaccard). Field-aware
    verification is not: questions on one passage share every bucket, and two of them that
    are duplicates of each other match no third, so small buckets are paired out in full
    (at most ``all_pairs_up_to - 1`` edges per member and bucket: linear in the records).
    """
    keys = ["band", "band_key", *scope]
    buckets = (
        band_keys.groupBy(*keys)
        .agg(F.min("node").alias("root"), F.count(F.lit(1)).alias("members"))
        .where(F.col("members") > 1)
    )
    star = buckets.where(F.col("members") > all_pairs_up_to).drop("members")
    pairs = (
        null_safe_join(band_keys, star, keys)
        .where(F.col("node") != F.col("root"))
        .select(F.col("node").alias("src"), F.col("root").alias("dst"))
    )
    if all_pairs_up_to > 1:
        small = buckets.where(F.col("members") <= all_pairs_up_to).select(*keys)
        members = (
            null_safe_join(band_keys, small, keys)
            .groupBy(*keys)
            .agg(F.array_sort(F.collect_list("node")).alias("nodes"))
        )
        # Every (i < j) of the sorted members: src the larger node, as in the star.
        every = F.expr(
            "flatten(transform(sequence(1, size(nodes) - 1), j -> "
            "transform(slice(nodes, 1, j), i -> named_struct('src', nodes[j], 'dst', i))))"
        )
        pairs = pairs.unionByName(
            members.select(F.explode(every).alias("pair")).select("pair.src", "pair.dst")
        )
    return pairs.distinct()


def matching_fraction(left: str, right: str, num_perm: int) -> Column:
    equal = F.zip_with(F.col(left), F.col(right), lambda a, b: (a == b).cast("int"))
    return F.aggregate(equal, F.lit(0), lambda total, x: total + x) / F.lit(num_perm)


def verified_pairs(
    candidates: DataFrame,
    signatures: DataFrame,
    num_perm: int,
    threshold: float,
    fields: FieldCheck | None = None,
) -> DataFrame:
    """Candidate ``src, dst`` pairs whose signatures (``node, signature``) agree on at least
    ``threshold`` of their positions; with ``fields``, the pairs whose records match field by
    field instead (a one-field record pair still by its signatures)."""
    by_node = signatures.select("node", "signature").repartition("node")
    first = by_node.select(F.col("node").alias("src"), F.col("signature").alias("a"))
    second = by_node.select(F.col("node").alias("dst"), F.col("signature").alias("b"))
    joined = candidates.join(first, "src").join(second, "dst")
    whole = matching_fraction("a", "b", num_perm) >= threshold
    if fields is None:
        return joined.where(whole).select("src", "dst")
    prints = fields.fingerprints.select("node", "fingerprint").repartition("node")
    with_prints = (
        joined.select("src", "dst", whole.alias("whole"))
        .join(prints.select(F.col("node").alias("src"), F.col("fingerprint").alias("fa")), "src")
        .join(prints.select(F.col("node").alias("dst"), F.col("fingerprint").alias("fb")), "dst")
    )
    return with_prints.where(fields.match("fa", "fb", "whole")).select("src", "dst")
