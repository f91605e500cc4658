"""Writing partitioned Parquet: few, full, sorted files."""

from __future__ import annotations

import math

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

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
) -> None:
    """Write ``frame`` to a fresh folder (a run writes under its staging folder, and the
    commit moves the folder into place: ``jobs.io.commit``)."""
    writer = (
        _layout(frame, partition_cols, rows, rows_per_file)
        .write.mode("overwrite")
        .option("compression", compression)
        .option("maxRecordsPerFile", rows_per_file)
    )
    writer.partitionBy(*partition_cols).parquet(path)
