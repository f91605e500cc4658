"""Nightly loads: dedup across load dates, resume after a failed write, and failures that
leave the committed output as it was (in this process's Spark session; the kills are in
test_faults.py)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from jobs.commands.build import run_build
from jobs.config import load_plan
from jobs.failures import StageError
from jobs.io.outputs import read_data
from jobs.layout import OutputLayout
from jobs.runs import record_run, resolve_run, run_context
from tests.nightly_project import (
    content,
    make_project,
    record,
    rows_of,
    with_typo,
    write_records,
)
from udfs.faults import FAULT_ENV, InjectedFault

pytestmark = pytest.mark.spark

DAY1, DAY2 = date(2026, 3, 1), date(2026, 3, 2)


def _load(spark: Any, conf: Path, day: date | None) -> dict[str, Any]:
    plan = load_plan(conf)
    layout = OutputLayout.for_run(plan.output, plan.pipeline.partition_by, day)
    run, resume = resolve_run(spark, plan, layout, day, None)
    if not resume:
        record_run(spark, layout, plan, run)
    return run_build(spark, plan, run, resume).to_dict()


def _of_date(rows: list[dict[str, Any]], day: date) -> list[dict[str, Any]]:
    return [row for row in rows if str(row["load_date"]) == day.isoformat()]


def test_two_loads_and_a_rerun(spark: Any, tmp_path: Path, report: Any) -> None:
    day1 = [record(f"a{i}", i) for i in range(20)]
    # Day 2 sends 8 of yesterday's records again (under new ids), a near-duplicate of a 9th,
    # and 10 new ones.
    day2 = (
        [{**row, "id": f"b{i}"} for i, row in enumerate(day1[:8])]
        + [with_typo(day1[8], "b-typo")]
        + [record(f"n{i}", 100 + i) for i in range(10)]
    )
    conf = make_project(tmp_path, day1)
    first = _load(spark, conf, DAY1)
    out = tmp_path / "out"
    first_rows = _of_date(rows_of(out / "data"), DAY1)
    assert len(first_rows) == first["totals"]["written"] == 20

    write_records(tmp_path, day2)
    second = _load(spark, conf, DAY2)
    assert second["sources"]["notes"]["written"] == 10
    removed = [r for r in rows_of(out / "rejects") if r["reason"] == "duplicate_of_earlier_load"]
    assert (
        len(removed)
        == 9
        == second["sources"]["notes"]["rejected_by_reason"]["duplicate_of_earlier_load"]
    )
    assert all(r["stage"] == "dedup across loads" for r in removed)
    earlier = {row["id"] for row in first_rows}
    named = {r["detail"].split("the same record as ")[1].split(",")[0] for r in removed}
    assert named <= earlier and len(named) == 9
    assert {json.loads(r["record"])["source_key"] for r in removed} == {
        *(f"b{i}" for i in range(8)), "b-typo",
    }  # fmt: skip
    assert second["totals"]["reconciled"]

    # The rerun of day 1 compares with day 2 only (not with its own first run): the same rows.
    write_records(tmp_path, day1)
    rerun = _load(spark, conf, DAY1)
    rows = rows_of(out / "data")
    assert content(_of_date(rows, DAY1)) == content(first_rows)
    assert {row["run_id"] for row in _of_date(rows, DAY1)} == {rerun["run_id"]}
    assert len(_of_date(rows, DAY2)) == 10
    # Readers go through the manifests' file lists: exactly the committed rows of both dates.
    listed = read_data(spark, OutputLayout(str(out), ("load_date", "language", "task_cluster")))
    assert listed.count() == 30
    report(f"nightly loads: day 2 removed {len(removed)} of 19 repeated or near-repeated records")


def test_resume_after_a_failed_write(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, report: Any
) -> None:
    conf = make_project(tmp_path, [record(f"r{i}", i) for i in range(30)])
    clean = _load(spark, conf, None)
    out = tmp_path / "out"
    manifest_before = (out / "_manifest.json").read_bytes()
    rows_before = rows_of(out / "data")

    plan = load_plan(conf)
    layout = OutputLayout.for_run(plan.output, plan.pipeline.partition_by, None)
    run = run_context(plan, None)
    record_run(spark, layout, plan, run)
    monkeypatch.setenv(FAULT_ENV, "fail:write data")
    with pytest.raises(StageError, match="write data") as failed:
        run_build(spark, plan, run)
    assert isinstance(failed.value.__cause__, InjectedFault)
    monkeypatch.delenv(FAULT_ENV)
    # The failed run changed nothing a reader sees, and left its finished stages.
    assert (out / "_manifest.json").read_bytes() == manifest_before
    assert content(rows_of(out / "data")) == content(rows_before)
    assert (out / "_staging" / run.run_id / "after-tag" / "_SUCCESS").exists()

    resumed_run, resume = resolve_run(spark, plan, layout, None, run.run_id)
    assert resume and resumed_run == run
    resumed = run_build(spark, plan, resumed_run, resume=True).to_dict()
    stages = resumed["stages"]
    assert stages["resumed"] and stages["datasets"]["after-tag"] == "reused"
    assert content(rows_of(out / "data")) == content(rows_before)
    assert resumed["run_id"] == run.run_id != clean["run_id"]
    assert not (out / "_staging").exists()
    # The resumed run reads the staged pass back: nothing is rendered or identified again.
    assert clean["stages"]["task_seconds"]["render"] > 0
    assert stages["task_seconds"]["render"] == stages["task_seconds"]["langid"] == 0.0
    staged_pass = "read+render+run columns+sign+langid+tag"
    report(
        f"resume: staging pass {clean['stages']['seconds'][staged_pass]:.1f}s clean, "
        f"{stages['seconds'][staged_pass]:.1f}s resumed (read back)"
    )


@pytest.mark.parametrize("fault", ["fail:write rejects", "disk-full:write data"])
def test_a_failed_write_leaves_the_previous_output(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    conf = make_project(tmp_path, [record(f"r{i}", i) for i in range(12)])
    _load(spark, conf, DAY1)
    out = tmp_path / "out"
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    write_records(tmp_path, [record(f"s{i}", 50 + i) for i in range(12)])
    monkeypatch.setenv(FAULT_ENV, fault)
    with pytest.raises(StageError) as failed:
        _load(spark, conf, DAY1)
    assert isinstance(failed.value.__cause__, (InjectedFault, OSError))
    monkeypatch.delenv(FAULT_ENV)
    after = {
        p.relative_to(out): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and "_staging" not in p.parts
    }
    assert after == before
    # The next run of the date continues the stopped run and commits it.
    rerun = _load(spark, conf, DAY1)
    assert rerun["stages"]["resumed"]
    assert {row["source_key"] for row in rows_of(out / "data")} == {f"s{i}" for i in range(12)}
    assert not (out / "_staging").exists()
