"""Repeated record keys: a source whose ``id_field`` values repeat (merged shards,
re-exports) never loses a distinct record to it, and every written row has its own id.

A record is told apart by its key *and* its content. One narrow aggregation finds the keys
that occur on more rows than they have templates; when such a key carries several distinct
texts, each text becomes its own record: its key gets the text's hash appended (``key#hash``)
and its rows get ids made from that key. Rows left with the same id are exact repeats of one
record: one is kept, the others are removed as duplicates (``_repeat``), as any exact
duplicate is. With no repeated key (the usual case) the rows pass through untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.io.staging import Staging
from jobs.schema import RECORD_KEY, is_accepted
from jobs.stages.decisions import REPEAT, join_decisions

__all__ = ["REPEAT", "DistinctKeys", "repeated_keys", "without_repeats"]
# Examples of repeated keys per source in the manifest.
EXAMPLES = 10
# Rows with one id are the same record rendered by the same template; the first of them by
# these columns is kept, so the choice does not depend on the partitioning.
_ORDER = ("instruction", "response", "language", "target_language", "task", "template_hash")


def repeated_keys(frame: DataFrame) -> DataFrame:
    """``source, source_key, rows, texts``: the keys on more rendered rows than templates."""
    rendered = frame.where(F.col("dedup_text").isNotNull())
    return (
        rendered.groupBy(*RECORD_KEY)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.count_distinct("template_id").alias("templates"),
            F.count_distinct(F.xxhash64("dedup_text")).alias("texts"),
        )
        .where(F.col("rows") > F.col("templates"))
        .select(*RECORD_KEY, "rows", "texts")
    )


def _text_tag() -> Column:
    return F.substring(F.sha2(F.col("dedup_text"), 256), 1, 16)


def _told_apart(joined: DataFrame) -> DataFrame:
    several = F.coalesce(F.col("_several"), F.lit(False)) & F.col("dedup_text").isNotNull()
    key = F.when(several, F.concat(F.col("source_key"), F.lit("#"), _text_tag())).otherwise(
        F.col("source_key")
    )
    new_id = F.substring(
        F.sha2(F.concat_ws("\x1f", F.col("source"), key, F.col("template_id")), 256), 1, 32
    )
    return joined.withColumn("id", F.when(several, new_id).otherwise(F.col("id"))).withColumn(
        "source_key", key
    )


def _marked(rows: DataFrame) -> DataFrame:
    order = [F.col("reason").asc_nulls_first(), *[F.col(name).asc_nulls_first() for name in _ORDER]]
    first = F.row_number().over(Window.partitionBy("id").orderBy(*order)) == 1
    return rows.withColumn(REPEAT, ~first & F.col("dedup_text").isNotNull())


@dataclass
class DistinctKeys:
    """The stage, and the repeats it found for the manifest."""

    staging: Staging
    repeats: DataFrame | None = None
    found: bool = False

    def stage(self, frame: DataFrame) -> DataFrame:
        """Rows -> the same rows, keys and ids told apart by content, with ``_repeat``."""
        self.repeats = self.staging.keep(repeated_keys(frame), "repeats")
        self.found = self.repeats.limit(1).count() > 0
        if not self.found:
            return frame.withColumn(REPEAT, F.lit(False))
        table = self.repeats.select(
            *RECORD_KEY, F.lit(True).alias("_repeated"), (F.col("texts") > 1).alias("_several")
        )
        joined = join_decisions(frame, table, self.staging, "repeats-joined")
        rewritten = _told_apart(joined)
        repeated = F.coalesce(F.col("_repeated"), F.lit(False))
        rest = rewritten.where(~repeated).withColumn(REPEAT, F.lit(False))
        told = rest.unionByName(_marked(rewritten.where(repeated)))
        return self.staging.keep(told.drop("_repeated", "_several"), "after-keys")

    def report(self) -> dict[str, Any]:
        """Per source with repeated keys: how many, how many carried several texts (each
        now its own record), how many rows were exact repeats, and the first keys."""
        if not self.found or self.repeats is None:
            return {}
        repeats = self.repeats
        totals = repeats.groupBy("source").agg(
            F.count(F.lit(1)).alias("keys"),
            F.sum(F.when(F.col("texts") > 1, 1).otherwise(0)).alias("keys_with_several_texts"),
            F.sum("rows").alias("rows"),
        )
        first = F.row_number().over(Window.partitionBy("source").orderBy("source_key"))
        examples = repeats.withColumn("_n", first).where(F.col("_n") <= EXAMPLES)
        keys: dict[str, list[str]] = {}
        for row in examples.orderBy("source", "source_key").collect():
            keys.setdefault(row["source"], []).append(row["source_key"])
        return {
            row["source"]: {
                "keys": row["keys"],
                "keys_with_several_texts": row["keys_with_several_texts"],
                "rows": row["rows"],
                "examples": keys.get(row["source"], []),
            }
            for row in totals.orderBy("source").collect()
        }


def without_repeats(frame: DataFrame) -> DataFrame:
    """Exact repeats count as duplicates (whatever dedup decided); ``_repeat`` goes."""
    repeat = F.coalesce(F.col(REPEAT), F.lit(False)) & is_accepted()
    return frame.withColumn("is_duplicate", F.col("is_duplicate") | repeat).drop(REPEAT)


def repeats_stage(staging: Staging) -> tuple[DistinctKeys, Callable[[DataFrame], DataFrame]]:
    keys = DistinctKeys(staging)
    return keys, keys.stage
