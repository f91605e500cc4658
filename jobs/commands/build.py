"""``instructmill build``: sources -> rendered pairs -> partitioned Parquet + rejects + manifest.

The pipeline is :func:`build_stages`: every source is read, rendered, language-identified,
tagged (and, with one template per record, MinHash-signed) in one pass whose wide rows are
written once, to the run's staging folder. The held-out exclusion and dedup read only the
narrow columns they need from there and stage narrow per-record decisions; the writes apply
them to the staged rows (a broadcast join when the decisions are few), and the manifest is
counted from what is on disk. The staging folder is removed when the build succeeds.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from datetime import datetime, timezone
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from jobs.config import ConfigError, RunPlan, load_plan
from jobs.config.models import TABLE_NAME
from jobs.io import catalog, hadoop_fs
from jobs.io import commit as commits
from jobs.io.staging import Staging
from jobs.io.writer import write_partitioned
from jobs.layout import LOAD_DATE, OutputLayout
from jobs.manifests.build import BuildCounts, BuildManifest, BuildRun
from jobs.manifests.counts import (
    RenderedCounts,
    cluster_summary,
    count_input_rows,
    count_on_disk,
    count_rendered,
    count_shared_ids,
)
from jobs.manifests.run_record import spark_record, stage_record
from jobs.pipeline import Stage, StageRunner
from jobs.report import report_after_run
from jobs.runner import (
    EXIT_OK,
    EXIT_UNRECONCILED,
    config_failure,
    configure_logging,
    run_command,
)
from jobs.runs import record_run, resolve_run
from jobs.runs import run_context as run_context  # the tests' import
from jobs.schema import (
    OUTPUT_SCHEMA,
    REJECT_SCHEMA,
    accepted_rows,
    duplicate_rows,
    rejected_rows,
    select_output,
    select_rejects,
    unique_rows,
)
from jobs.stages.decisions import DEDUP_INPUTS, build_dedup_stage
from jobs.stages.decontaminate import (
    DECONTAMINATION_INPUTS,
    Decontamination,
    DecontaminationPlan,
)
from jobs.stages.dedup import (
    DECISION_COLUMNS,
    MINHASH,
    DedupPlan,
    signing_stage,
    without_dedup,
)
from jobs.stages.earlier_loads import STAGE as EARLIER_STAGE
from jobs.stages.earlier_loads import EarlierLoads, index_rows
from jobs.stages.exclude import contamination_rejects, exclude_shared_sources
from jobs.stages.few_shot import as_zero_shot, few_shot_stage
from jobs.stages.langid import OUTPUT_FIELDS as LANGID_COLUMNS
from jobs.stages.langid import langid_stage, ship_model, without_langid
from jobs.stages.render import rendered_sources, with_run_columns
from jobs.stages.repeats import REPEAT, DistinctKeys, without_repeats
from jobs.stages.tag import TagPlan, tag_stage
from jobs.task_clock import TaskClock
from udfs.faults import inject

log = logging.getLogger("instructmill")

RUN_COLUMNS = (LOAD_DATE, "run_id")
LANGID_INPUTS = ("instruction", "response", "content", "target_content", "language",
                 "target_language")  # fmt: skip
TAG_INPUTS = ("source", "task", "categories", "origins")
TAG_COLUMNS = ("task_cluster", "split")
EXCLUDE_INPUTS = ("origins", "split")
REPEAT_INPUTS = ("source", "source_key", "id", "template_id", "dedup_text")


def dedup_plan(plan: RunPlan) -> DedupPlan:
    return DedupPlan.of(
        plan.pipeline.dedup,
        remove_duplicates=plan.dedup is not None,
        decontaminate=plan.decontaminating,
    )


def _langid_stage(plan: RunPlan, clock: TaskClock | None) -> Stage:
    if plan.langid is not None and plan.langid_model is not None:
        meter = clock.meter("langid") if clock else None
        return Stage("langid", langid_stage(plan.langid, meter), LANGID_INPUTS, LANGID_COLUMNS)
    return Stage("langid (off)", without_langid, adds=LANGID_COLUMNS)


def signs_while_staging(plan: RunPlan) -> bool:
    """With one template per record, a row is (nearly always) its record: it is MinHash-signed
    in the staging pass, so its text crosses into Python once, and dedup only lists the
    records whose decision is unusual."""
    return plan.clustering and plan.templates_per_record == 1


def _dedup_stages(plan: RunPlan, staging: Staging) -> list[Stage]:
    if not plan.clustering:
        return [Stage("dedup (off)", without_dedup, adds=DECISION_COLUMNS)]
    dedup = build_dedup_stage(dedup_plan(plan), staging, plan.templates_per_record == 1)
    near = Stage("held-out near-duplicates", contamination_rejects, ("contaminates_heldout",))
    return [
        Stage("dedup", dedup, DEDUP_INPUTS, DECISION_COLUMNS),
        *([near] if plan.decontaminating else []),
    ]


def decontamination(plan: RunPlan, staging: Staging) -> Decontamination | None:
    """The n-gram check, when there is something to check against."""
    settings = plan.decontamination
    if settings is None or not plan.checks_ngrams:
        return None
    heldout = settings.heldout and bool(plan.pipeline.heldout_clusters)
    return Decontamination(DecontaminationPlan(settings, plan.benchmarks, heldout), staging)


def earlier_loads(plan: RunPlan, run: BuildRun, staging: Staging) -> EarlierLoads | None:
    """The check against earlier load dates: dated loads with dedup on, unless
    ``dedup.across_loads: false``."""
    if run.run_date is None or plan.dedup is None or plan.pipeline.dedup.across_loads is False:
        return None
    index = OutputLayout(plan.output).index
    return EarlierLoads(dedup_plan(plan), index, run.run_date, staging)


def build_stages(
    plan: RunPlan,
    run: BuildRun,
    staging: Staging,
    decontaminating: Decontamination | None = None,
    keys: DistinctKeys | None = None,
    loads: EarlierLoads | None = None,
    clock: TaskClock | None = None,
) -> list[Stage]:
    """The build after reading and rendering, as the design's flow reads: (with one template
    per record) signatures, language ID and tag, staged: the only pass over the wide rows;
    then exclude, decontaminate and dedup, each a narrow table applied with a join.
    ``clock``: the executor seconds of the staged pass's Python stages."""
    pipeline = plan.pipeline
    decontaminating = decontaminating or decontamination(plan, staging)
    excluding = bool(pipeline.heldout_clusters) and pipeline.exclude_shared_sources
    signing = signs_while_staging(plan)
    signer = signing_stage(dedup_plan(plan), clock.meter("sign") if clock else None)
    sign = Stage("sign", signer, ("dedup_text",), (MINHASH,))
    exclude = Stage("exclude", exclude_shared_sources(staging), EXCLUDE_INPUTS)
    return [
        Stage("run columns", with_run_columns(run.load_date, run.run_id), adds=RUN_COLUMNS),
        *([sign] if signing else []),
        _langid_stage(plan, clock),
        Stage("tag", tag_stage(TagPlan.of(plan)), TAG_INPUTS, TAG_COLUMNS, materialise=True),
        Stage("keys", (keys or DistinctKeys(staging)).stage, REPEAT_INPUTS, (REPEAT,)),
        *([exclude] if excluding else []),
        *(
            [Stage("decontaminate", decontaminating.stage, DECONTAMINATION_INPUTS)]
            if decontaminating is not None
            else []
        ),
        *([Stage(EARLIER_STAGE, loads.stage, ("id", "dedup_text"))] if loads else []),
        *_dedup_stages(plan, staging),
        Stage("exact repeats", without_repeats, (REPEAT, "is_duplicate")),
    ]


