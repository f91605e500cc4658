"""Task clusters, held-out splits, same-source exclusion and decontamination, through the
build on Spark: a crafted case where exactly the right rows must go, and SuperNI task files
from the shared data tagged through their own categories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from jobs.commands.build import run_build, run_context
from jobs.config import load_plan
from tests.conftest import shared_data
from udfs.taxonomy import UNASSIGNED

pytestmark = pytest.mark.spark

LONG_A = (
    "the quick brown fox jumps over the lazy dog while the farmer watches from a small "
    "wooden porch near the old red barn on a sunny afternoon in late september"
)
LONG_B = (
    "a committee of seven engineers reviewed the bridge design for three weeks and found "
    "that the steel beams needed more bolts before the river crossing could open to traffic"
)
LONG_C = (
    "our book club meets every second tuesday at the public library to talk about novels "
    "that none of us would have picked alone and then we argue about the endings for hours"
)
HELDOUT = {
    "h1": LONG_A,
    "h2": LONG_B,
    "h3": "Premise and hypothesis number three, short but its own.",
    "h4": "Premise and hypothesis number four, short but its own.",
}
SAME_ORIGIN = {"s1": "A review that shares nothing with the held-out text.", "s2": "Another one."}
TRAIN = {
    "t_exact": "  THE quick brown fox jumps over the lazy dog while the farmer watches from a "
    "small wooden porch near the old red barn on a sunny afternoon in late SEPTEMBER ",
    "t_near": LONG_B.replace("traffic", "cyclists"),
    "t_clean": "An unrelated sentence about tea, rain and the price of bicycles in spring.",
    "t_dup1": LONG_C,
    "t_dup2": LONG_C.replace("hours", "days"),
}


def _jsonl(path: Path, records: dict[str, str], **extra: Any) -> None:
    path.write_text(
        "".join(
            json.dumps({"id": key, "text": text, **extra}, ensure_ascii=False) + "\n"
            for key, text in records.items()
        ),
        encoding="utf-8",
    )


def _registry(path: Path, name: str, data: str, **keys: Any) -> None:
    lines = [f"name: {name}", f"path: ../../data/{data}", "format: jsonl", "id_field: id",
             "language: en", "license: CC-BY-4.0", "templates: [../../templates/plain.jinja]"]  # fmt: skip
    lines += [f"{key}: {json.dumps(value)}" for key, value in keys.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _project(tmp_path: Path, pipeline: str) -> Path:
    for folder in ("data", "conf/datasets", "templates"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / "templates" / "plain.jinja").write_text("{{ text }} ||| ok\n", encoding="utf-8")
    conf = tmp_path / "conf" / "pipeline.yaml"
    conf.write_text(
        "sources: [datasets/*.yaml]\noutput: ../out\nlangid: {enabled: false}\n" + pipeline,
        encoding="utf-8",
    )
    return conf


def _build(spark: Any, conf: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict]]:
    plan = load_plan(conf)
    manifest = run_build(spark, plan, run_context(plan, None)).to_dict()
    out = Path(plan.output)
    data = ds.dataset(out / "data", format="parquet", partitioning="hive").to_table().to_pylist()
    rejects = (
        ds.dataset(out / "rejects", format="parquet", partitioning="hive").to_table().to_pylist()
    )
    return manifest, data, rejects


@pytest.fixture(scope="module")
def heldout_build(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("heldout")
    conf = _project(root, "heldout_clusters: [entailment]\n")
    _jsonl(root / "data" / "h.jsonl", HELDOUT)
    _jsonl(root / "data" / "s.jsonl", SAME_ORIGIN)
    _jsonl(root / "data" / "t.jsonl", TRAIN)
    datasets = root / "conf" / "datasets"
    # `nli` is not a cluster id: it reaches entailment through the FLAN crosswalk.
    _registry(datasets / "h.yaml", "nli_heldout", "h.jsonl", task="nli", origin=["snli"])
    _registry(datasets / "s.yaml", "sentiment_snli", "s.jsonl", task="sentiment",
              origin=["SNLI "])  # fmt: skip
    _registry(datasets / "t.yaml", "paraphrase_other", "t.jsonl", task="paraphrase",
              origin=["paws"])  # fmt: skip
    return _build(spark, conf)


def test_heldout_rows_are_exactly_the_heldout_clusters_rows_and_all_kept(
    heldout_build: Any,
) -> None:
    _, data, _ = heldout_build
    heldout = {row["source_key"] for row in data if row["split"] == "heldout"}
    assert heldout == set(HELDOUT)
    assert {row["task_cluster"] for row in data if row["split"] == "heldout"} == {"entailment"}
    assert all(row["split"] == "train" for row in data if row["source"] != "nli_heldout")


def test_exclusion_and_decontamination_remove_exactly_the_right_rows(heldout_build: Any) -> None:
    manifest, data, rejects = heldout_build
    by_reason: dict[str, set[str]] = {}
    for row in rejects:
        by_reason.setdefault(row["reason"], set()).add(row["source_key"])
        stage = "split" if row["reason"] == "shares_source_with_heldout" else "decontamination"
        assert row["stage"] == stage and row["detail"]
    assert by_reason == {
        "shares_source_with_heldout": {"s1", "s2"},
        "contaminates_heldout": {"t_exact", "t_near"},
    }
    train = {row["source_key"] for row in data if row["split"] == "train"}
    # The two near-duplicate train records keep one: that is dedup, not contamination.
    assert train in ({"t_clean", "t_dup1"}, {"t_clean", "t_dup2"})
    sources = manifest["sources"]
    assert sources["sentiment_snli"]["rejected_by_reason"] == {"shares_source_with_heldout": 2}
    assert sources["paraphrase_other"]["rejected_by_reason"] == {"contaminates_heldout": 2}
    assert sources["paraphrase_other"]["duplicates"] == 1
    assert sources["nli_heldout"]["splits"] == {"heldout": 4}
    assert manifest["totals"]["reconciled"]


def test_a_heldout_record_wins_its_cluster_whatever_the_ids(heldout_build: Any) -> None:
    _, data, _ = heldout_build
    kept = {row["source_key"]: row for row in data}
    # t_exact is h1's exact duplicate: the held-out row stays, the train row is removed.
    assert "h1" in kept and "t_exact" not in kept
    assert kept["h1"]["is_duplicate"] is False


def test_decontamination_runs_with_dedup_disabled(spark: Any, tmp_path: Path) -> None:
    conf = _project(tmp_path, "heldout_clusters: [entailment]\ndedup: {enabled: false}\n")
    _jsonl(tmp_path / "data" / "h.jsonl", HELDOUT)
    _jsonl(tmp_path / "data" / "t.jsonl", TRAIN)
    datasets = tmp_path / "conf" / "datasets"
    _registry(datasets / "h.yaml", "nli_heldout", "h.jsonl", task="nli")
    _registry(datasets / "t.yaml", "paraphrase_other", "t.jsonl", task="paraphrase")
    manifest, data, rejects = _build(spark, conf)
    assert {row["source_key"] for row in rejects} == {"t_exact", "t_near"}
    # Duplicates among train rows stay: dedup is off.
    assert {"t_dup1", "t_dup2", "t_clean"} <= {row["source_key"] for row in data}
    assert manifest["totals"]["duplicates"] == 0


def _superni_expected(taxonomy: Any, files: list[Path]) -> dict[str, str]:
    expected = {}
    for path in files:
        task = json.loads(path.read_text(encoding="utf-8"))
        mapped = [taxonomy.lookup(c, "superni") for c in task["Categories"]]
        expected[path.stem] = next((c for c in mapped if c), UNASSIGNED)
    return expected


def test_superni_tasks_are_tagged_through_their_own_categories(spark: Any, tmp_path: Path) -> None:
    folder = shared_data("superni")
    files = sorted([*folder.glob("tasks/*.json"), *folder.glob("excerpts/*.json")])
    conf = _project(tmp_path, "heldout_clusters: [commonsense]\ndedup: {enabled: false}\n")
    (tmp_path / "templates" / "superni.jinja").write_text(
        "{{ definition }}\n\n{{ input }} ||| {{ output[0] }}\n", encoding="utf-8"
    )
    datasets = tmp_path / "conf" / "datasets"
    (datasets / "superni.yaml").write_text(
        "name: superni\n"
        f"path: [{json.dumps(str(folder / 'tasks' / '*.json'))}, "
        f"{json.dumps(str(folder / 'excerpts' / '*.json'))}]\n"
        "format: superni\nid_field: id\ntask_field: task_name\ncategories_field: categories\n"
        "crosswalk: superni\norigin_field: source_datasets\nlicense: per-task\n"
        "dedup_fields: [input, output]\ntemplates: [../../templates/superni.jinja]\n",
        encoding="utf-8",
    )
    # An explicit cluster wins over the record's categories; a task nothing maps is counted.
    (datasets / "explicit.yaml").write_text(
        f"name: superni_explicit\npath: {json.dumps(str(files[0]))}\nformat: superni\n"
        "id_field: id\ntask_field: task_name\ncategories_field: categories\n"
        "task_cluster: translation\nlicense: per-task\ntemplates: [../../templates/superni.jinja]\n",
        encoding="utf-8",
    )
    # A task file whose fields do not fit the format, and one that is not JSON: one reject
    # each, counted as one record each (the count parses what rendering parses).
    wrong = json.loads(files[-1].read_text(encoding="utf-8"))
    wrong["Categories"] = "Translation"
    (tmp_path / "data" / "task_wrong_types.json").write_text(json.dumps(wrong), encoding="utf-8")
    (tmp_path / "data" / "task_cut.json").write_text('{"Instances": [', encoding="utf-8")
    (datasets / "bad.yaml").write_text(
        "name: superni_bad\npath: ../../data/task_*.json\nformat: superni\nid_field: id\n"
        "task_field: task_name\nlicense: per-task\ntemplates: [../../templates/superni.jinja]\n",
        encoding="utf-8",
    )
    _jsonl(tmp_path / "data" / "u.jsonl", {"u1": "one", "u2": "two"})
    _registry(datasets / "u.yaml", "custom", "u.jsonl", task="zzz_house_task")
    plan = load_plan(conf)
    manifest, data, _ = _build(spark, conf)
    expected = _superni_expected(plan.taxonomy, files)
    instances = sum(len(json.loads(p.read_text(encoding="utf-8"))["Instances"]) for p in files)
    superni = [row for row in data if row["source"] == "superni"]
    assert len(superni) == instances == manifest["sources"]["superni"]["read"]
    assert {row["task"] for row in superni} == set(expected)
    assert all(row["task_cluster"] == expected[row["task"]] for row in superni)
    assert all(
        (row["split"] == "heldout") == (row["task_cluster"] == "commonsense") for row in superni
    )
    # The xcopa tasks are held out; nothing else in the pool derives from xcopa.
    assert {r["task"] for r in superni if r["split"] == "heldout"} == {
        name for name, cluster in expected.items() if cluster == "commonsense"
    }
    assert {row["task_cluster"] for row in data if row["source"] == "superni_explicit"} == {
        "translation"
    }
    assert {row["task_cluster"] for row in data if row["source"] == "custom"} == {UNASSIGNED}
    assert manifest["unassigned"] == {"custom": 2}
    bad = manifest["sources"]["superni_bad"]
    assert (bad["read"], bad["written"], bad["rejected_by_reason"]) == (2, 0, {"malformed_row": 2})
    assert manifest["totals"]["reconciled"]
    assert manifest["sources"]["custom"]["task_clusters"] == {UNASSIGNED: 2}
