"""Applying narrow per-record decisions to the staged wide rows, in one join each.

A decision table has one row per source record (``source, source_key``). When it is small (a
sparse table: with one row per record only the unusual records are listed) it is broadcast, so
the wide rows are never shuffled for it; a large one is joined with a shuffle once, and the
result is staged so the writes and counts after it do not repeat that shuffle.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.io.staging import Staging
from jobs.schema import RECORD_KEY, is_accepted
from jobs.stages.dedup import (
    BROADCAST_ROWS,
    DECISION_COLUMNS,
    MINHASH,
    DedupPlan,
    dedup_decisions,
    signature_columns,
    unusual,
)

# Set on a row that repeats another row of its record (jobs.stages.repeats).
REPEAT = "_repeat"
# What dedup reads of a row: the record, its text, and what the representative rule ranks by.
DEDUP_INPUTS = (*RECORD_KEY, "id", "dedup_text", "language", "response", "split")


def join_decisions(frame: DataFrame, table: DataFrame, staging: Staging, name: str) -> DataFrame:
    """``frame`` left-joined with ``table`` on the record key: broadcast when the table is
    small, else joined with a shuffle and staged under ``name``. ``table`` is staged: its
    count is cheap."""
    if table.count() <= BROADCAST_ROWS:
        return frame.join(F.broadcast(table), list(RECORD_KEY), "left")
    return staging.keep(frame.join(table, list(RECORD_KEY), "left"), name)


def _decided(name: str, default: Column) -> Column:
    return F.when(F.col("_decided"), F.col(f"_d_{name}")).otherwise(default).alias(name)


def apply_decisions(
    frame: DataFrame, decisions: DataFrame, sparse: bool, staging: Staging
) -> DataFrame:
    """Rows -> the same rows with ``DECISION_COLUMNS``. ``sparse``: ``decisions`` lists only
    unusual records, and every other row keeps its own defaults (the ``content_hash`` it was
    signed with, its own id as cluster, kept); otherwise a row without a decision (no row of
    its record was accepted) gets nulls."""
    table = decisions.select(
        *RECORD_KEY,
        F.lit(True).alias("_decided"),
        *[F.col(name).alias(f"_d_{name}") for name in DECISION_COLUMNS],
    )
    joined = join_decisions(frame, table, staging, "decided")
    found = F.coalesce(F.col("_decided"), F.lit(False))
    joined = joined.withColumn("_decided", found)
    # The signatures stay: a dated load indexes the band keys of what it writes (Parquet
    # reads them only then).
    base = [name for name in frame.columns if name not in DECISION_COLUMNS]
    if not sparse:
        return joined.select(*base, *[F.col(f"_d_{name}").alias(name) for name in DECISION_COLUMNS])
    return joined.select(
        *base,
        _decided("content_hash", F.col(f"{MINHASH}.content_hash")),
        _decided("dup_cluster", F.col("id")),
        _decided("is_duplicate", F.lit(False)),
        _decided("contaminates_heldout", F.lit(False)),
    )


def build_dedup_stage(
    plan: DedupPlan, staging: Staging, one_row_per_record: bool
) -> Callable[[DataFrame], DataFrame]:
    """The build's dedup: decisions from the accepted rows' narrow columns (the signatures
    come from the staged rows when they were signed there), staged, then applied to every row.
    A rejected row carries its record's decision; none of a rejected row's decision columns
    reaches an output."""

    def stage(frame: DataFrame) -> DataFrame:
        signed = MINHASH in frame.columns
        # An exact repeat of a row (same record, same template) is removed with it.
        repeat = F.col(REPEAT) if REPEAT in frame.columns else F.lit(False)
        inputs = frame.where(is_accepted() & ~repeat).select(
            *DEDUP_INPUTS, *(signature_columns() if signed else ())
        )
        decisions = dedup_decisions(inputs, plan, staging, one_row_per_record)
        sparse = one_row_per_record and signed
        table = staging.keep(unusual(decisions), "dedup/unusual") if sparse else decisions
        return apply_decisions(frame, table, sparse, staging)

    return stage
