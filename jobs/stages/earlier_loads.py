"""Dedup across loads: a nightly load removes the records an earlier load date committed.

Every dated load commits an index of the records it wrote (``_index/load_date=D/``: source,
id, content hash, LSH band keys and the dedup text, linear in the records). The next load
joins its accepted rows against the index of every other date:

- the same content hash is a duplicate outright;
- a shared (band, key) makes a candidate pair, judged by the in-load dedup's own rule
  (``udfs.earlier_match``) on the two texts, for the candidate pairs only. A bucket's first 64
  earlier members are paired (ids in order): a boilerplate bucket does not become quadratic.

A row found is rejected with reason ``duplicate_of_earlier_load`` at stage ``dedup across
loads``, its detail naming the earlier id and date, before the in-load dedup (so the new
load's own clusters form among its new records only). The load's own date is never in the
comparison: rerunning a date compares it with the other dates only, as its first run did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.io import hadoop_fs
from jobs.io.staging import Staging
from jobs.layout import LOAD_DATE
from jobs.schema import is_accepted, reject_where
from jobs.stages.dedup import BROADCAST_ROWS, MINHASH, DedupPlan, with_signatures
from udfs.earlier_match import same_records
from udfs.minhash import minhasher

STAGE = "dedup across loads"
REASON = "duplicate_of_earlier_load"
# Earlier members of one LSH bucket that a new record is paired with.
PAIRS_PER_BUCKET = 64
INDEX_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType()),
        T.StructField("id", T.StringType()),
        T.StructField("content_hash", T.StringType()),
        T.StructField("band_keys", T.ArrayType(T.LongType())),
        T.StructField("dedup_text", T.StringType()),
        # The LSH settings the band keys were made with: other settings' keys never join.
        T.StructField("lsh", T.StringType()),
        T.StructField(LOAD_DATE, T.StringType()),
    ]
)


@dataclass(frozen=True)
class EarlierLoads:
    plan: DedupPlan
    index: str  # the output's committed index folder
    load_date: date
    staging: Staging

    @property
    def lsh(self) -> str:
        settings = self.plan.settings
        return (
            f"{settings.num_perm}p-{self.plan.bands}x{self.plan.rows}-s{settings.seed}"
            f"-w{settings.word_ngram}-c{settings.char_ngram}"
        )

    def earlier(self, spark: SparkSession) -> DataFrame | None:
        """The index of every other load date with these LSH settings; None without one."""
        if not hadoop_fs.exists(spark, self.index):
            return None
        index = spark.read.schema(INDEX_SCHEMA).option("basePath", self.index).parquet(self.index)
        return index.where(
            (F.col(LOAD_DATE) != F.lit(self.load_date.isoformat())) & (F.col("lsh") == self.lsh)
        )

    def stage(self, frame: DataFrame) -> DataFrame:
        earlier = self.earlier(frame.sparkSession)
        if earlier is None:
            return frame
        found = self.staging.keep(self._matches(frame, earlier), "earlier/matches")
        table = F.broadcast(found) if found.count() <= BROADCAST_ROWS else found
        joined = frame.join(table, "id", "left")
        detail = F.concat(
            F.lit("the same record as "), F.col("_earlier_id"),
            F.lit(", committed by the load of "), F.col("_earlier_date"),
        )  # fmt: skip
        flagged = reject_where(
            joined, F.col("_earlier_id").isNotNull(), STAGE, F.lit(REASON), detail
        )
        return flagged.drop("_earlier_id", "_earlier_date")

    def _matches(self, frame: DataFrame, earlier: DataFrame) -> DataFrame:
        """``id, _earlier_id, _earlier_date``: each accepted row with an earlier record."""
        rows = _signed(frame.where(is_accepted()), self.plan)
        firsts = earlier.groupBy("content_hash").agg(
            F.min(F.struct(LOAD_DATE, "id")).alias("_first")
        )
        exact = rows.select("id", "content_hash").join(firsts, "content_hash")
        exact = exact.select(
            "id", F.col("_first.id").alias("_earlier_id"), F.col(f"_first.{LOAD_DATE}").alias("_d")
        )
        near = self._near(rows.join(exact.select("id"), "id", "left_anti"), earlier)
        both = exact.unionByName(near)
        first = both.groupBy("id").agg(F.min(F.struct("_d", "_earlier_id")).alias("_m"))
        return first.select(
            "id",
            F.col("_m._earlier_id").alias("_earlier_id"),
            F.col("_m._d").alias("_earlier_date"),
        )

    def _near(self, rows: DataFrame, earlier: DataFrame) -> DataFrame:
        if not self.plan.settings.near:
            return rows.sparkSession.createDataFrame([], "id string, _earlier_id string, _d string")
        bucket = Window.partitionBy("band", "band_key").orderBy("_earlier_id")
        old = (
            earlier.select(
                F.col("id").alias("_earlier_id"),
                F.col(LOAD_DATE).alias("_d"),
                F.posexplode("band_keys").alias("band", "band_key"),
            )
            .withColumn("_n", F.row_number().over(bucket))
            .where(F.col("_n") <= PAIRS_PER_BUCKET)
        )
        new = rows.select("id", F.posexplode("band_keys").alias("band", "band_key"))
        pairs = self.staging.keep(
            new.join(old, ["band", "band_key"]).select("id", "_earlier_id", "_d").distinct(),
            "earlier/candidates",
        )
        texts = pairs.join(rows.select("id", F.col("dedup_text").alias("_new")), "id").join(
            earlier.select(F.col("id").alias("_earlier_id"), F.col("dedup_text").alias("_old")),
            "_earlier_id",
        )
        judge = _judge(self.plan)
        return texts.where(judge(F.col("_new"), F.col("_old"))).select("id", "_earlier_id", "_d")


def _judge(plan: DedupPlan) -> Callable[[Column, Column], Column]:
    settings = plan.settings

    def judge(new: pa.Array, old: pa.Array) -> pa.Array:
        hasher = minhasher(
            settings.num_perm, settings.seed, settings.word_ngram, settings.char_ngram
        )
        return same_records(new, old, hasher, settings.threshold, settings.match == "fields")

    return F.arrow_udf(judge, T.BooleanType())  # type: ignore[no-any-return]


def _signed(rows: DataFrame, plan: DedupPlan, *extra: str) -> DataFrame:
    """``id, content_hash, band_keys, dedup_text`` (and ``extra``) of rows, signed now
    unless the staging pass signed them."""
    if MINHASH in rows.columns:
        return rows.select(
            "id",
            F.col(f"{MINHASH}.content_hash").alias("content_hash"),
            F.col(f"{MINHASH}.band_keys").alias("band_keys"),
            "dedup_text",
            *extra,
        )
    signed = rows.select("id", "dedup_text", *extra).transform(with_signatures(plan))
    return signed.drop("signature")


def index_rows(written: DataFrame, loads: EarlierLoads) -> DataFrame:
    """The rows a load writes to data/ -> its index rows, partitioned by ``load_date``."""
    return _signed(written, loads.plan, "source").select(
        "source", "id", "content_hash", "band_keys", "dedup_text",
        F.lit(loads.lsh).alias("lsh"), F.lit(loads.load_date.isoformat()).alias(LOAD_DATE),
    )  # fmt: skip
