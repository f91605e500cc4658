"""Field-aware verification of dedup's candidate pairs: two records are duplicates only when
their fields match one by one (``udfs.field_match``: short fields equal, long ones similar on
their own), so questions sharing one passage stay distinct records.

Fingerprints (per field: a hash and a bottom-k sketch of character 5-grams) are made only for
the records of candidate pairs, a small share of all records, from their text read again for
those records; the other records' texts are never shuffled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config import DedupConfig
from jobs.io.staging import Staging
from jobs.schema import RECORD_KEY
from udfs.field_match import fields_match_batch, fingerprints


@dataclass(frozen=True)
class FieldCheck:
    """``node, fingerprint`` of every record in a candidate pair, and the column that tells
    whether two fingerprints match."""

    fingerprints: DataFrame
    match: Callable[[str, str, str], Column]


def _fingerprint_udf(settings: DedupConfig) -> Callable[..., Column]:
    def prints(texts: pa.Array) -> pa.Array:
        return fingerprints(texts, settings.word_ngram, settings.char_ngram)

    return F.arrow_udf(prints, T.BinaryType())  # type: ignore[no-any-return]


def _match_udf(threshold: float) -> Callable[[str, str, str], Column]:
    def match(a: pa.Array, b: pa.Array, whole: pa.Array) -> pa.Array:
        return fields_match_batch(a, b, whole, threshold)

    udf = F.arrow_udf(match, T.BooleanType())
    return lambda a, b, whole: udf(F.col(a), F.col(b), F.col(whole))


def field_check(
    candidates: DataFrame,
    records: DataFrame,
    texts: DataFrame,
    settings: DedupConfig,
    staging: Staging,
    broadcast_rows: int,
) -> FieldCheck:
    """Fingerprints of the records in candidate pairs only (a small share of all records),
    from their texts: the texts are read again for those records, never shuffled for the
    rest."""
    nodes = (
        candidates.select(F.col("src").alias("node"))
        .union(candidates.select(F.col("dst").alias("node")))
        .distinct()
    )
    keyed = staging.keep(
        records.select("node", *RECORD_KEY).join(nodes, "node", "left_semi"), "dedup/paired"
    )
    wanted = F.broadcast(keyed) if keyed.count() <= broadcast_rows else keyed
    # Every row of a record carries the record's text: one row per record is enough.
    paired = texts.select(*RECORD_KEY, "dedup_text").join(wanted, list(RECORD_KEY))
    one_each = paired.groupBy("node").agg(F.min("dedup_text").alias("dedup_text"))
    prints = one_each.select("node", _fingerprint_udf(settings)("dedup_text").alias("fingerprint"))
    return FieldCheck(staging.keep(prints, "dedup/fingerprints"), _match_udf(settings.threshold))
