"""``instructmill check``: validate the config and compile every template, without Spark."""

from __future__ import annotations

import argparse

from jobs.config import ConfigError, RunPlan, SourcePlan, load_plan
from jobs.runner import EXIT_OK, config_failure


def cluster_hint(plan: RunPlan, source: SourcePlan) -> str:
    """What the tag stage will give the source's rows, as far as the registry alone says."""
    registry = source.registry
    if registry.task_cluster:
        return registry.task_cluster
    if registry.categories_field:
        return "from each record's categories"
    if registry.task is None:
        return "per record"
    found = plan.taxonomy.lookup(registry.task, registry.crosswalk)
    origins = source.render.origins or (source.name,)
    found = found or next(filter(None, map(plan.taxonomy.lookup, origins)), None)
    return found or "unassigned"


def check_command(args: argparse.Namespace) -> int:
    try:
        plan = load_plan(args.conf, args.output)
    except ConfigError as exc:
        return config_failure(exc)
    for source in plan.sources:
        skipped = len(source.skipped_templates)
        print(
            f"{source.name}: {source.format}, {len(source.paths)} path(s), "
            f"{len(source.render.templates)} template(s)"
            + (f" ({skipped} generated not used: see templates_skipped)" if skipped else "")
            + f", task {source.registry.task or 'per record'}, cluster {cluster_hint(plan, source)}"
        )
    print(f"ok: {len(plan.sources)} sources -> {plan.output}")
    return EXIT_OK
