"""Decontamination by n-gram overlap: train records that share a word 13-gram (by default)
with a held-out row of this build or an item of a benchmark the user supplies are removed.

Every text is compared in the dedup normal form with punctuation runs as spaces, field by
field (the fields the templates insert, ``dedup_text``), never the template's words.

- The reference side (benchmark items, held-out records) is cut into n-gram hashes in Spark,
  and n-grams found in more than ``max_item_frequency`` items (boilerplate) are dropped by one
  aggregation. Each reference set becomes a sorted array of 64-bit hashes
  (``udfs.ngram_match.NgramIndex``), broadcast once to the executors.
- The train side is tested in Arrow batches in one pass over the staged rows: no shuffle of
  the train rows and no Python loop per n-gram. Only the matches leave the pass (a few rows).
- Held-out rows can be many: above ``broadcast_ngrams`` distinct held-out n-grams, the train
  n-grams are joined with them by hash instead (a shuffle of hashes, linear in the n-grams),
  and only the records found that way are tested again against a broadcast index of the
  held-out items they met, for the matching n-gram.

A contaminated record (all its rows) becomes a reject of stage ``decontamination``, reason
``contaminates_heldout`` or ``contaminates_benchmark``, with a detail naming the benchmark,
the item and the first matching n-gram.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.io.staging import Staging
from jobs.schema import RECORD_KEY, is_accepted, reject_where
from jobs.stages.decisions import join_decisions
from jobs.stages.decontamination_sets import (
    HELDOUT_SET,
    DecontaminationPlan,
    benchmark_items,
    fields_of,
    heldout_items,
    index_entries,
    indexes,
    spark_schema,
)
from jobs.stages.tag import TRAIN
from udfs.ngram_match import NgramIndex, NgramSettings, train_ngrams
from udfs.records import FIELD_SEPARATOR

DEMO_TEXT = "demo_text"
log = logging.getLogger("instructmill.decontaminate")

STAGE = "decontamination"
CONTAMINATES_HELDOUT = "contaminates_heldout"
CONTAMINATES_BENCHMARK = "contaminates_benchmark"
# What the check reads of a row.
DECONTAMINATION_INPUTS = (*RECORD_KEY, "id", "split", "dedup_text")

_MATCH_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("source_key", pa.string()),
        pa.field("benchmark", pa.string()),
        pa.field("item_key", pa.int64()),
        pa.field("ngram", pa.string()),
    ]
)
_TRAIN_NGRAM_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("source_key", pa.string()),
        pa.field("hash", pa.int64()),
        pa.field("length", pa.int32()),
    ]
)


# --- the train side -------------------------------------------------------------------------


def _match_batches(
    indexes: Callable[[], dict[str, NgramIndex]], batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """(source, source_key, dedup_text) rows -> a row per (record, reference set) matched:
    the item and the first matching n-gram (in field order, then text order)."""
    for batch in batches:
        fields, owners = fields_of(batch.column("dedup_text"))
        sources = batch.column("source").to_pylist()
        keys = batch.column("source_key").to_pylist()
        out: dict[str, list[Any]] = {name: [] for name in _MATCH_SCHEMA.names}
        for name, index in indexes().items():
            seen: set[int] = set()
            for owner, match in zip(owners.tolist(), index.first_matches(fields), strict=True):
                if match is None or owner in seen:
                    continue
                seen.add(owner)
                for column, value in zip(
                    _MATCH_SCHEMA.names,
                    (sources[owner], keys[owner], name, match.item, match.ngram),
                    strict=True,
                ):
                    out[column].append(value)
        yield pa.RecordBatch.from_pydict(out, schema=_MATCH_SCHEMA)


def _train_ngram_batches(
    settings: NgramSettings, lengths: list[int], batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """(source, source_key, dedup_text) rows -> every distinct n-gram hash of a record (and
    its m-gram hashes for the short held-out lengths m), for the join with held-out n-grams."""
    for batch in batches:
        fields, owners = fields_of(batch.column("dedup_text"))
        sources = np.asarray(batch.column("source").to_pylist(), dtype=object)
        keys = np.asarray(batch.column("source_key").to_pylist(), dtype=object)
        found = train_ngrams(fields, settings, lengths)
        rows = owners[found.owners]
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(sources[rows].tolist(), pa.string()),
                pa.array(keys[rows].tolist(), pa.string()),
                pa.array(found.hashes.view(np.int64)),
                pa.array(found.lengths.astype(np.int32)),
            ],
            schema=_TRAIN_NGRAM_SCHEMA,
        )


def _broadcast_matches(
    spark: SparkSession, train: DataFrame, indexes: dict[str, NgramIndex]
) -> DataFrame:
    shipped = spark.sparkContext.broadcast(indexes)
    return train.select(*RECORD_KEY, "dedup_text").mapInArrow(
        lambda batches: _match_batches(lambda: shipped.value, batches),
        spark_schema(_MATCH_SCHEMA),
    )


def _joined_matches(
    spark: SparkSession,
    train: DataFrame,
    entries: DataFrame,
    plan: DecontaminationPlan,
    staging: Staging,
) -> DataFrame:
    """Held-out matches for a held-out side too large to broadcast: the train n-gram hashes
    joined with the held-out ones; the records met (few) are then tested with a broadcast
    index of just the held-out items they met, which names the n-gram."""
    settings = plan.ngrams
    heldout_entries = entries.where(F.col("benchmark") == HELDOUT_SET)
    heldout = heldout_entries.select("hash", "length", "item_key")
    lengths = sorted(
        row["length"] for row in heldout.select("length").distinct().collect() if row["length"] > 0
    )
    ngrams = train.select(*RECORD_KEY, "dedup_text").mapInArrow(
        lambda batches: _train_ngram_batches(settings, lengths, batches),
        spark_schema(_TRAIN_NGRAM_SCHEMA),
    )
    met = staging.keep(
        ngrams.join(heldout, ["hash", "length"]).select(*RECORD_KEY, "item_key").distinct(),
        "decontamination/heldout-met",
    )
    narrow = indexes(
        heldout_entries.join(met.select("item_key").distinct(), "item_key", "left_semi"), settings
    )
    records = train.join(met.select(*RECORD_KEY).distinct(), list(RECORD_KEY), "left_semi")
    return _broadcast_matches(spark, records, narrow)


@dataclass(frozen=True)
class Found:
    """What the check found, staged: a row per (train record, reference set) it contaminates,
    with the item and n-gram; every reference item (with the reason a benchmark line could
    not be used); and the index entries per set."""

    matches: DataFrame
    items: DataFrame
    ngrams: dict[str, int]  # index entries per reference set


def _checked_text(frame: DataFrame) -> Column:
    """A train record's text as checked: its own fields and, for a SuperNI row with
    demonstrations, the examples it shows (dedup compares only the record's own)."""
    if DEMO_TEXT not in frame.columns:  # an earlier output, checked by `decontaminate`
        return F.col("dedup_text")
    return F.concat_ws(FIELD_SEPARATOR, "dedup_text", DEMO_TEXT)


def find_matches(frame: DataFrame, plan: DecontaminationPlan, staging: Staging) -> Found:
    """The matches of the frame's train records against every reference set."""
    spark = frame.sparkSession
    parts = [benchmark_items(spark, benchmark) for benchmark in plan.benchmarks]
    if plan.heldout:
        parts.append(heldout_items(frame))
    items = parts[0]
    for part in parts[1:]:
        items = items.unionByName(part)
    items = staging.keep(items, "decontamination/items")
    entries = staging.keep(
        index_entries(items.where(F.col("reason").isNull()), plan), "decontamination/entries"
    )
    sizes: dict[str, int] = {
        row["benchmark"]: row["count"] for row in entries.groupBy("benchmark").count().collect()
    }
    train = frame.where(
        is_accepted() & (F.col("split") == TRAIN) & F.col("dedup_text").isNotNull()
    ).select(*RECORD_KEY, _checked_text(frame).alias("dedup_text"))
    large = plan.heldout and sizes.get(HELDOUT_SET, 0) > plan.settings.broadcast_ngrams
    broadcast = entries.where(F.col("benchmark") != HELDOUT_SET) if large else entries
    matches = _broadcast_matches(spark, train, indexes(broadcast, plan.ngrams))
    if large:
        log.info(
            "decontamination: %s held-out n-grams (> broadcast_ngrams %s): joined by hash",
            f"{sizes[HELDOUT_SET]:,}", f"{plan.settings.broadcast_ngrams:,}",
        )  # fmt: skip
        matches = matches.unionByName(_joined_matches(spark, train, entries, plan, staging))
    # A record of several rows (templates) is tested once per row: keep one match per set.
    first = matches.groupBy(*RECORD_KEY, "benchmark").agg(
        F.min(F.struct("item_key", "ngram")).alias("_m")
    )
    found = first.select(*RECORD_KEY, "benchmark", "_m.item_key", "_m.ngram")
    return Found(staging.keep(found, "decontamination/matches"), items, sizes)


def _rejects(matches: DataFrame, items: DataFrame, plan: DecontaminationPlan) -> DataFrame:
    """One reason per contaminated record: held-out first, then benchmarks by their order."""
    order = F.lit(len(plan.sets))
    for position, name in reversed(list(enumerate(plan.sets))):
        order = F.when(F.col("benchmark") == name, F.lit(position)).otherwise(order)
    ids = (
        items.where(F.col("reason").isNull())
        .groupBy("benchmark", "item_key")
        .agg(F.min("item_id").alias("item_id"))
    )
    named = matches.join(ids, ["benchmark", "item_key"], "left").withColumn("_order", order)
    chosen = named.groupBy(*RECORD_KEY).agg(
        F.min(F.struct("_order", "benchmark", "item_id", "ngram")).alias("_c")
    )
    heldout = F.col("_c.benchmark") == HELDOUT_SET
    detail = F.when(
        heldout,
        F.concat(F.lit("shares '"), F.col("_c.ngram"), F.lit("' with held-out record "),
                 F.col("_c.item_id")),
    ).otherwise(
        F.concat(F.lit("shares '"), F.col("_c.ngram"), F.lit("' with item "),
                 F.col("_c.item_id"), F.lit(" of benchmark "), F.col("_c.benchmark")),
    )  # fmt: skip
    return chosen.select(
        *RECORD_KEY,
        F.when(heldout, F.lit(CONTAMINATES_HELDOUT))
        .otherwise(F.lit(CONTAMINATES_BENCHMARK))
        .alias("_ngram_reason"),
        detail.alias("_ngram_detail"),
    )


@dataclass
class Decontamination:
    """The stage, and what it found for the manifest (read after the stage ran)."""

    plan: DecontaminationPlan
    staging: Staging
    found: Found | None = None

    def stage(self, frame: DataFrame) -> DataFrame:
        """Rows -> the same rows, contaminated train records' rows now rejects."""
        self.found = find_matches(frame, self.plan, self.staging)
        table = self.staging.keep(
            _rejects(self.found.matches, self.found.items, self.plan), "decontamination/records"
        )
        joined = join_decisions(frame, table, self.staging, "decontaminated")
        flagged = reject_where(
            joined,
            F.col("_ngram_reason").isNotNull(),
            STAGE,
            F.col("_ngram_reason"),
            F.col("_ngram_detail"),
        )
        return flagged.drop("_ngram_reason", "_ngram_detail")

    def report(self) -> dict[str, Any]:
        """Per reference set: its items, the lines that could not be used, the n-grams
        checked and the items found in train; and the matrix source x set of contaminated
        records (a record counts once in every set it meets)."""
        if self.found is None:
            return {}
        matches, items = self.found.matches, self.found.items
        sets: dict[str, dict[str, Any]] = {
            name: {"items": 0, "bad_lines": 0, "bad_reasons": {}, "ngrams": 0,
                   "found_in_train": 0, "contaminated_records": 0}
            for name in self.plan.sets
        }  # fmt: skip
        usable = items.where(F.col("reason").isNull())
        for row in (
            usable.groupBy("benchmark").agg(F.count_distinct("item_key").alias("n")).collect()
        ):
            sets[row["benchmark"]]["items"] = row["n"]
        bad = items.where(F.col("reason").isNotNull()).groupBy("benchmark", "reason").count()
        for row in bad.collect():
            entry = sets[row["benchmark"]]
            entry["bad_lines"] += row["count"]
            entry["bad_reasons"][row["reason"]] = row["count"]
        for name, count in self.found.ngrams.items():
            sets[name]["ngrams"] = count
        found = matches.groupBy("benchmark").agg(
            F.count_distinct("item_key").alias("items"), F.count(F.lit(1)).alias("records")
        )
        for row in found.collect():
            sets[row["benchmark"]].update(
                found_in_train=row["items"], contaminated_records=row["records"]
            )
        matrix: dict[str, dict[str, int]] = {}
        for row in matches.groupBy("source", "benchmark").count().collect():
            matrix.setdefault(row["source"], {})[row["benchmark"]] = row["count"]
        return {
            "sets": sets,
            "matrix": {
                source: dict(sorted(cells.items())) for source, cells in sorted(matrix.items())
            },
        }
