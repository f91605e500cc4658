"""A run's intermediate datasets: written once as Parquet, read back by the stages after them.

The build writes its wide rendered rows once, to ``_staging/<run_id>/rows``; every later stage
reads only the columns it needs from there, and writes its narrow result (per-record signatures,
decisions) beside them. Compared with persisting a DataFrame, a staged dataset spills nothing
into the JVM heap (a 250k-record build's MEMORY_AND_DISK cache ran a 1g driver out of memory),
survives a lost executor, and its Parquet columns are pruned on read, so a stage that needs
keys and hashes never reads the texts. The folder is deleted when the run commits.

A resumed run (``resume``) reads back every dataset the stopped run finished (its folder has
Spark's ``_SUCCESS``, written when the write job commits) instead of computing it: Spark is
lazy, so the stages before it (rendering, language ID, signatures) never run. Stages are
deterministic, so the result is the uninterrupted run's.

Without a folder (``instructmill dedup`` has no staging area), a dataset is checkpointed
instead: reliably when the session has a checkpoint directory, else locally.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from jobs.io import hadoop_fs

# Intermediate data: fast to write and read back, deleted at the end of the run.
STAGING_COMPRESSION = "snappy"


class Staging:
    def __init__(self, spark: SparkSession, root: str | None, resume: bool = False) -> None:
        self.spark = spark
        self.root = root.rstrip("/") if root else None
        self.resume = resume
        # Each dataset of this run: "written", or "reused" from the stopped run.
        self.datasets: dict[str, str] = {}

    def path(self, name: str) -> str:
        if self.root is None:
            raise ValueError("this run has no staging folder")
        return f"{self.root}/{name}"

    def keep(self, frame: DataFrame, name: str) -> DataFrame:
        """``frame`` computed once, now: written to ``name`` and read back with the same
        schema (or checkpointed, without a folder)."""
        if self.root is None:
            if self.spark.sparkContext.getCheckpointDir():
                return frame.checkpoint(eager=True)
            return frame.localCheckpoint(eager=True)
        path = self.path(name)
        if self.resume and hadoop_fs.exists(self.spark, f"{path}/_SUCCESS"):
            self.datasets[name] = "reused"
            return self.spark.read.schema(frame.schema).parquet(path)
        self.datasets[name] = "written"
        frame.write.mode("overwrite").option("compression", STAGING_COMPRESSION).parquet(path)
        return self.spark.read.schema(frame.schema).parquet(path)

    def remove(self) -> None:
        """Delete the staging folder (after a successful run)."""
        if self.root is not None:
            hadoop_fs.delete(self.spark, self.root)
            # `_staging/` itself goes too once no other run's folder is in it.
            hadoop_fs.delete_if_empty(self.spark, self.root.rsplit("/", 1)[0])
