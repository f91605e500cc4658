"""Duplicate removal between source records: exact content hash, then MinHash LSH.

Decisions are made per source record, on its own text (``dedup_text``: the fields its
templates insert, or the source's ``dedup_fields``), never on the rendered pair: records that
only share a template share nothing, and every row rendered from one record stands or falls
with it.

1. One Arrow pass per record: the normalised content hash, the MinHash signature and the LSH
   band keys (``udfs.minhash``). With one template per record the build signs its rows while
   staging them, and a row is its record unless its key repeats: only those are aggregated.
2. Exact: records with the same hash (in the same scope) form a group, found by a partial
   aggregation and a join on narrow columns; only the group's smallest node goes on to LSH.
3. LSH (``jobs.stages.lsh``): every (band, key) bucket with two or more members gives one
   edge per member to the bucket's smallest node (a star, never all pairs), kept only if the
   Jaccard similarity estimated from the two signatures reaches the threshold, so a chain of
   weak matches cannot grow one giant cluster. The signatures are shuffled once.
4. Connected components of the kept edges (``jobs.stages.components``: large-star /
   small-star in the DataFrame API). A cluster is an exact group or a component of them.
5. One representative per cluster, chosen from record ids and settings only (smallest id,
   source priority or longest response), so reruns keep the same rows whatever the
   partitioning. ``dup_cluster`` is the cluster's smallest record id.

The records with their signatures, and the decisions, are staged (``jobs.io.staging``): the
wide texts are never part of a shuffle here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
from pyspark import Accumulator
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_type

from jobs.config import DedupConfig
from jobs.io.staging import Staging
from jobs.schema import RECORD_KEY, is_accepted
from jobs.stages.components import assign_components, connected_components
from jobs.stages.field_dedup import field_check
from jobs.stages.lsh import candidate_pairs, null_safe_join, verified_pairs
from jobs.task_clock import spent
from udfs.faults import inject
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
            candidate_threshold(settings),
            settings.num_perm,
            settings.false_positive_weight,
            settings.false_negative_weight,
        )
        return cls(settings, bands, rows, remove_duplicates, decontaminate)


def candidate_threshold(settings: DedupConfig) -> float:
    """The Jaccard similarity LSH's bands and rows are tuned for. Field-aware verification
    reads fields, not the whole record: a typo in a short record's question costs its whole
    text five word shingles while its field still matches, so candidates are sought a
    notch below the threshold (about 0.96 recall at 0.65 instead of 0.65)."""
    if settings.match == "fields":
        return max(settings.threshold - FIELDS_CANDIDATE_MARGIN, 0.05)
    return settings.threshold


SIGNATURE_COLUMNS = ("content_hash", "signature", "band_keys")
# The struct of SIGNATURE_COLUMNS a build stages with every row (signing_stage).
MINHASH = "_minhash"
# Columns of a decision beyond DECISION_COLUMNS: whether it differs from a lone row's default.
RECORD_COLUMNS = ("record_id", "rows")
# A side table of up to this many rows is sent to every task (a broadcast join), so the wide
# side of the join is not shuffled; a larger one is joined with a shuffle.
BROADCAST_ROWS = 200_000
# Field-aware dedup looks for candidates this far below the threshold.
FIELDS_CANDIDATE_MARGIN = 0.1
# Field-aware dedup pairs out LSH buckets of up to this many members (a star above: a bucket
# that large is boilerplate, not a passage's questions).
ALL_PAIRS_UP_TO = 64


def _signature_udf(
    plan: DedupPlan, deterministic: bool = False, meter: Accumulator | None = None
) -> Callable[..., Column]:
    settings = plan.settings

    def signatures(texts: pa.Array) -> pa.Array:
        inject("python-worker")  # a test's killed worker (udfs.faults)
        with spent(meter):
            hasher = minhasher(
                settings.num_perm, settings.seed, settings.word_ngram, settings.char_ngram
            )
            return minhash_batch(texts, hasher, plan.bands, plan.rows)

    udf = F.arrow_udf(signatures, from_arrow_type(MINHASH_TYPE))
    # Non-deterministic so the optimizer never runs it once per field it feeds; deterministic
    # where its struct is only passed on, so it can join another UDF's Python pass.
    return udf if deterministic else udf.asNondeterministic()  # type: ignore[no-any-return]


def signing_stage(
    plan: DedupPlan, meter: Accumulator | None = None
) -> Callable[[DataFrame], DataFrame]:
    """Rows -> the same rows with ``_minhash`` (``content_hash``, ``signature``,
    ``band_keys`` of ``dedup_text``). Applied right before language ID, Spark evaluates both
    UDFs in one Arrow pass (one ``ArrowEvalPython``): the texts cross into Python once.
    The struct is staged and read back field by field."""
    signature = _signature_udf(plan, deterministic=True, meter=meter)

    def stage(frame: DataFrame) -> DataFrame:
        return frame.withColumn(MINHASH, signature(F.col("dedup_text")))

    return stage


def signature_columns() -> list[Column]:
    """The staged ``_minhash`` struct's fields as columns."""
    return [F.col(f"{MINHASH}.{name}").alias(name) for name in SIGNATURE_COLUMNS]


