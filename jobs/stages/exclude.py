"""Held-out evaluation kept clean: train rows that share an origin dataset with held-out rows,
and train rows the dedup stage found near held-out content, become rejects of the split.

This follows Super-NaturalInstructions: besides the rows of held-out clusters, every train
record whose origin dataset also feeds a held-out cluster leaves train (reason
``shares_source_with_heldout``), since a model trained on SNLI prompts has seen the held-out
NLI data. Near-duplicates of held-out content are found by the dedup stage (it shares the
signatures) and flagged ``contaminates_heldout``.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.io.staging import Staging
from jobs.schema import RECORD_KEY, is_accepted, reject_where
from jobs.stages.decisions import join_decisions
from jobs.stages.decontaminate import CONTAMINATES_HELDOUT
from jobs.stages.decontaminate import STAGE as DECONTAMINATION_STAGE
from jobs.stages.tag import HELDOUT, TRAIN, match_key

SPLIT_STAGE = "split"
SHARES_SOURCE = "shares_source_with_heldout"


def shared_source_records(frame: DataFrame) -> DataFrame:
    """``source, source_key, _shared_origin`` of the train records whose origin datasets meet
    a held-out record's. Two joins on (origin) and (record): no collect, however many
    origins there are."""
    accepted = (
        frame.where(is_accepted())
        .select(*RECORD_KEY, "split", F.explode("origins").alias("origin"))
        .withColumn("origin", match_key(F.col("origin")))
    )
    heldout_origins = accepted.where(F.col("split") == HELDOUT).select("origin").distinct()
    return (
        accepted.where(F.col("split") == TRAIN)
        .join(heldout_origins, "origin", "left_semi")
        .groupBy(*RECORD_KEY)
        .agg(F.min("origin").alias("_shared_origin"))
    )


def exclude_shared_sources(staging: Staging) -> Callable[[DataFrame], DataFrame]:
    """Train records whose origin datasets meet a held-out record's become rejects
    (``shares_source_with_heldout``); the detail names the shared origin. The records are
    found on narrow columns and staged; the rows are then joined with them once."""

    def stage(frame: DataFrame) -> DataFrame:
        shared = staging.keep(shared_source_records(frame), "shared")
        joined = join_decisions(frame, shared, staging, "excluded")
        return _shared_rejects(joined)

    return stage


def _shared_rejects(joined: DataFrame) -> DataFrame:
    return reject_where(
        joined,
        F.col("_shared_origin").isNotNull(),
        SPLIT_STAGE,
        F.lit(SHARES_SOURCE),
        F.concat(
            F.lit("a train record from origin dataset "),
            F.col("_shared_origin"),
            F.lit(", which also feeds a held-out cluster"),
        ),
    ).drop("_shared_origin")


def contamination_rejects(frame: DataFrame) -> DataFrame:
    """Rows the dedup stage flagged ``contaminates_heldout`` become rejects of stage
    ``decontamination``, as the n-gram check's are."""
    return reject_where(
        frame,
        F.col("contaminates_heldout"),
        DECONTAMINATION_STAGE,
        F.lit(CONTAMINATES_HELDOUT),
        F.concat(
            F.lit(
                "a train record whose content is a near-duplicate of a held-out record (cluster "
            ),
            F.col("dup_cluster"),
            F.lit(")"),
        ),
    )
