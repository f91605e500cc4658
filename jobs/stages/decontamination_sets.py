"""The reference side of decontamination: benchmark items read with the source readers,
this build's held-out records, and their n-gram hashes, aggregated once in Spark (an n-gram
in more than ``max_item_frequency`` items is boilerplate) and brought to the driver as one
sorted index per reference set (``udfs.ngram_match.NgramIndex``): the small side, a few
million hashes at most, broadcast to the executors by :mod:`jobs.stages.decontaminate`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema

from jobs.config import DecontaminationConfig
from jobs.config.benchmarks import BenchmarkPlan
from jobs.io.readers import read_source
from jobs.schema import RECORD_KEY, is_accepted
from jobs.stages.tag import HELDOUT
from udfs.benchmark_items import ITEM_SCHEMA, ItemSpec, item_batches
from udfs.ngram_match import NgramIndex, NgramSettings, item_ngrams
from udfs.records import FIELD_SEPARATOR

# The reference set of this build's own held-out rows, beside the benchmarks' names.
HELDOUT_SET = "heldout"

_ENTRY_SCHEMA = pa.schema(
    [
        pa.field("benchmark", pa.string()),
        pa.field("hash", pa.int64()),
        pa.field("length", pa.int32()),
        pa.field("item_key", pa.int64()),
    ]
)


@dataclass(frozen=True)
class DecontaminationPlan:
    settings: DecontaminationConfig
    benchmarks: tuple[BenchmarkPlan, ...]
    heldout: bool  # check against the held-out rows of the frame

    @property
    def ngrams(self) -> NgramSettings:
        settings = self.settings
        return NgramSettings(settings.ngram, settings.char_ngram, settings.min_tokens)

    @property
    def sets(self) -> list[str]:
        """The reference sets, in the order a record's reason is chosen."""
        return [*([HELDOUT_SET] if self.heldout else []), *(b.name for b in self.benchmarks)]


def fields_of(text: pa.Array) -> tuple[list[str], np.ndarray]:
    """The fields of every text, flat, and the row each belongs to."""
    fields: list[str] = []
    owners: list[int] = []
    for row, value in enumerate(text.to_pylist()):
        if value:
            parts = [part for part in value.split(FIELD_SEPARATOR) if part.strip()]
            fields.extend(parts)
            owners.extend([row] * len(parts))
    return fields, np.asarray(owners, dtype=np.int64)


# --- the reference side ---------------------------------------------------------------------


def _entry_batches(
    settings: NgramSettings, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """(benchmark, item_key, texts) rows -> one row per distinct (hash, length) of a text."""
    for batch in batches:
        names = batch.column("benchmark").to_pylist()
        keys = batch.column("item_key").to_numpy(zero_copy_only=False)
        texts: list[str] = []
        owners: list[int] = []
        for row, values in enumerate(batch.column("texts").to_pylist()):
            for value in values or ():
                texts.append(value)
                owners.append(row)
        found = item_ngrams(texts, settings)
        rows = np.asarray(owners, dtype=np.int64)[found.owners]
        yield pa.RecordBatch.from_arrays(
            [
                pa.array([names[row] for row in rows], pa.string()),
                pa.array(found.hashes.view(np.int64)),
                pa.array(found.lengths.astype(np.int32)),
                pa.array(keys[rows].astype(np.int64)),
            ],
            schema=_ENTRY_SCHEMA,
        )


def spark_schema(schema: pa.Schema) -> T.StructType:
    return from_arrow_schema(schema)


def benchmark_items(spark: SparkSession, benchmark: BenchmarkPlan) -> DataFrame:
    """``benchmark, item_id, item_key, texts, reason, detail``: one row per line (or
    instance) of the benchmark's files; a line that cannot be used has a reason."""
    ref = benchmark.ref
    spec = ItemSpec(benchmark.format == "jsonl", ref.id_field, tuple(ref.fields))
    raw = read_source(spark, benchmark)  # type: ignore[arg-type]  # reads like a source
    items = raw.mapInArrow(lambda batches: item_batches(spec, batches), spark_schema(ITEM_SCHEMA))
    return items.select(
        F.lit(benchmark.name).alias("benchmark"),
        "item_id",
        F.xxhash64(F.lit(benchmark.name), F.col("item_id")).alias("item_key"),
        "texts",
        "reason",
        "detail",
    )


def heldout_items(frame: DataFrame) -> DataFrame:
    """The held-out records as reference items (one row per rendered row: the n-grams of a
    record's rows are the same, and are counted once per item)."""
    rows = frame.where(is_accepted() & (F.col("split") == HELDOUT))
    return rows.select(
        F.lit(HELDOUT_SET).alias("benchmark"),
        F.col("id").alias("item_id"),
        F.xxhash64(*RECORD_KEY).alias("item_key"),
        F.split(F.col("dedup_text"), FIELD_SEPARATOR).alias("texts"),
        *[F.lit(None).cast("string").alias(name) for name in ("reason", "detail")],
    )


def index_entries(items: DataFrame, plan: DecontaminationPlan) -> DataFrame:
    """``benchmark, hash, length, item_key, items``: every n-gram (or short whole text) of
    the usable items, in at most ``max_item_frequency`` items, with its smallest item."""
    settings = plan.ngrams
    entries = items.select("benchmark", "item_key", "texts").mapInArrow(
        lambda batches: _entry_batches(settings, batches), spark_schema(_ENTRY_SCHEMA)
    )
    return (
        entries.groupBy("benchmark", "hash", "length")
        .agg(F.count_distinct("item_key").alias("items"), F.min("item_key").alias("item_key"))
        .where(F.col("items") <= plan.settings.max_item_frequency)
    )


def indexes(entries: DataFrame, settings: NgramSettings) -> dict[str, NgramIndex]:
    """The entries, brought to the driver (they are the small side: a few million hashes)
    as one sorted index per reference set."""
    table = entries.select("benchmark", "hash", "length", "item_key").toArrow()
    names = np.asarray(table.column("benchmark").to_pylist(), dtype=object)
    hashes = table.column("hash").to_numpy().view(np.uint64)
    lengths = table.column("length").to_numpy()
    keys = table.column("item_key").to_numpy()
    return {
        str(name): NgramIndex.from_arrays(
            hashes[names == name], lengths[names == name], keys[names == name], settings
        )
        for name in sorted(set(names.tolist()))
    }
