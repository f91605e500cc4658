"""Writing partitioned Parquet: few, full, sorted files, and exact replacement of a load date."""

from __future__ import annotations

import math
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.io import hadoop_fs
from jobs.layout import LOAD_DATE

# Below this many rows a write task is not worth its own files.
MIN_ROWS_PER_TASK = 50_000


def write_tasks(rows: int, rows_per_file: int, parallelism: int) -> int:
    """Enough tasks for files of ``rows_per_file``, and at least one per core once there are
    ``MIN_ROWS_PER_TASK`` rows for each: ``rows_per_file`` alone wrote 250k rows in one task."""
    by_size = math.ceil(rows / rows_per_file)
    return max(1, by_size, min(parallelism, rows // MIN_ROWS_PER_TASK))


def _layout(
    frame: DataFrame, partition_cols: list[str], rows: int, rows_per_file: int
) -> DataFrame:
    """Range-partition on (partition columns, id): a small partition value lands in one task
    (one file) and a huge one (English at Aya scale) is split over many tasks, instead of
    hash-partitioning it into a single straggler or writing thousands of tiny files."""
    parallelism = frame.sparkSession.sparkContext.defaultParallelism
    tasks = write_tasks(rows, rows_per_file, parallelism)
    keys = [*partition_cols, "id"]
    return frame.repartitionByRange(tasks, *[F.col(key) for key in keys]).sortWithinPartitions(
        *keys
    )


def write_partitioned(
    frame: DataFrame,
    path: str,
    partition_cols: list[str],
    rows: int,
    rows_per_file: int,
    compression: str,
    dynamic: bool,
) -> None:
    """``dynamic``: replace only the partitions this frame writes (scheduled loads); otherwise
    replace the whole folder."""
    writer = (
        _layout(frame, partition_cols, rows, rows_per_file)
        .write.mode("overwrite")
        .option("compression", compression)
        .option("maxRecordsPerFile", rows_per_file)
    )
    if dynamic:
        writer = writer.option("partitionOverwriteMode", "dynamic")
    writer.partitionBy(*partition_cols).parquet(path)


def remove_stale_partitions(
    spark: SparkSession, path: str, load_date: date, run_id: str
) -> list[str]:
    """After a dynamic overwrite, partitions of this load date that the rerun did not write
    (a language that is gone, say) still hold the earlier run's rows: delete them, so rerunning
    a date replaces exactly that date. Returns the folders removed."""
    date_dir = f"{path.rstrip('/')}/{LOAD_DATE}={load_date.isoformat()}"
    if not hadoop_fs.exists(spark, date_dir):
        return []
    stale = (
        spark.read.option("basePath", path)
        .parquet(date_dir)
        .where(F.col("run_id") != F.lit(run_id))
        .select(F.regexp_extract(F.col("_metadata.file_path"), r"^(.*)/[^/]*$", 1).alias("dir"))
        .distinct()
    )
    # Distinct partition folders of one date: a handful of strings, not records.
    folders = sorted(row["dir"] for row in stale.collect())
    for folder in folders:
        hadoop_fs.delete_and_prune(spark, folder, stop_at=path)
    return folders
