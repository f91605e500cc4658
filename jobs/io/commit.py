"""Atomic commits: a run writes everything under its own staging folder and only a finished
run touches the output.

A build writes ``data/``, ``rejects/``, ``duplicates/`` (and a dated load's index of committed
records) under ``_staging/<run_id>/out/`` and counts what it wrote there; then the commit
moves the new parts into place, a handful of folder renames:

1. a journal (``_staging/<run_id>/_commit.json``) lists the moves, so a commit killed half-way
   is finished by the next run instead of leaving two runs mixed;
2. ``_SUCCESS`` is removed: a reader that honours it (Spark's own convention) waits;
3. each part moves: the previous folder aside (``_staging/<run_id>/previous/``), the new one
   in. A full build swaps ``data/`` and the other parts whole; a ``--run-date`` load swaps each
   part's ``load_date=D`` folder, which replaces exactly that date and nothing else;
4. the manifest (renamed over the old one: a reader sees the old or the new), its history
   copy and, for a dated load, ``_loads/D.json``; then ``_SUCCESS``, naming the run;
5. the staging folder, with the previous parts in it, is deleted.

A run that fails or is killed before step 1 leaves the output as it was; its staging folder
is the next run's to resume (the same ``--run-date``, or ``--resume RUN_ID``) or to delete,
and the next run says which. On an object store without atomic rename (S3) the moves are
copies: there a reader must go through the manifest, which names every file of the committed
run (``jobs.io.outputs.read_data`` does).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

from jobs.io import hadoop_fs
from jobs.io.staging import Staging
from jobs.layout import OutputLayout
from udfs.faults import inject

log = logging.getLogger("instructmill")

JOURNAL = "_commit.json"
RUN_RECORD = "_run.json"
SUCCESS = "_SUCCESS"
# Partial writes an older version or a killed Spark write can leave in an output part.
SPARK_LEFTOVERS = ("_temporary", ".spark-staging-")


@dataclass(frozen=True)
class Move:
    source: str  # in the run's staging folder
    target: str  # in the output
    aside: str  # where the previous target goes
    present: bool  # the run wrote this part (else the previous target just goes)


def staged_layout(layout: OutputLayout, run_id: str) -> OutputLayout:
    """Where the run writes its outputs before the commit: the same layout under staging."""
    return OutputLayout(
        f"{layout.staging(run_id)}/out",
        layout.data_partitions,
        layout.reject_partitions,
        layout.load_date,
    )


def _moves(spark: SparkSession, layout: OutputLayout, run_id: str) -> list[Move]:
    staged = staged_layout(layout, run_id)
    aside = f"{layout.staging(run_id)}/previous"
    moves = []
    for part in layout.parts:
        relative = f"{part}/{layout.date_folder}" if layout.dated else part
        source = f"{staged.root}/{relative}"
        moves.append(
            Move(
                source,
                f"{layout.root.rstrip('/')}/{relative}",
                f"{aside}/{relative}",
                hadoop_fs.exists(spark, source),
            )
        )
    return moves


def commit(
    spark: SparkSession, layout: OutputLayout, run_id: str, manifest: dict[str, Any]
) -> None:
    """Move the run's staged outputs into place and write ``manifest`` (see the module)."""
    journal = {
        "run_id": run_id,
        "moves": [move.__dict__ for move in _moves(spark, layout, run_id)],
        "manifests": _manifest_paths(layout, run_id),
        "manifest": manifest,
    }
    text = json.dumps(journal, indent=2, ensure_ascii=False) + "\n"
    hadoop_fs.replace_text(spark, f"{layout.staging(run_id)}/{JOURNAL}", text)
    _apply(spark, layout, journal)


def _manifest_paths(layout: OutputLayout, run_id: str) -> list[str]:
    paths = [layout.manifest_history(run_id)]
    if layout.load_date is not None:
        paths.append(layout.load_manifest(layout.load_date.isoformat()))
    return [*paths, layout.manifest]  # the output's own manifest last


