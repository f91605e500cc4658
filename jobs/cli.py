"""The ``instructmill`` command: one parser for every subcommand (build, dedup, decontaminate,
mix, check, export, report, templates).

Also the file spark-submit runs (``spark-submit jobs/cli.py build ...``, or ``jobs/build.py``,
``jobs/dedup_job.py``, ``jobs/mix_job.py``, ``jobs/export_job.py``, ``jobs/report_job.py``,
which hand their arguments here).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (spark-submit): make `jobs` and `udfs` importable
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _here]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
from collections.abc import Sequence
from datetime import date

from jobs.commands.build import build_command
from jobs.commands.check import check_command
from jobs.commands.decontaminate import decontaminate_command
from jobs.commands.dedup import dedup_command
from jobs.commands.export import add_export_arguments
from jobs.commands.mix import mix_command
from jobs.commands.report import add_report_arguments
from jobs.commands.templates import add_templates_arguments
from jobs.runner import MASTER_HELP


def _build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", required=True, help="pipeline YAML file")
    parser.add_argument("--output", help="output folder or URI (overrides the conf's `output`)")
    parser.add_argument("--master", help=MASTER_HELP)
    parser.add_argument(
        "--run-date",
        type=date.fromisoformat,
        help="YYYY-MM-DD: a scheduled load; sets load_date and replaces exactly that date "
        "(a rerun after a failure continues the stopped run of that date)",
    )
    parser.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="continue a stopped run from the last stage it finished (same conf and output)",
    )
    parser.add_argument(
        "--table",
        metavar="DB.NAME",
        help="register the committed data as this catalog table (and DB.NAME_rejects) in "
        "the session's Hive metastore; overrides the conf's `table`",
    )
    parser.set_defaults(handler=build_command)


def _dedup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="a build output folder (holds data/)")
    parser.add_argument("--output", required=True, help="where the deduplicated copy goes")
    parser.add_argument(
        "--conf", help="YAML with the dedup settings (a pipeline conf's `dedup:` or the mapping)"
    )
    parser.add_argument("--master", help=MASTER_HELP)
    parser.set_defaults(handler=dedup_command)


def _decontaminate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="a build output folder (holds data/)")
    parser.add_argument("--output", required=True, help="where the decontaminated copy goes")
    parser.add_argument(
        "--conf",
        required=True,
        help="YAML with the settings (a pipeline conf's `decontamination:` or the mapping)",
    )
    parser.add_argument("--master", help=MASTER_HELP)
    parser.set_defaults(handler=decontaminate_command)


def _mix(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", required=True, help="mixture YAML (caps, groups, languages...)")
    parser.add_argument("--input", required=True, help="a build output folder (holds data/)")
    parser.add_argument("--output", required=True, help="where the mixture goes")
    parser.add_argument("--master", help=MASTER_HELP)
    parser.set_defaults(handler=mix_command)


def _check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", required=True)
    parser.add_argument("--output")
    parser.set_defaults(handler=check_command)


COMMANDS = {
    "build": ("render every source and write partitioned Parquet", _build),
    "dedup": ("deduplicate an existing build output again", _dedup),
    "decontaminate": (
        "remove train records overlapping benchmarks from an existing build output",
        _decontaminate,
    ),
    "mix": ("sample a mixture (caps, group weights, languages) of a build output", _mix),
    "check": ("validate the config and compile every template", _check),
    "export": (
        "write a build or mixture output as trainer-ready files (TRL, LLaMA-Factory, Aya) "
        "with a Hub dataset card",
        add_export_arguments,
    ),
    "report": (
        "write OUTPUT/report.html for an existing build, mix or dedup output",
        add_report_arguments,
    ),
    "templates": (
        "paraphrase or translate templates with a chat model the user runs, check every "
        "variant and write them for review",
        add_templates_arguments,
    ),
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="instructmill", description="Build instruction-tuning data from supervised datasets."
    )
    commands = root.add_subparsers(dest="command", required=True)
    for name, (summary, add_arguments) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=summary, description=summary))
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