def _log_plan(plan: RunPlan) -> None:
    if not plan.clustering:
        return
    settings, lsh = plan.pipeline.dedup, dedup_plan(plan)
    log.info(
        "dedup: threshold %.2f, %d permutations = %d bands x %d rows, scope %s%s",
        settings.threshold, settings.num_perm, lsh.bands, lsh.rows, settings.scope,
        "" if plan.dedup is not None else " (decontamination only)",
    )  # fmt: skip


def _write_outputs(
    runner: StageRunner, rows: DataFrame, layout: OutputLayout, plan: RunPlan,
    counts: RenderedCounts, loads: EarlierLoads | None,
) -> None:  # fmt: skip
    """data/ (accepted, not a duplicate), rejects/, duplicates/ when asked, and a dated
    load's index of what it wrote."""
    duplicates = sum(counts.duplicates.values())
    written = rows.transform(accepted_rows).transform(unique_rows)
    # Few-shot exemplars are written rows: they are added as data/ is written (the counts
    # before do not depend on them), from a pool staged once.
    with runner.step("few-shot pool"):
        shown = written.transform(few_shot_stage(plan.sources, plan.pipeline.seed, runner.staging))
    parts = [
        ("data", shown.transform(select_output),
         layout.data, layout.data_partitions, counts.accepted - duplicates),
        ("rejects", rows.transform(rejected_rows).transform(select_rejects),
         layout.rejects, layout.reject_partitions, counts.rejected),
    ]  # fmt: skip
    if plan.writes_duplicates:
        parts.append(
            ("duplicates",
             rows.transform(accepted_rows).transform(duplicate_rows).transform(as_zero_shot)
             .transform(select_output),
             layout.duplicates, layout.reject_partitions, duplicates)
        )  # fmt: skip
    if loads is not None:
        parts.append(("index", index_rows(written, loads), layout.index, (LOAD_DATE,),
                      counts.accepted - duplicates))  # fmt: skip
    for name, frame, path, partitions, expected in parts:
        with runner.step(f"write {name}"):
            inject(f"write {name}")
            write_partitioned(
                frame, path, list(partitions), expected, plan.pipeline.rows_per_file,
                plan.pipeline.compression,
            )  # fmt: skip