def with_signatures(plan: DedupPlan) -> Callable[[DataFrame], DataFrame]:
    """Rows with ``dedup_text`` -> the same rows with its ``content_hash``, MinHash
    ``signature`` and LSH ``band_keys`` (one Arrow pass)."""
    signature = _signature_udf(plan)

    def stage(frame: DataFrame) -> DataFrame:
        signed = frame.withColumn("_minhash", signature(F.col("dedup_text")))
        return signed.select(
            *frame.columns, *[F.col(f"_minhash.{name}").alias(name) for name in SIGNATURE_COLUMNS]
        )

    return stage


def _scope(settings: DedupConfig) -> list[str]:
    return ["language"] if settings.scope == "language" else []


def _heldout(rows: DataFrame) -> Column:
    # Rows that carry no split (a frame built outside the build) are all train.
    heldout = F.col("split") == "heldout" if "split" in rows.columns else F.lit(False)
    return F.coalesce(heldout, F.lit(False))


def _one_row_each(rows: DataFrame, signed: bool) -> DataFrame:
    """Rows that are alone in their record, as records: no aggregation, no shuffle."""
    return rows.select(
        *RECORD_KEY,
        "dedup_text",
        F.col("id").alias("record_id"),
        "language",
        F.length("response").alias("response_length"),
        _heldout(rows).alias("heldout"),
        F.lit(1).cast("long").alias("rows"),
        *(SIGNATURE_COLUMNS if signed else ()),
    )


def _aggregated(rows: DataFrame, signed: bool) -> DataFrame:
    """One row per source record. Every row of a record carries the same ``dedup_text`` (a
    repeated key may not: the smallest text wins, with its signature), so the aggregates are
    choices made deterministically."""
    text = F.min(F.struct("dedup_text", *(SIGNATURE_COLUMNS if signed else ()))).alias("_text")
    records = rows.groupBy(*RECORD_KEY).agg(
        text,
        F.min("id").alias("record_id"),
        F.min("language").alias("language"),
        F.max(F.length("response")).alias("response_length"),
        F.max(_heldout(rows)).alias("heldout"),
        F.count(F.lit(1)).alias("rows"),
    )
    carried = ["dedup_text", *(SIGNATURE_COLUMNS if signed else ())]
    return records.select(
        *RECORD_KEY,
        *[F.col(f"_text.{name}").alias(name) for name in carried],
        "record_id", "language", "response_length", "heldout", "rows",
    )  # fmt: skip


def per_record(
    rows: DataFrame, one_row_per_record: bool, signed: bool, staging: Staging
) -> DataFrame:
    """Accepted rows -> one row per source record. With one template per record a record has
    one row unless its key repeats (a repeated ``id_field`` value): only those few are
    aggregated, and the wide columns of every other row are never shuffled."""
    if not one_row_per_record:
        return _aggregated(rows, signed)
    repeated = staging.keep(
        rows.groupBy(*RECORD_KEY).count().where(F.col("count") > 1).select(*RECORD_KEY),
        "dedup/repeated",
    )
    count = repeated.count()
    if count == 0:
        return _one_row_each(rows, signed)
    if count > BROADCAST_ROWS:
        return _aggregated(rows, signed)
    keys = F.broadcast(repeated)
    return _one_row_each(rows.join(keys, list(RECORD_KEY), "left_anti"), signed).unionByName(
        _aggregated(rows.join(keys, list(RECORD_KEY), "left_semi"), signed)
    )


