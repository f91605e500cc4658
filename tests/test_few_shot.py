"""FLAN's few-shot formats through a real build: exemplars are other written train records of
the same source and template, never the row's own record, a held-out record (a pooled source
whose other task is held out), a rejected record or a removed duplicate."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from jobs.commands.build import run_build, run_context
from jobs.config import load_plan
from jobs.stages import few_shot
from tests.few_shot_checks import check_few_shot_rows

pytestmark = pytest.mark.spark

WORDS = "harbor lantern meadow orchard quartz ribbon saddle timber velvet wagon".split()
TEMPLATES = """dataset: pool
templates:
  a1: !Template
    answer_choices: Yes ||| Maybe ||| No
    id: a1
    jinja: 'Premise: {{premise}} Does it follow that "{{hypothesis}}"? ||| {{ answer_choices[label] }}'
    metadata: !TemplateMetadata
      original_task: true
    name: follows
"""


def records() -> tuple[list[str], dict[str, str]]:
    """Lines of the source, and a marker per record key: 40 train records, 10 of a held-out
    task, 3 that are rejected (no hypothesis) and 3 exact duplicates (case only)."""
    lines, markers = [], {}

    def add(key: str, premise: str, hypothesis: str | None, category: str) -> None:
        task = "lid" if category == "Language Identification" else "nli"
        row = {"id": key, "premise": premise, "label": len(key) % 3, "cats": [category],
               "task": task}  # fmt: skip
        if hypothesis is not None:
            row["hypothesis"] = hypothesis
        lines.append(json.dumps(row))
        markers[key] = premise

    for i in range(40):
        words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(6))
        add(
            f"t{i:02d}", f"Train premise {i} near the {words}.", f"Claim {i}.", "Textual Entailment"
        )
    for i in range(10):
        add(f"h{i:02d}", f"Heldout premise {i} of the lighthouse.", f"Other {i}.",
            "Language Identification")  # fmt: skip
    for i in range(3):
        add(f"r{i:02d}", f"Rejected premise {i} without a claim.", None, "Textual Entailment")
    for i in range(3):
        words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(6))
        add(f"d{i:02d}", f"TRAIN PREMISE {i} NEAR THE {words.upper()}.", f"CLAIM {i}.",
            "Textual Entailment")  # fmt: skip
    return lines, markers


def make_project(root: Path) -> Path:
    lines, _ = records()
    files = {
        "in/pool.jsonl": "\n".join(lines) + "\n",
        "templates/pool/templates.yaml": TEMPLATES,
        "conf/datasets/pool.yaml": (
            "name: pool\npath: ../../in/pool.jsonl\nformat: jsonl\nid_field: id\nlanguage: en\n"
            "task: nli\ncategories_field: cats\ncrosswalk: superni\ntask_field: task\n"
            "license: MIT\nformats: [fsopt, fsnoopt, zsopt]\nfew_shot: {k: 3, pool: 16}\n"
            "templates: [../../templates/pool/templates.yaml]\n"
        ),
        "conf/pipeline.yaml": (
            "sources: [datasets/*.yaml]\noutput: ../out\nseed: 5\n"
            "heldout_clusters: [language_identification]\nlangid: {enabled: false}\n"
        ),
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root / "conf" / "pipeline.yaml"


def table(path: Path) -> list[dict[str, Any]]:
    return ds.dataset(path, format="parquet", partitioning="hive").to_table().to_pylist()


def test_few_shot_rows_show_only_other_written_train_records(
    spark: Any, tmp_path: Path, report: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = load_plan(make_project(tmp_path))
    manifest = run_build(spark, plan, run_context(plan, None)).to_dict()
    assert manifest["totals"]["reconciled"]
    data = table(tmp_path / "out" / "data")
    rejects = table(tmp_path / "out" / "rejects")
    _, markers = records()
    splits = collections.Counter((row["source_key"][0], row["split"]) for row in data)
    assert splits == {("t", "train"): 40, ("h", "heldout"): 10}, splits
    assert {row["source_key"][0] for row in rejects} == {"r"}
    assert manifest["sources"]["pool"]["duplicates"] == 3
    found = check_few_shot_rows(data, markers, k=3)
    formats = manifest["sources"]["pool"]["template_formats"]
    assert sum(formats.values()) == 50 and {"fsopt", "fsnoopt", "zsopt"} <= set(formats)
    # A held-out row may be few-shot too (few-shot evaluation shows train exemplars); it
    # was checked above like every other: only written train records in it.
    report(f"few-shot: {found['few_shot_rows']} rows, {found['exemplars']} exemplars, all checked")
    # The same build with the pools joined by bucket instead of broadcast: the same rows.
    monkeypatch.setattr(few_shot, "BROADCAST_POOL_CHARS", 0)
    again = tmp_path / "again"
    plan = load_plan(make_project(tmp_path), output_override=str(again))
    run_build(spark, plan, run_context(plan, None))
    first = sorted((row["id"], row["instruction"]) for row in data)
    assert first == sorted((row["id"], row["instruction"]) for row in table(again / "data"))
