"""The `instructmill` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from jobs import build, dedup_job, mix_job


def _cluster_hint(plan: Any, source: Any) -> str:
    """What the tag stage will give the source's rows, as far as the registry alone says."""
    if source.render.categories_field:
        return "from each record's categories"
    if plan.taxonomy is None or source.task is None:
        return "per record"
    found = plan.taxonomy.lookup(source.task, source.crosswalk)
    origins = source.render.origins or (source.name,)
    found = found or next(filter(None, map(plan.taxonomy.lookup, origins)), None)
    return found or "unassigned"


def _check_command(args: argparse.Namespace) -> int:
    from jobs.config import ConfigError, load_plan

    try:
        plan = load_plan(args.conf, args.output)
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        return build.EXIT_CONFIG
    for source in plan.sources:
        print(
            f"{source.name}: {source.format}, {len(source.paths)} path(s), "
            f"{len(source.render.templates)} template(s), task "
            f"{source.task or 'per record'}, cluster "
            f"{source.task_cluster or _cluster_hint(plan, source)}"
        )
    print(f"ok: {len(plan.sources)} sources -> {plan.output}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="instructmill", description="Build instruction-tuning data from supervised datasets."
    )
    commands = root.add_subparsers(dest="command", required=True)
    build.add_build_arguments(
        commands.add_parser("build", help="render every source and write partitioned Parquet")
    ).set_defaults(handler=build.build_command)
    dedup_job.add_dedup_arguments(
        commands.add_parser("dedup", help="deduplicate an existing build output again")
    ).set_defaults(handler=dedup_job.dedup_command)
    mix_job.add_mix_arguments(
        commands.add_parser(
            "mix", help="sample a mixture (caps, group weights, languages) of a build output"
        )
    ).set_defaults(handler=mix_job.mix_command)
    check = commands.add_parser("check", help="validate the config and compile every template")
    check.add_argument("--conf", required=True)
    check.add_argument("--output")
    check.set_defaults(handler=_check_command)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