def _on_disk(spark: SparkSession, layout: OutputLayout, run_id: str) -> tuple[Any, Any]:
    """What this run wrote: data rows by (source, template, cluster, split), rejects by
    (source, template, reason)."""
    written = count_on_disk(
        spark, layout.data, OUTPUT_SCHEMA, layout.data_partitions, run_id,
        ("source", "template_id", "task_cluster", "split", "template_format"), layout.date_folder,
    )  # fmt: skip
    rejected = count_on_disk(
        spark, layout.rejects, REJECT_SCHEMA, layout.reject_partitions, run_id,
        ("source", "template_id", "reason"), layout.date_folder,
    )  # fmt: skip
    return written, rejected


def _output_record(layout: OutputLayout, plan: RunPlan) -> dict[str, Any]:
    return {
        "data": layout.data,
        "rejects": layout.rejects,
        "duplicates": layout.duplicates if plan.writes_duplicates else None,
        "partition_by": list(layout.data_partitions),
        "rejects_partition_by": list(layout.reject_partitions),
    }


def _prepare(spark: SparkSession, layout: OutputLayout, run: BuildRun, resume: bool) -> None:
    """Finish or clear what stopped runs left, and start this run's staging folder."""
    for line in commits.clean_leftovers(spark, layout, keep=run.run_id):
        log.warning("recover: %s", line)
    if resume:
        log.info("resume: run %s, from the stages it finished", run.run_id)
    # A resumed run writes its outputs again: its stopped write may have been half done.
    hadoop_fs.delete(spark, commits.staged_layout(layout, run.run_id).root)


def run_build(
    spark: SparkSession, plan: RunPlan, run: BuildRun, resume: bool = False
) -> BuildManifest:
    """The build of ``run`` (``resume``: continuing a stopped one), committed atomically."""
    started = time.perf_counter()
    layout = OutputLayout.for_run(plan.output, plan.pipeline.partition_by, run.run_date)
    staged = commits.staged_layout(layout, run.run_id)
    _prepare(spark, layout, run, resume)
    staging = Staging(spark, layout.staging(run.run_id), resume=resume)
    with StageRunner(spark, "build", staging) as runner:
        if plan.langid is not None and plan.langid_model is not None:
            ship_model(spark, plan.langid_model, plan.langid)
        _log_plan(plan)
        checks = decontamination(plan, staging)
        keys = DistinctKeys(staging)
        loads = earlier_loads(plan, run, staging)
        clock = TaskClock(spark.sparkContext)
        stages = build_stages(plan, run, staging, checks, keys, loads, clock)
        # Planning the reads runs small jobs of its own (a CSV's header, a file's schema).
        with runner.step("sources"):
            sources = rendered_sources(spark, plan.sources, clock.meter("render"))
        rows = runner.run(sources, stages, upstream=("read", "render"))
        with runner.step("count"):
            found = checks.report() if checks is not None else None
            repeated = keys.report()
            read = count_input_rows(rows, plan.sources)
            log.info("read: %s records from %d sources", f"{sum(read.values()):,}", len(read))
            counts = count_rendered(rows)
            clusters = cluster_summary(rows.transform(accepted_rows)) if plan.dedup else None
            shared_ids = count_shared_ids(rows.transform(accepted_rows).transform(unique_rows))
        _log_counts(counts, repeated, shared_ids, clock.seconds())
        _write_outputs(runner, rows, staged, plan, counts, loads)
        with runner.step("count written"):
            written, rejected = _on_disk(spark, staged, run.run_id)
            files = commits.committed_files(spark, layout, run.run_id)
    counted = BuildCounts(
        read, written, rejected, counts.duplicates, shared_ids, counts.languages, counts.fallbacks
    )
    manifest = BuildManifest.of(
        plan, counted, run=run, clusters=clusters, output=_output_record(layout, plan),
        decontamination=found, repeated_ids=repeated,
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        seconds=round(time.perf_counter() - started, 3), spark=spark_record(spark),
        extra={"files": files, "stages": stage_record(runner, staging, resume, clock)},
    )  # fmt: skip
    document = manifest.to_dict()
    with runner.step("commit"):
        commits.commit(spark, layout, run.run_id, document)
    log.info("commit: run %s -> %s", run.run_id, plan.output)
    log.info("manifest: %s written, %s rejected, reconciled=%s -> %s",
             f"{document['totals']['written']:,}", f"{document['totals']['rejected']:,}",
             manifest.reconciled, layout.manifest)  # fmt: skip
    return manifest


