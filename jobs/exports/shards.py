"""Writing an export's shards: per split a number of files known before the write, each named
``{split}-{index:05d}-of-{count:05d}.{ext}``, balanced, and the same bytes on every run.

A file's name needs the split's file count, so the rows are counted first: one aggregate by
split and hash bucket of the id. The driver turns those counts into each bucket's offset inside
its split. A row's position in its split is its bucket's offset plus its rank inside the bucket
(a window over one bucket, about 1/4096 of the split: never a whole split in one task), and
its file is ``position * files // rows``, so files differ by at most one row and none holds more
than ``shard_rows``. The write repartitions by file number and sorts by id: each file number is
one task's one part file in its own Hive folder, renamed to its final name through Hadoop
FileSystem (local disk, HDFS and object stores alike). What was written is counted by reading
the files back.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from jobs.exports.formats import GZIP, PARQUET
from jobs.io import hadoop_fs

BUCKETS = 4096
BUCKET = "export_bucket"
FILE = "export_file"
# Ids are unique in an output; the texts only break ties in a hand-made one.
ORDER = ("id", "instruction", "response")
PARQUET_COMPRESSION = "zstd"
WRITE_FOLDER = "_write"

BucketRows = Mapping[tuple[str, int], int]  # (split, bucket) -> rows

OFFSETS_SCHEMA = T.StructType(
    [
        T.StructField("split", T.StringType()),
        T.StructField(BUCKET, T.LongType()),
        T.StructField("offset", T.LongType()),
        T.StructField("split_rows", T.LongType()),
        T.StructField("files", T.LongType()),
        T.StructField("first", T.LongType()),
    ]
)


@dataclass(frozen=True)
class SplitShards:
    split: str
    rows: int
    files: int  # 0 for an empty split: it writes nothing
    first: int  # the number of its first file among all the export's files
    folder: str  # relative to the export's root

    def names(self, extension: str) -> list[str]:
        return [
            f"{self.folder}/{self.split}-{index:05d}-of-{self.files:05d}.{extension}"
            for index in range(self.files)
        ]


def extension(file_format: str, compression: str | None) -> str:
    if file_format == PARQUET:
        return "parquet"
    return "jsonl.gz" if compression == GZIP else "jsonl"


def bucket_column() -> Column:
    return F.pmod(F.xxhash64(F.col("id")), F.lit(BUCKETS))


def plan_shards(
    bucket_rows: BucketRows, splits: Sequence[str], shard_rows: int, folder: Callable[[str], str]
) -> list[SplitShards]:
    totals: dict[str, int] = defaultdict(int)
    for (split, _), rows in bucket_rows.items():
        totals[split] += rows
    plans, first = [], 0
    for split in splits:
        files = math.ceil(totals[split] / shard_rows)
        plans.append(SplitShards(split, totals[split], files, first, folder(split)))
        first += files
    return plans


def offsets_frame(
    spark: SparkSession, plans: Sequence[SplitShards], bucket_rows: BucketRows
) -> DataFrame:
    """One row per (split, bucket) with rows: the rows of the split's buckets before it (in
    bucket order) and the split's totals. Aggregates, at most ``BUCKETS`` rows per split."""
    rows = []
    for plan in plans:
        offset = 0
        for bucket in sorted(b for split, b in bucket_rows if split == plan.split):
            rows.append((plan.split, bucket, offset, plan.rows, plan.files, plan.first))
            offset += bucket_rows[(plan.split, bucket)]
    return spark.createDataFrame(rows, OFFSETS_SCHEMA)


def assign_files(frame: DataFrame, offsets: DataFrame) -> DataFrame:
    """``frame`` with each row's file number (``FILE``) among all the export's files."""
    rank = F.row_number().over(Window.partitionBy("split", BUCKET).orderBy(*ORDER))
    position = F.col("offset") + rank - 1
    number = F.col("first") + F.floor(position * F.col("files") / F.col("split_rows"))
    joined = frame.select("*", bucket_column().alias(BUCKET)).join(
        F.broadcast(offsets), ["split", BUCKET]
    )
    return joined.select(*[F.col(name) for name in frame.columns], number.cast("int").alias(FILE))