def _with_nodes(records: DataFrame, staging: Staging) -> DataFrame:
    """Records with a 64-bit ``node`` for the graph work, staged. Collisions are possible in
    principle (about n^2 / 2^65), so the salt is raised until every record has its own node:
    the result depends on the records only. The check is one aggregation of one column."""
    for salt in range(8):
        staged = staging.keep(
            records.withColumn("node", F.xxhash64(F.lit(salt), *RECORD_KEY)), "dedup/records"
        )
        counts = staged.agg(
            F.count(F.lit(1)).alias("records"), F.count_distinct("node").alias("nodes")
        ).first()
        if counts is None or counts["records"] == counts["nodes"]:
            return staged
        log.warning("dedup: 64-bit node ids collide with salt %d; trying the next", salt)
    raise RuntimeError("dedup: could not give every record its own 64-bit node id")


def _exact_roots(records: DataFrame, scope: list[str], exact: bool) -> DataFrame:
    """``node, exact_root``: the smallest node with the same content hash (in the same scope),
    from a ``groupBy().agg(min)`` (partial aggregation: one popular text is not one task's
    work) joined back on narrow columns."""
    nodes = records.select("node", "content_hash", *scope)
    if not exact:
        return nodes.select("node", F.col("node").alias("exact_root"))
    keys = ["content_hash", *scope]
    roots = (
        nodes.where(F.col("content_hash").isNotNull())
        .groupBy(*keys)
        .agg(F.min("node").alias("exact_root"))
    )
    return null_safe_join(nodes, roots, keys, "left").select(
        "node", F.coalesce(F.col("exact_root"), F.col("node")).alias("exact_root")
    )


def _components(
    records: DataFrame,
    roots: DataFrame,
    plan: DedupPlan,
    scope: list[str],
    texts: DataFrame,
    staging: Staging,
) -> DataFrame:
    """``exact_root, cluster`` for every exact-group representative with content."""
    settings = plan.settings
    reps = roots.where(F.col("node") == F.col("exact_root")).select("node")
    if not settings.near:
        return reps.select(F.col("node").alias("exact_root"), F.col("node").alias("cluster"))
    band_keys = records.select(
        "node", *scope, F.posexplode("band_keys").alias("band", "band_key")
    ).join(reps, "node", "left_semi")
    by_fields = settings.match == "fields"
    candidates = candidate_pairs(band_keys, scope, ALL_PAIRS_UP_TO if by_fields else 0)
    check = None
    if by_fields:
        candidates = staging.keep(candidates, "dedup/candidates")
        check = field_check(candidates, records, texts, plan.settings, staging, BROADCAST_ROWS)
    edges = verified_pairs(candidates, records, settings.num_perm, settings.threshold, check)
    found = assign_components(
        reps, connected_components(edges, checkpoint_every=settings.checkpoint_every)
    )
    return found.select(F.col("node").alias("exact_root"), F.col("component").alias("cluster"))


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


def dedup_decisions(
    rows: DataFrame,
    plan: DedupPlan,
    staging: Staging | None = None,
    one_row_per_record: bool = False,
) -> DataFrame:
    """Accepted rows (with ``dedup_text``, and the signature columns when they were signed
    already) -> one decision per source record, staged: ``source, source_key, content_hash,
    dup_cluster, is_duplicate, contaminates_heldout, record_id, rows``."""
    settings = plan.settings
    scope = _scope(settings)
    staging = staging or Staging(rows.sparkSession, None)
    signed = all(name in rows.columns for name in SIGNATURE_COLUMNS)
    records = per_record(rows, one_row_per_record, signed, staging)
    if not signed:
        records = records.transform(with_signatures(plan))
    records = _with_nodes(records.drop("dedup_text"), staging)
    roots = _exact_roots(records, scope, settings.exact)
    components = _components(records, roots, plan, scope, rows, staging)
    clustered = (
        records.select(
            *RECORD_KEY, "node", "content_hash", "record_id", "response_length", "heldout", "rows"
        )
        .join(roots, "node")
        .join(components, "exact_root", "left")
        .withColumn("cluster", F.coalesce(F.col("cluster"), F.col("node")))
        .withColumn("rank", _representative_rank(settings))
    )
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
        *RECORD_COLUMNS,
    )
    return staging.keep(decisions, "dedup/decisions")


def unusual(decisions: DataFrame) -> DataFrame:
    """The decisions that differ from a lone row's default (its own id as cluster, its own
    content hash, kept): duplicates, contaminating rows, clusters led by another record, and
    records of several rows. With one row per record, these are all a build has to join."""
    usual = (
        (F.col("dup_cluster") == F.col("record_id"))
        & ~F.col("is_duplicate")
        & ~F.col("contaminates_heldout")
        & (F.col("rows") == 1)
    )
    return decisions.where(~usual)


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
