"""SuperNI demonstrations through a real build on a real task file: the encodings reach the
output's template_format and the manifest, and a benchmark item that a task's examples hold
removes the rows that show it (the examples are checked like the record's own text)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from jobs.commands.build import run_build, run_context
from jobs.config import load_plan
from tests.conftest import ROOT, shared_data

pytestmark = pytest.mark.spark
TASK = "task1582_bless_hypernym_generation.json"


def registry(name: str, encodings: str) -> str:
    return (
        f"name: {name}\npath: ../../data/{TASK}\nformat: superni\nid_field: id\n"
        "task_field: task_name\ncategories_field: categories\ncrosswalk: superni\nlanguage: en\n"
        f"license: MIT\nsuperni: {{encodings: {encodings}}}\n"
        f"templates: [{ROOT / 'templates' / 'superni' / 'tk_instruct.jinja'}]\n"
    )


def test_shown_examples_are_decontaminated(spark: Any, tmp_path: Path) -> None:
    task = shared_data("superni", "tasks", TASK)
    (tmp_path / "data").mkdir()
    shutil.copy(task, tmp_path / "data" / TASK)
    explanation = json.loads(task.read_text(encoding="utf-8"))["Positive Examples"][0]
    (tmp_path / "evals.jsonl").write_text(
        json.dumps({"qid": "q1", "text": explanation["explanation"]}) + "\n", encoding="utf-8"
    )
    (tmp_path / "conf" / "datasets").mkdir(parents=True)
    datasets = tmp_path / "conf" / "datasets"
    (datasets / "explained.yaml").write_text(
        registry("explained", "[definition_pos2_neg2_explanation]"), encoding="utf-8"
    )
    (datasets / "plain.yaml").write_text(registry("plain", "[definition]"), encoding="utf-8")
    conf = tmp_path / "conf" / "pipeline.yaml"
    conf.write_text(
        "sources: [datasets/*.yaml]\noutput: ../out\ndedup: {enabled: false}\n"
        "langid: {enabled: false}\ndecontamination:\n  benchmarks:\n    - name: evals\n"
        "      path: ../evals.jsonl\n      format: jsonl\n      id_field: qid\n"
        "      fields: [text]\n",
        encoding="utf-8",
    )
    plan = load_plan(conf)
    manifest = run_build(spark, plan, run_context(plan, None)).to_dict()
    assert manifest["totals"]["reconciled"]
    explained, plain = manifest["sources"]["explained"], manifest["sources"]["plain"]
    instances = explained["read"]
    # Every row of the explained encoding shows the contaminated explanation: all removed.
    assert explained["rejected_by_reason"] == {"contaminates_benchmark": instances}
    assert plain["written"] == instances and plain["rejected"] == 0
    assert plain["template_formats"] == {"definition": instances}
    data = ds.dataset(tmp_path / "out" / "data", format="parquet", partitioning="hive")
    rows = data.to_table().to_pylist()
    assert {row["template_format"] for row in rows} == {"definition"}
    assert all(row["instruction"].startswith("Definition: ") for row in rows)