def _write(rows: DataFrame, folder: str, file_format: str, compression: str | None) -> None:
    # One part file per file number: its rows are all in one task and no record limit splits
    # them.
    writer = rows.write.mode("overwrite").partitionBy(FILE).option("maxRecordsPerFile", 0)
    if file_format == PARQUET:
        writer.option("compression", PARQUET_COMPRESSION).parquet(folder)
        return
    # A null field stays in the row as null: every row of a file has the same keys.
    writer.option("ignoreNullFields", "false").option("compression", compression or "none").json(
        folder
    )


def _rename_parts(spark: SparkSession, written: str, root: str, targets: Mapping[int, str]) -> None:
    parts: dict[int, list[str]] = defaultdict(list)
    for relative in hadoop_fs.files_under(spark, written):
        folder = relative.split("/", 1)[0]  # export_file=N
        parts[int(folder.split("=", 1)[1])].append(relative)
    wrong = {n: len(parts.get(n, [])) for n in {*targets, *parts} if len(parts.get(n, [])) != 1}
    if wrong:
        raise RuntimeError(f"export write: expected one part file per shard, found {wrong}")
    for number, name in sorted(targets.items()):
        hadoop_fs.rename(spark, f"{written}/{parts[number][0]}", f"{root}/{name}")


def write_shards(
    frame: DataFrame,
    fields: list[Column],
    plans: Sequence[SplitShards],
    root: str,
    file_format: str,
    compression: str | None,
) -> list[str]:
    """Write ``frame``'s rows (numbered by :func:`assign_files`) as the plans' files under
    ``root``, each row as ``fields``; the files written, relative to ``root``."""
    total = sum(plan.files for plan in plans)
    if total == 0:
        return []
    spark = frame.sparkSession
    written = f"{root}/{WRITE_FOLDER}"
    ordered = frame.repartition(total, FILE).sortWithinPartitions(FILE, *ORDER)
    _write(ordered.select(*fields, FILE), written, file_format, compression)
    ext = extension(file_format, compression)
    targets = {plan.first + i: name for plan in plans for i, name in enumerate(plan.names(ext))}
    _rename_parts(spark, written, root, targets)
    hadoop_fs.delete(spark, written)
    return [targets[number] for number in sorted(targets)]


def count_written(
    spark: SparkSession, root: str, names: Sequence[str], file_format: str, schema: T.StructType
) -> dict[str, int]:
    """Rows per file, read back from the files (one aggregate); a file that holds none is 0."""
    if not names:
        return {}
    paths = [f"{root}/{name}" for name in names]
    if file_format == PARQUET:
        frame = spark.read.parquet(*paths)
    else:
        # A line that is not a row of the written schema fails the count instead of being one.
        frame = spark.read.schema(schema).option("mode", "FAILFAST").json(paths)
    by_name = {name.rsplit("/", 1)[-1]: name for name in names}
    counted = frame.groupBy(F.col("_metadata.file_name").alias("file")).count().collect()
    found = {by_name[row["file"]]: int(row["count"]) for row in counted}
    return {name: found.get(name, 0) for name in names}


def drop_checksums(spark: SparkSession, folder: str) -> None:
    """Delete the ``.NAME.crc`` files Hadoop's local file system writes beside each file:
    LLaMA-Factory loads every file of a split's folder and refuses one whose files differ in
    type, and an upload to the Hub would publish them. Other file systems write none."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(folder)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not jvm.java.lang.Class.forName("org.apache.hadoop.fs.ChecksumFileSystem").isInstance(fs):
        return
    raw = fs.getRawFileSystem()
    listing = raw.listFiles(path, True)
    checksums = []
    while listing.hasNext():
        file = listing.next().getPath()
        name = str(file.getName())
        if name.startswith(".") and name.endswith(".crc"):
            checksums.append(file)
    for file in checksums:
        raw.delete(file, False)