def _log_counts(
    counts: RenderedCounts, repeated: dict[str, Any], shared_ids: dict[str, int],
    task_seconds: dict[str, float],
) -> None:  # fmt: skip
    log.info(
        "rows: %s accepted, %s rejected, %s duplicates", f"{counts.accepted:,}",
        f"{counts.rejected:,}", f"{sum(counts.duplicates.values()):,}",
    )  # fmt: skip
    # Each Python stage's own executor seconds: the staged pass runs them together.
    for name, seconds in task_seconds.items():
        log.info("%s: %.1f task seconds", name, seconds)
    for name, entry in repeated.items():
        log.warning(
            "render: %s: %s keys repeat (%s with several texts, told apart by content), "
            "e.g. %s", name, f"{entry['keys']:,}", f"{entry['keys_with_several_texts']:,}",
            ", ".join(entry["examples"][:3]),
        )  # fmt: skip
    for name, count in sorted(shared_ids.items()):
        log.warning("render: %s: %s rows share their id with another row", name, f"{count:,}")


def build_command(args: argparse.Namespace) -> int:
    configure_logging()
    try:
        plan = load_plan(args.conf, args.output)
    except ConfigError as exc:
        return config_failure(exc)
    log.info("plan: %d sources, %d templates -> %s", len(plan.sources),
             sum(len(s.render.templates) for s in plan.sources), plan.output)  # fmt: skip
    layout = OutputLayout.for_run(plan.output, plan.pipeline.partition_by, args.run_date)
    table = args.table or plan.pipeline.table
    if table is not None and not re.match(TABLE_NAME, table):
        return config_failure(ConfigError(f"--table {table!r}: expected db.name"))
    spark_conf = dict(plan.spark_conf)
    if table is not None:
        spark_conf.update(catalog.catalog_conf(plan.output, spark_conf))

    def build(spark: SparkSession) -> int:
        for line in commits.finish_commits(spark, layout):
            log.warning("recover: %s", line)
        run, resume = resolve_run(spark, plan, layout, args.run_date, args.resume)
        if not resume:
            record_run(spark, layout, plan, run)
        manifest = run_build(spark, plan, run, resume)
        if table is not None:
            # After the commit: the table points at committed folders only. Registering is
            # idempotent, so a failure here is mended by the next run.
            log.info("catalog: %s", json.dumps(catalog.register(spark, table, layout)))
        report = report_after_run(spark, "build", plan.output)
        print()
        print(manifest.summary_table())
        print(f"\nrun {manifest.run_id}: data in {manifest.output['data']}")
        print(f"manifest: {layout.manifest}")
        if report is not None:
            print(f"report: {report}")
        problems = manifest.unreconciled()
        if problems:
            print("counts do not reconcile:\n  " + "\n  ".join(problems), file=sys.stderr)
            return EXIT_UNRECONCILED
        return EXIT_OK

    name = f"instructmill build {plan.output}"
    return run_command("build", name, args.master, spark_conf, build)
