"""``OUTPUT/report.html`` for an existing output: its manifest and the Spark aggregates of its
committed data, rendered as one page and written through Hadoop's FileSystem (so a report
lands beside the data on HDFS or an object store as on local disk)."""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession

from jobs.io import hadoop_fs
from jobs.io.outputs import existing_layout, read_data
from jobs.progress import describe
from jobs.report.aggregates import DataAggregates, data_aggregates
from jobs.report.page import render_page

log = logging.getLogger("instructmill")

REPORT_NAME = "report.html"


def report_path(root: str) -> str:
    return f"{root.rstrip('/')}/{REPORT_NAME}"


def write_report(spark: SparkSession, root: str) -> str:
    """Write the report of the build, mix or dedup output at ``root``; its path. Sections
    whose numbers the manifest lacks are left out with a note; an output with neither a
    manifest nor data/ is an error (there is nothing to report on)."""
    layout, manifest = existing_layout(spark, root)
    data: DataAggregates | None
    try:
        frame = read_data(spark, layout)
    except FileNotFoundError:
        if not manifest:
            raise
        # A manifest without data/ (every row rejected, say): its own numbers still tell.
        data = None
    else:
        data = data_aggregates(frame)
    path = report_path(root)
    hadoop_fs.write_text(spark, path, render_page(root, manifest, data))
    log.info("report: %s", path)
    return path


def report_after_run(spark: SparkSession, command: str, root: str) -> str | None:
    """The report at the end of a build, mix or dedup (its jobs described as the command's
    ``report`` step): its path, or None when drawing it failed. The run has committed by
    then, so a failed report is a warning naming its cause (``instructmill report ROOT``
    draws it again), not a failed run."""
    describe(spark.sparkContext, f"instructmill {command}: report")
    try:
        return write_report(spark, root)
    except Exception as exc:
        log.warning("report: not written (%s: %s); run `instructmill report %s`",
                    type(exc).__name__, exc, root)  # fmt: skip
        return None
    finally:
        describe(spark.sparkContext, f"instructmill {command}")
