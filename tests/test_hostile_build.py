"""A hostile template set through the whole CLI, as a new user would run it: ``check`` and
``build`` come back in bounded time and memory, every bomb is its record's reject, and the
manifest still reconciles (read = written + rejected + removed)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.nightly_project import make_project, record, rows_of
from tests.test_faults import ROOT, build

pytestmark = pytest.mark.spark

BOMBS = {
    # Folded as a constant by stock Jinja while compiling: 1 GB before any record is seen.
    "string_bomb": "{{ 'a' * 10**9 }} ||| {{ summary }}",
    # No output and no call inside: only the CPU-time alarm stops it.
    "cpu_bomb": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
        "{{ text }} ||| {{ summary }}"
    ),
}


def _hostile_project(root: Path, records: int) -> Path:
    conf = make_project(
        root, [record(f"r{i}", i) for i in range(records)], "templates_per_record: all\n"
    )
    registry = root / "conf" / "datasets" / "notes.yaml"
    names = []
    for name, body in BOMBS.items():
        (root / "templates" / f"{name}.jinja").write_text(body, encoding="utf-8")
        names.append(f"../../templates/{name}.jinja")
    text = registry.read_text(encoding="utf-8").replace(
        "templates: [../../templates/summary.jinja]",
        f"templates: [../../templates/summary.jinja, {', '.join(names)}]",
    )
    registry.write_text(text, encoding="utf-8")
    return conf


def test_check_compiles_a_bomb_without_building_it(tmp_path: Path) -> None:
    conf = _hostile_project(tmp_path, 2)

    # 1 GiB of address space is far below what the folded constant would take.
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "check", "--conf", str(conf)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False, preexec_fn=limit,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_build_with_bombs_runs_to_the_end(tmp_path: Path, report: object) -> None:
    records = 12
    conf = _hostile_project(tmp_path, records)
    done = build(conf)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "out"
    manifest = json.loads((out / "_manifest.json").read_text(encoding="utf-8"))
    source = manifest["sources"]["notes"]
    rejects = rows_of(out / "rejects")
    reasons = {row["template_id"]: row["reason"] for row in rejects}
    assert len(rows_of(out / "data")) == source["written"] == records
    assert sorted(reasons.values()) == ["render_timeout", "render_too_large"]
    assert source["rejected_by_reason"] == {"render_too_large": records, "render_timeout": records}
    assert manifest["totals"]["reconciled"]
    report(
        f"hostile build: {records} records x 3 templates, {len(rejects)} bomb rejects, "
        f"{source['written']} rows written"
    )
