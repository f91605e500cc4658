"""Faults as a scheduled load meets them, each in its own ``instructmill build`` process: a
killed Python worker (retried: the same output), a killed driver while writing and while
committing (the previous output stays readable; the next run cleans up or finishes the
commit), and a real full disk where the machine can mount a tiny tmpfs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.nightly_project import content, make_project, record, rows_of, write_records
from udfs.faults import FAULT_ENV

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parent.parent


def build(
    conf: Path, *extra: str, fault: str | None = None, master: str | None = "local[2]"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    env["INSTRUCTMILL_SPARK_LOG_LEVEL"] = "ERROR"
    if fault:
        env[FAULT_ENV] = fault
    command = [sys.executable, "-m", "jobs.cli", "build", "--conf", str(conf), *extra]
    if master:
        command += ["--master", master]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def files(out: Path) -> dict[Path, bytes]:
    return {
        p.relative_to(out): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and "_staging" not in p.parts
    }


def test_a_killed_python_worker_is_retried(tmp_path: Path) -> None:
    conf = make_project(tmp_path / "clean", [record(f"r{i}", i) for i in range(40)])
    assert build(conf).returncode == 0
    faulty = make_project(tmp_path / "faulty", [record(f"r{i}", i) for i in range(40)])
    marker = tmp_path / "worker-killed"
    # The default master: local mode with task retries.
    done = build(faulty, fault=f"kill:python-worker@{marker}", master=None)
    assert done.returncode == 0, done.stderr[-3000:]
    assert marker.exists()  # a worker was killed
    clean_rows = rows_of(tmp_path / "clean" / "out" / "data")
    assert content(rows_of(tmp_path / "faulty" / "out" / "data")) == content(clean_rows)


def test_a_killed_driver_leaves_the_previous_output(tmp_path: Path) -> None:
    conf = make_project(tmp_path, [record(f"r{i}", i) for i in range(20)])
    assert build(conf).returncode == 0
    out = tmp_path / "out"
    before = files(out)
    write_records(tmp_path, [record(f"s{i}", 70 + i) for i in range(20)])
    killed = build(conf, fault="kill:write data")
    assert killed.returncode in (-9, 137)
    assert files(out) == before
    assert list((out / "_staging").iterdir())  # the killed run's leftovers
    again = build(conf)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "removed the staging folder of run" in again.stderr
    assert not (out / "_staging").exists()
    assert {row["source_key"] for row in rows_of(out / "data")} == {f"s{i}" for i in range(20)}


def test_a_commit_killed_half_way_is_finished_by_the_next_run(tmp_path: Path) -> None:
    conf = make_project(tmp_path, [record(f"r{i}", i) for i in range(20)])
    assert build(conf, "--run-date", "2026-05-01").returncode == 0
    out = tmp_path / "out"
    write_records(tmp_path, [record(f"s{i}", 70 + i) for i in range(20)])
    # Killed after day 1's old data folder moved aside, before the new one moved in.
    killed = build(conf, "--run-date", "2026-05-01", fault="kill:commit load_date=2026-05-01")
    assert killed.returncode in (-9, 137)
    assert not (out / "_SUCCESS").exists()  # readers that honour it wait
    again = build(conf, "--run-date", "2026-05-02")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "finished the commit of run" in again.stderr
    day1 = [r for r in rows_of(out / "data") if str(r["load_date"]) == "2026-05-01"]
    assert {row["source_key"] for row in day1} == {f"s{i}" for i in range(20)}
    assert (out / "_SUCCESS").exists() and not (out / "_staging").exists()


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True, check=False,
    )  # fmt: skip
    return done.returncode == 0


def test_a_full_disk_leaves_the_previous_output(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "3m"):
        pytest.skip("cannot mount a tmpfs here (needs root); the injected disk-full error "
                    "is tested in test_nightly_loads.py")  # fmt: skip
    try:
        conf = make_project(disk / "project", [record(f"r{i}", i) for i in range(20)])
        assert build(conf).returncode == 0
        out = disk / "project" / "out"
        before = files(out)
        # Tonight's export is far larger than the disk has room for.
        write_records(tmp_path / "big", [record(f"s{i}", i) for i in range(40_000)])
        (disk / "project" / "in" / "notes.jsonl").unlink()
        (disk / "project" / "in" / "notes.jsonl").symlink_to(
            tmp_path / "big" / "in" / "notes.jsonl"
        )
        full = build(conf)
        assert full.returncode != 0
        assert "No space left on device" in full.stderr
        assert files(out) == before
    finally:
        subprocess.run(["umount", str(disk)], check=False)
