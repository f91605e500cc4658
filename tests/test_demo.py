"""End to end on the bundled demo conf: content, partition layout, manifest reconciliation."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from jobs.commands.build import run_build, run_context
from jobs.config import load_plan
from tests.conftest import ROOT

pytestmark = pytest.mark.spark

SAMPLES = ROOT / "data" / "samples"


def input_rows() -> dict[str, int]:
    """Rows per demo source, counted here without Spark."""

    def lines(name: str) -> int:
        return len((SAMPLES / name).read_text(encoding="utf-8").splitlines())

    def csv_rows(name: str) -> int:
        with (SAMPLES / name).open(encoding="utf-8", newline="") as handle:
            return sum(1 for _ in csv.reader(handle)) - 1

    return {
        "sentiment_reviews": lines("sentiment_reviews.jsonl"),
        "nli_en": lines("nli_en.jsonl"),
        "nli_fr": lines("nli_fr.jsonl"),
        "paraphrase_pairs": lines("paraphrase_pairs.jsonl"),
        "qa_es_de": pq.read_metadata(SAMPLES / "qa_es_de.parquet").num_rows,
        "translation_pairs": csv_rows("translation_pairs.csv"),
        "news_topics": csv_rows("news_topics.csv"),
    }


@pytest.fixture(scope="module")
def demo(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("demo")
    plan = load_plan(ROOT / "conf" / "demo.yaml", output_override=str(out))
    manifest = run_build(spark, plan, run_context(plan, None)).to_dict()
    read = lambda sub: ds.dataset(out / sub, partitioning="hive").to_table().to_pylist()  # noqa: E731
    return {"out": out, "manifest": manifest, "data": read("data"), "rejects": read("rejects")}


def test_demo_covers_tasks_languages_and_scripts(demo: dict[str, Any]) -> None:
    data = demo["data"]
    assert len(data) >= 400
    assert {r["task_cluster"] for r in data} >= {
        "sentiment",
        "entailment",
        "extractive_qa",
        "translation",
        "paraphrase",
        "topic_classification",
    }
    assert len({r["language"] for r in data}) >= 8
    text = "".join(r["instruction"] for r in data)
    assert any("\u0400" <= c <= "\u04ff" for c in text)  # Cyrillic
    assert any("\u0600" <= c <= "\u06ff" for c in text)  # Arabic
    assert any("\u4e00" <= c <= "\u9fff" for c in text)  # Han


def test_demo_holds_out_entailment_and_tags_every_row(demo: dict[str, Any]) -> None:
    data = demo["data"]
    heldout = {r["source"] for r in data if r["split"] == "heldout"}
    assert heldout == {"nli_en", "nli_fr"}
    assert all((r["split"] == "heldout") == (r["task_cluster"] == "entailment") for r in data)
    assert demo["manifest"]["unassigned"] == {}
    assert demo["manifest"]["totals"]["splits"] == {
        "heldout": sum(r["split"] == "heldout" for r in data),
        "train": sum(r["split"] == "train" for r in data),
    }


def test_every_row_is_a_real_pair_with_lineage(demo: dict[str, Any]) -> None:
    for row in demo["data"]:
        assert row["instruction"].strip() and row["response"].strip()
        assert "|||" not in row["instruction"] or "|||" in json.dumps(row)
        assert row["messages"][0] == {"role": "user", "content": row["instruction"]}
        assert row["messages"][1] == {"role": "assistant", "content": row["response"]}
        assert row["template_id"] and len(row["template_hash"]) == 16
        assert row["license"] == "CC-BY-4.0"
    assert len({r["id"] for r in demo["data"]}) == len(demo["data"])


def test_language_id_agrees_with_the_declared_languages(demo: dict[str, Any]) -> None:
    from udfs.language_codes import iso_code

    data = demo["data"]
    assert all(r["lang_mismatch"] is False for r in data)
    for row in data:
        for column in ("language", "instruction_lang", "response_lang"):
            assert row[column] == "und" or iso_code(row[column]) == row[column]
    scripts = {r["language"]: r["script"] for r in data if r["source"] == "sentiment_reviews"}
    assert scripts == {
        "en": "Latn", "fr": "Latn", "de": "Latn", "es": "Latn", "pt": "Latn", "ru": "Cyrl",
        "ar": "Arab", "hi": "Deva", "zh": "Hani", "ja": "Jpan",
    }  # fmt: skip
    manifest = json.loads((demo["out"] / "_manifest.json").read_text())
    assert manifest["sources"]["nli_fr"]["langid"]["detected"] == {"fr": 45}


def test_partition_layout_is_language_then_cluster(demo: dict[str, Any]) -> None:
    data_dir: Path = demo["out"] / "data"
    leaves = {p.parent.relative_to(data_dir).parts for p in data_dir.rglob("*.parquet")}
    assert leaves
    for language, cluster in leaves:
        assert language.startswith("language=") and cluster.startswith("task_cluster=")
    # One file per partition at this size: no small-file explosion.
    files = list(data_dir.rglob("*.parquet"))
    assert len(files) == len(leaves)


def test_manifest_reconciles_with_independent_counts(demo: dict[str, Any]) -> None:
    manifest = json.loads((demo["out"] / "_manifest.json").read_text())
    expected_read = input_rows()
    assert set(manifest["sources"]) == set(expected_read)
    written = Counter(r["source"] for r in demo["data"])
    rejected = Counter(r["source"] for r in demo["rejects"])
    for name, entry in manifest["sources"].items():
        assert entry["read"] == expected_read[name]
        assert entry["written"] == written[name]
        assert entry["rejected"] == rejected[name]
        assert entry["read"] == entry["written"] + entry["rejected"] + entry["duplicates"]
        assert entry["reconciled"] is True
    assert manifest["totals"]["read"] == sum(expected_read.values())


def test_demo_rejects_are_the_deliberately_bad_rows(demo: dict[str, Any]) -> None:
    reasons = Counter(r["reason"] for r in demo["rejects"])
    assert reasons["malformed_json"] >= 1
    assert reasons["missing_field"] >= 1
    assert reasons["empty_field"] >= 1
    assert reasons["malformed_row"] >= 1
    assert reasons["wrong_type"] >= 1
    assert sum(reasons.values()) <= 12


def test_planted_duplicates_are_removed_and_counted(demo: dict[str, Any]) -> None:
    """data/samples/README.md plants three duplicates (one exact, two near) in the reviews."""
    manifest = demo["manifest"]
    assert manifest["sources"]["sentiment_reviews"]["duplicates"] == 3
    assert manifest["totals"]["duplicates"] == 3
    planted = {"sent-en-001", "sent-en-014", "sent-en-002", "sent-en-015"}
    planted |= {"sent-zh-001", "sent-zh-014"}
    kept = {r["source_key"] for r in demo["data"] if r["source_key"] in planted}
    assert len(kept) == 3  # one of each pair
    assert all(r["is_duplicate"] is False for r in demo["data"])
    clusters = {r["dup_cluster"] for r in demo["data"] if r["source_key"] in planted}
    assert len(clusters) == 3
    largest = manifest["dedup_clusters"]["largest"]
    assert [c["records"] for c in largest] == [2, 2, 2]
    histogram = {row["size"]: row for row in manifest["dedup_clusters"]["histogram"]}
    assert histogram["<=2"]["clusters"] == 3


def test_dedup_job_reruns_on_the_build_output(
    spark: Any, demo: dict[str, Any], tmp_path: Path
) -> None:
    from jobs.commands.dedup import run_dedup
    from jobs.config import DedupConfig

    # Rerun with a lower threshold: still every row read is written or counted as removed.
    out = tmp_path / "again"
    settings = DedupConfig(threshold=0.3, write_duplicates=True)
    manifest = run_dedup(spark, settings, str(demo["out"]), str(out)).to_dict()
    assert manifest["totals"]["reconciled"] is True
    assert manifest["totals"]["read"] == len(demo["data"])
    kept = ds.dataset(out / "data", partitioning="hive").to_table().num_rows
    removed = ds.dataset(out / "duplicates", partitioning="hive").to_table().num_rows
    assert kept == manifest["totals"]["written"]
    assert removed == manifest["totals"]["duplicates"]
    assert kept + removed == len(demo["data"])
    # The build already removed what the default settings find: nothing more goes.
    same = run_dedup(spark, DedupConfig(), str(demo["out"]), str(tmp_path / "same")).to_dict()
    assert same["totals"]["duplicates"] == 0
    assert same["totals"]["written"] == len(demo["data"])