def _apply(spark: SparkSession, layout: OutputLayout, journal: dict[str, Any]) -> None:
    """Carry out a journal; safe to repeat after it was interrupted at any point."""
    hadoop_fs.delete(spark, f"{layout.root.rstrip('/')}/{SUCCESS}")
    for entry in journal["moves"]:
        move = Move(**entry)
        # Killed after the new part moved in, the source is gone: that move is done.
        if move.present and not hadoop_fs.exists(spark, move.source):
            continue
        if hadoop_fs.exists(spark, move.target):
            hadoop_fs.delete(spark, move.aside)
            hadoop_fs.rename(spark, move.target, move.aside)
        inject(f"commit {move.target.rsplit('/', 1)[-1]}")
        if move.present:
            hadoop_fs.rename(spark, move.source, move.target)
    document = json.dumps(journal["manifest"], indent=2, ensure_ascii=False) + "\n"
    for path in journal["manifests"]:
        hadoop_fs.replace_text(spark, path, document)
    hadoop_fs.write_text(spark, f"{layout.root.rstrip('/')}/{SUCCESS}", journal["run_id"] + "\n")
    remove_staging(spark, layout, journal["run_id"])


def remove_staging(spark: SparkSession, layout: OutputLayout, run_id: str) -> None:
    Staging(spark, layout.staging(run_id)).remove()


def read_run_record(spark: SparkSession, layout: OutputLayout, run_id: str) -> dict[str, Any]:
    path = f"{layout.staging(run_id)}/{RUN_RECORD}"
    if not hadoop_fs.exists(spark, path):
        return {}
    return json.loads(hadoop_fs.read_text(spark, path))  # type: ignore[no-any-return]


def write_run_record(
    spark: SparkSession, layout: OutputLayout, run_id: str, record: dict[str, Any]
) -> None:
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    hadoop_fs.replace_text(spark, f"{layout.staging(run_id)}/{RUN_RECORD}", text)


def leftover_runs(spark: SparkSession, layout: OutputLayout) -> list[str]:
    return hadoop_fs.children(spark, layout.staging_root)


def is_committing(spark: SparkSession, layout: OutputLayout, run_id: str) -> bool:
    return hadoop_fs.exists(spark, f"{layout.staging(run_id)}/{JOURNAL}")


def finish_commits(spark: SparkSession, layout: OutputLayout) -> list[str]:
    """Before a run: finish every commit a killed run left half-done (its outputs were
    complete, so finishing it is the only way that mixes nothing). Returns what it did."""
    done = []
    for run_id in leftover_runs(spark, layout):
        if is_committing(spark, layout, run_id):
            journal = hadoop_fs.read_text(spark, f"{layout.staging(run_id)}/{JOURNAL}")
            _apply(spark, layout, json.loads(journal))
            done.append(f"finished the commit of run {run_id}, which was stopped while committing")
    return done


def clean_leftovers(spark: SparkSession, layout: OutputLayout, keep: str) -> list[str]:
    """Delete the staging folders of runs that stopped before their commit (all but ``keep``,
    this run) and Spark's partial-write folders in the output parts. Returns what it did."""
    done = []
    for run_id in leftover_runs(spark, layout):
        if run_id != keep:
            remove_staging(spark, layout, run_id)
            done.append(f"removed the staging folder of run {run_id}, stopped before its commit")
    for part in layout.parts:
        folder = f"{layout.root.rstrip('/')}/{part}"
        for name in hadoop_fs.children(spark, folder):
            if name.startswith(SPARK_LEFTOVERS):
                hadoop_fs.delete(spark, f"{folder}/{name}")
                done.append(f"removed the partial write {folder}/{name}")
    return done


def committed_files(spark: SparkSession, layout: OutputLayout, run_id: str) -> dict[str, list[str]]:
    """The files of each part the run wrote, relative to the output root as they will be after
    the commit: the manifest's list, which readers on an object store go by."""
    staged = staged_layout(layout, run_id)
    files = {}
    for part in layout.parts:
        folder = f"{staged.root}/{part}"
        files[part] = [f"{part}/{name}" for name in hadoop_fs.files_under(spark, folder)]
    return files
