"""``instructmill report OUTPUT``: (re)write ``OUTPUT/report.html`` for an existing build, mix
or dedup output, from its ``_manifest.json`` and Spark aggregates over its committed
``data/`` (``jobs.report``). Build, mix and dedup write the same page at the end of a run;
this command is for an output written before they did, or to draw it again."""

from __future__ import annotations

import argparse

from pyspark.sql import SparkSession

from jobs.report import write_report
from jobs.runner import EXIT_OK, MASTER_HELP, configure_logging, run_command


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "output",
        metavar="OUTPUT",
        help="an output folder or URI of build, mix or dedup (holds _manifest.json and data/)",
    )
    parser.add_argument("--master", help=MASTER_HELP)
    parser.set_defaults(handler=report_command)


def report_command(args: argparse.Namespace) -> int:
    configure_logging()

    def report(spark: SparkSession) -> int:
        print(f"report: {write_report(spark, args.output)}")
        return EXIT_OK

    return run_command("report", f"instructmill report {args.output}", args.master, {}, report)
