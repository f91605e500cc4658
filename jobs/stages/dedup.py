"""Duplicate removal between source records: exact content hash, then MinHash LSH.

Decisions are made per source record, on its own text (``dedup_text``: the fields its
templates insert, or the source's ``dedup_fields``), never on the rendered pair: records that
only share a template share nothing, and every row rendered from one record stands or falls
with it.

1. One Arrow pass per record: the normalised content hash, the MinHash signature and the LSH
   band keys (``udfs.minhash``).
2. Exact: records with the same hash (in the same scope) form a group; only the group's
   smallest node goes on to LSH.
3. LSH: every (band, key) bucket with two or more members gives one edge per member to the
   bucket's smallest node (a star, never all pairs). An edge is kept only if the Jaccard
   similarity estimated from the two signatures reaches the threshold, so a chain of weak
   matches cannot grow one giant cluster.
4. Connected components of the kept edges (``jobs.stages.components``: large-star /
   small-star in the DataFrame API). A cluster is an exact group or a component of them.
5. One representative per cluster, chosen from record ids and settings only (smallest id,
   source priority or longest response), so reruns keep the same rows whatever the
   partitioning. ``dup_cluster`` is the cluster's smallest record id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_type
from pyspark.sql.window import Window

from jobs.config import DedupConfig
from jobs.schema import RECORD_KEY, is_accepted
from jobs.stages.components import assign_components, connected_components
from udfs.minhash import MINHASH_TYPE, lsh_params, minhash_batch, minhasher

log = logging.getLogger("instructmill.dedup")

# Per record, what dedup decided; joined back onto every row of the record.
DECISION_COLUMNS = ("content_hash", "dup_cluster", "is_duplicate", "contaminates_heldout")


@dataclass(frozen=True)
class DedupPlan:
    settings: DedupConfig
    bands: int
    rows: int
    # False: clusters are found only to decontaminate (dedup disabled, held-out clusters set).
    remove_duplicates: bool = True
    # A train record in a cluster with a held-out record is flagged contaminates_heldout
    # (and is not counted as a duplicate).
    decontaminate: bool = False

    @classmethod
    def of(
        cls, settings: DedupConfig, remove_duplicates: bool = True, decontaminate: bool = False
    ) -> DedupPlan:
        bands, rows = lsh_params(
            settings.threshold,
            settings.num_perm,
            settings.false_positive_weight,
            settings.false_negative_weight,
        )
        return cls(settings, bands, rows, remove_duplicates, decontaminate)


def _signature_udf(plan: DedupPlan) -> Callable[..., Column]:
    settings = plan.settings

    def signatures(texts: pa.Array) -> pa.Array:
        hasher = minhasher(
            settings.num_perm, settings.seed, settings.word_ngram, settings.char_ngram
        )
        return minhash_batch(texts, hasher, plan.bands, plan.rows)

    # Non-deterministic only so the optimizer never runs it once per field it feeds.
    return F.arrow_udf(  # type: ignore[no-any-return]
        signatures, from_arrow_type(MINHASH_TYPE)
    ).asNondeterministic()


def _scope(settings: DedupConfig) -> list[str]:
    return ["language"] if settings.scope == "language" else []


def _records(rows: DataFrame) -> DataFrame:
    """One row per source record. Every row of a record carries the same ``dedup_text``, so
    the aggregates are choices between equal values, made deterministically."""
    # Rows that carry no split (a frame built outside the build) are all train.
    heldout = F.col("split") == "heldout" if "split" in rows.columns else F.lit(False)
    return rows.groupBy(*RECORD_KEY).agg(
        F.min("dedup_text").alias("dedup_text"),
        F.min("id").alias("record_id"),
        F.min("language").alias("language"),
        F.max(F.length("response")).alias("response_length"),
        F.max(F.coalesce(heldout, F.lit(False))).alias("heldout"),
    )


def _nodes_and_exact_groups(records: DataFrame, scope: list[str], exact: bool) -> DataFrame:
    """Records with a 64-bit ``node`` for the graph work and their exact group's root,
    persisted. Collisions are possible in principle (about n^2 / 2^65), so the salt is raised
    until every record has its own node: the result depends on the records only. The check
    is one aggregation over the persisted frame, which the rest of the stage reuses."""
    for salt in range(8):
        with_node = records.withColumn("node", F.xxhash64(F.lit(salt), *RECORD_KEY))
        exact_root = F.col("node")
        if exact:
            exact_root = F.when(
                F.col("content_hash").isNotNull(),
                F.min("node").over(Window.partitionBy("content_hash", *scope)),
            ).otherwise(F.col("node"))
        persisted = with_node.withColumn("exact_root", exact_root).persist()
        counts = persisted.agg(
            F.count(F.lit(1)).alias("records"), F.count_distinct("node").alias("nodes")
        ).first()
        if counts is None or counts["records"] == counts["nodes"]:
            return persisted
        persisted.unpersist()
        log.warning("dedup: 64-bit node ids collide with salt %d; trying the next", salt)
    raise RuntimeError("dedup: could not give every record its own 64-bit node id")


def _matching_fraction(left: str, right: str, num_perm: int) -> Column:
    equal = F.zip_with(F.col(left), F.col(right), lambda a, b: (a == b).cast("int"))
    return F.aggregate(equal, F.lit(0), lambda total, x: total + x) / F.lit(num_perm)


def _lsh_edges(reps: DataFrame, plan: DedupPlan, scope: list[str]) -> DataFrame:
    """Verified star edges between exact-group representatives."""
    buckets = reps.select("node", *scope, F.posexplode("band_keys").alias("band", "band_key"))
    bucket = Window.partitionBy("band", "band_key", *scope)
    candidates = (
        buckets.withColumn("root", F.min("node").over(bucket))
        .where(F.col("node") != F.col("root"))
        .select(F.col("node").alias("src"), F.col("root").alias("dst"))
        .distinct()
    )
    signatures = reps.select("node", "signature")
    verified = (
        candidates.join(
            signatures.withColumnRenamed("node", "src").withColumnRenamed("signature", "a"),
            "src",
        )
        .join(
            signatures.withColumnRenamed("node", "dst").withColumnRenamed("signature", "b"),
            "dst",
        )
        .where(_matching_fraction("a", "b", plan.settings.num_perm) >= plan.settings.threshold)
        .select("src", "dst")
    )
    return verified


def _representative_rank(settings: DedupConfig) -> Column:
    """The smallest of these per cluster is kept. Held-out records come first whatever the
    rule: a held-out row is never dropped in favour of a train row."""
    split = (~F.col("heldout")).cast("int").alias("s")
    if settings.representative == "source_priority":
        priority = F.lit(len(settings.source_priority))
        for index, name in reversed(list(enumerate(settings.source_priority))):
            priority = F.when(F.col("source") == name, F.lit(index)).otherwise(priority)
        return F.struct(split, priority.alias("p"), F.col("record_id").alias("r"))
    if settings.representative == "longest_response":
        return F.struct(
            split,
            (-F.coalesce(F.col("response_length"), F.lit(0))).alias("p"),
            F.col("record_id").alias("r"),
        )
    return F.struct(split, F.lit(0).alias("p"), F.col("record_id").alias("r"))


def dedup_decisions(rows: DataFrame, plan: DedupPlan) -> DataFrame:
    """Accepted rows (with ``dedup_text``) -> one decision per source record:
    ``source, source_key, content_hash, dup_cluster, is_duplicate, contaminates_heldout``."""
    settings = plan.settings
    scope = _scope(settings)
    signature = _signature_udf(plan)
    signed = (
        _records(rows)
        .withColumn("_minhash", signature(F.col("dedup_text")))
        .select(
            *RECORD_KEY,
            "record_id",
            "language",
            "response_length",
            "heldout",
            F.col("_minhash.content_hash").alias("content_hash"),
            F.col("_minhash.signature").alias("signature"),
            F.col("_minhash.band_keys").alias("band_keys"),
        )
    )
    records = _nodes_and_exact_groups(signed, scope, settings.exact)
    try:
        reps = records.where(
            (F.col("node") == F.col("exact_root")) & F.col("content_hash").isNotNull()
        )
        if settings.near:
            edges = _lsh_edges(reps, plan, scope)
            components = assign_components(
                reps.select("node"),
                connected_components(edges, checkpoint_every=settings.checkpoint_every),
            )
        else:
            components = reps.select("node", F.col("node").alias("component"))
        clustered = records.join(
            components.select(
                F.col("node").alias("exact_root"), F.col("component").alias("cluster")
            ),
            "exact_root",
            "left",
        ).withColumn("cluster", F.coalesce(F.col("cluster"), F.col("node")))
        clustered = clustered.withColumn("rank", _representative_rank(settings))
        clusters = clustered.groupBy("cluster").agg(
            F.min("rank").alias("kept_rank"),
            F.min("record_id").alias("dup_cluster"),
            F.max("heldout").alias("has_heldout"),
        )
        contaminates = F.lit(plan.decontaminate) & ~F.col("heldout") & F.col("has_heldout")
        duplicate = F.lit(plan.remove_duplicates) & (F.col("rank") != F.col("kept_rank"))
        decisions = clustered.join(clusters, "cluster").select(
            *RECORD_KEY,
            "content_hash",
            "dup_cluster",
            (duplicate & ~contaminates).alias("is_duplicate"),
            contaminates.alias("contaminates_heldout"),
        )
        return decisions.localCheckpoint()
    finally:
        records.unpersist()


def dedup_stage(plan: DedupPlan) -> Callable[[DataFrame], DataFrame]:
    """Rows -> the same rows with ``content_hash``, ``dup_cluster``, ``is_duplicate`` and
    ``contaminates_heldout``, decided on the accepted rows (no reject reason: a row language
    ID or the split dropped never wins a cluster). A rejected row carries its record's
    decision, or nulls when none of the record's rows was accepted."""

    def stage(frame: DataFrame) -> DataFrame:
        decisions = dedup_decisions(frame.where(is_accepted()), plan)
        return frame.join(decisions, list(RECORD_KEY), "left").select(
            *frame.columns,
            *[F.col(name) for name in DECISION_COLUMNS],
        )

    return stage


def without_dedup(frame: DataFrame) -> DataFrame:
    """The same columns as the stage adds: nothing is a duplicate."""
    return frame.select(
        "*",
        F.lit(None).cast("string").alias("content_hash"),
        F.lit(None).cast("string").alias("dup_cluster"),
        F.when(F.col("instruction").isNotNull(), F.lit(False)).alias("is_duplicate"),
        F.when(F.col("instruction").isNotNull(), F.lit(False)).alias("contaminates_heldout"),
    )
