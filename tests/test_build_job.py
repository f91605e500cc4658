"""The build job on Spark, on a conf written the way a user would: jsonl with malformed lines,
csv with a broken row, parquet, and a template that needs a field some rows lack. Every input
row must end in data/ or rejects/ with a reason, and the manifest must equal the real counts
(read here with pyarrow, independently of Spark)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from jobs.commands.build import run_build, run_context
from jobs.config import load_plan

pytestmark = pytest.mark.spark

JSONL = [
    {
        "id": "fr-1",
        "premise": "Le chat dort sur le canapé.",
        "hypothesis": "Un animal dort.",
        "label": 0,
    },
    {"id": "fr-2", "premise": "Il pleut ||| à Paris.", "hypothesis": "Il fait sec.", "label": 2},
    {"id": "fr-3", "premise": "Le train part à huit heures.", "label": 1},  # no hypothesis
    {"id": "fr-4", "premise": "Marie lit un livre.", "hypothesis": "Marie lit.", "label": "oui"},
    {"id": "fr-5", "premise": "Le musée ferme le lundi.", "hypothesis": "", "label": 1},
]
MALFORMED = ['{"id": "fr-6", "premise": "coupé', "[1, 2, 3]"]
CSV = (
    "id,text,label\n"
    'en-1,"Great value, fast delivery",positive\n'
    "en-2,Broke after one day,negative\n"
    "en-3,too,many,fields\n"
    'en-4,"Quoted ""word"" inside",positive\n'
    "en-5,,negative\n"
    'en-6,"Line one\nline two, after a newline",positive\n'
)
NOT_UTF8 = b'{"id": "fr-7", "premise": "caf\xe9 cr\xe8me", "hypothesis": "x", "label": 0}\n'
PARQUET_WITH_TITLE = [
    {
        "qid": "q4",
        "lang": "es",
        "title": "Geografía",
        "context": "Lima es la capital de Perú.",
        "question": "¿Cuál es la capital de Perú?",
        "answers": {"text": ["Lima"], "answer_start": [0]},
    },
]
PARQUET = [
    {
        "qid": "q1",
        "lang": "es",
        "context": "Madrid es la capital de España.",
        "question": "¿Cuál es la capital?",
        "answers": {"text": ["Madrid"], "answer_start": [0]},
    },
    {
        "qid": "q2",
        "lang": "de",
        "context": "Berlin liegt an der Spree.",
        "question": "Woran liegt Berlin?",
        "answers": {"text": ["an der Spree"], "answer_start": [13]},
    },
    {
        "qid": "q3",
        "lang": "de",
        "context": "Ohne Frage.",
        "question": None,
        "answers": {"text": ["x"], "answer_start": [0]},
    },
]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def make_project(
    root: Path, templates_per_record: str = "1", partition_by: str = "[language, task_cluster]"
) -> Path:
    lines = (
        [json.dumps(r, ensure_ascii=False) for r in JSONL[:3]]
        + MALFORMED
        + [json.dumps(r, ensure_ascii=False) for r in JSONL[3:]]
    )
    write(root / "in" / "nli" / "part-1.jsonl", "\n".join(lines[:4]) + "\n")
    write(root / "in" / "nli" / "part-2.jsonl", "\n".join(lines[4:]) + "\n")
    with (root / "in" / "nli" / "part-2.jsonl").open("ab") as handle:
        handle.write(NOT_UTF8)
    write(root / "in" / "reviews.csv", CSV)
    (root / "in").mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(PARQUET), root / "in" / "qa.parquet")
    pq.write_table(pa.Table.from_pylist(PARQUET_WITH_TITLE), root / "in" / "qa-titled.parquet")
    write(
        root / "templates" / "nli" / "infer.jinja",
        '{{ premise }} Can we infer "{{ hypothesis }}"? ||| {{ answer_choices_word[label] if false else ["yes", "maybe", "no"][label] }}\n',
    )
    write(
        root / "templates" / "nli" / "templates.yaml",
        "dataset: nli\ntemplates:\n"
        "  3f1c-0001: !Template\n    answer_choices: Yes ||| Maybe ||| No\n    id: 3f1c-0001\n"
        "    jinja: '{{premise}} Question: {{hypothesis}} True, False or Neither? ||| {{ answer_choices[label] }}'\n"
        "    metadata: !TemplateMetadata\n      original_task: true\n    name: gpt3 style\n    reference: ''\n",
    )
    write(
        root / "templates" / "sentiment" / "polarity.jinja",
        "Review: {{ text }}\nPositive or negative? ||| {{ label }}\n",
    )
    write(
        root / "templates" / "sentiment" / "stars.jinja",
        "{{ text }}\nWas the customer happy? ||| {{ 'yes' if label == 'positive' else 'no' }}\n",
    )
    write(
        root / "templates" / "qa" / "answer.jinja",
        "{% if title %}{{ title }}\n{% endif %}{{ context }}\n\nQ: {{ question }} ||| {{ answers.text[0] }}\n",
    )
    write(
        root / "conf" / "datasets" / "nli.yaml",
        "name: nli_fr\npath: ../../in/nli/*.jsonl\nformat: jsonl\nid_field: id\nlanguage: fr\n"
        "task: nli\ntask_cluster: entailment\nlicense: CC-BY-NC-4.0\nfields: {label: int}\n"
        "templates:\n  - ../../templates/nli/infer.jinja\n  - path: ../../templates/nli/templates.yaml\n"
        "    names: [gpt3 style]\n",
    )
    write(
        root / "conf" / "datasets" / "reviews.yaml",
        "name: reviews_en\npath: ../../in/reviews.csv\nformat: csv\nid_field: id\nlanguage: en\n"
        "task: sentiment\ntask_cluster: sentiment\nlicense: MIT\ntemplates:\n"
        "  - ../../templates/sentiment/polarity.jinja\n  - ../../templates/sentiment/stars.jinja\n",
    )
    write(
        root / "conf" / "datasets" / "qa.yaml",
        "name: qa_multi\npath: ../../in/qa*.parquet\nformat: parquet\nid_field: question_id\n"
        "language_field: lang\nrename: {qid: question_id}\ntask: extractive_qa\n"
        "license: CC BY-SA 4.0\ntemplates: [../../templates/qa/answer.jinja]\n",
    )
    write(
        root / "conf" / "pipeline.yaml",
        f"sources: [datasets/*.yaml]\noutput: ../out\nseed: 42\ntemplates_per_record: {templates_per_record}\n"
        f"rows_per_file: 4\npartition_by: {partition_by}\n",
    )
    return root / "conf" / "pipeline.yaml"


def table(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return ds.dataset(path, format="parquet", partitioning="hive").to_table().to_pylist()


@pytest.fixture(scope="module")
def built(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("build")
    plan = load_plan(make_project(root))
    manifest = run_build(spark, plan, run_context(plan, None)).to_dict()
    return {
        "root": root,
        "manifest": manifest,
        "data": table(root / "out" / "data"),
        "rejects": table(root / "out" / "rejects"),
    }


def test_every_input_row_is_in_data_or_rejects(built: dict[str, Any]) -> None:
    data, rejects = built["data"], built["rejects"]
    nli_keys = {r["source_key"] for r in data + rejects if r["source"] == "nli_fr"}
    assert {r["id"] for r in JSONL} <= nli_keys
    assert sum(r["source"] == "nli_fr" for r in data + rejects) == len(JSONL) + len(MALFORMED) + 1
    assert sum(r["source"] == "reviews_en" for r in data + rejects) == 6
    assert sum(r["source"] == "qa_multi" for r in data + rejects) == 4
    assert all(
        r["reason"] and r["detail"] and r["record"] and r["stage"] == "render" for r in rejects
    )


def test_rejects_carry_the_right_reason_and_raw_record(built: dict[str, Any]) -> None:
    reasons = {(r["source"], r["source_key"]): r["reason"] for r in built["rejects"]}
    assert reasons[("nli_fr", "fr-3")] == "missing_field"
    assert reasons[("nli_fr", "fr-4")] == "wrong_type"
    assert reasons[("nli_fr", "fr-5")] == "empty_field"
    assert reasons[("reviews_en", "en-5")] == "empty_field"
    assert reasons[("qa_multi", "q3")] == "empty_field"  # null question
    by_reason = Counter(r["reason"] for r in built["rejects"])
    assert by_reason["malformed_json"] == 1 and by_reason["not_an_object"] == 1
    assert by_reason["malformed_row"] == 1
    assert by_reason["invalid_utf8"] == 1
    not_utf8 = next(r for r in built["rejects"] if r["reason"] == "invalid_utf8")
    assert "caf\\xe9" in not_utf8["record"]
    malformed = next(r for r in built["rejects"] if r["reason"] == "malformed_json")
    assert malformed["record"] == MALFORMED[0]
    assert malformed["source_file"].endswith("part-1.jsonl")
    broken_csv = next(r for r in built["rejects"] if r["reason"] == "malformed_row")
    assert broken_csv["record"] == "en-3,too,many,fields"


def test_rendered_content(built: dict[str, Any]) -> None:
    rows = {(r["source"], r["source_key"]): r for r in built["data"]}
    cat = rows[("nli_fr", "fr-1")]
    assert "Le chat dort sur le canapé." in cat["instruction"]
    assert cat["response"] in {"yes", "Yes"}
    assert cat["messages"] == [
        {"role": "user", "content": cat["instruction"]},
        {"role": "assistant", "content": cat["response"]},
    ]
    assert "Il pleut ||| à Paris." in rows[("nli_fr", "fr-2")]["instruction"]
    assert rows[("reviews_en", "en-1")]["instruction"].count("Great value, fast delivery") == 1
    assert 'Quoted "word" inside' in rows[("reviews_en", "en-4")]["instruction"]
    assert rows[("qa_multi", "q2")]["response"] == "an der Spree"
    assert rows[("qa_multi", "q2")]["language"] == "de"
    # Parquet files with different columns are merged: the title of the second file is there.
    assert rows[("qa_multi", "q4")]["instruction"].startswith("Geografía\nLima")
    assert rows[("qa_multi", "q1")]["instruction"].startswith("Madrid")
    assert "Line one\nline two, after a newline" in rows[("reviews_en", "en-6")]["instruction"]
    assert rows[("nli_fr", "fr-1")]["license"] == "CC-BY-NC-4.0"
    assert all(len(r["id"]) == 32 for r in built["data"])
    assert len({r["id"] for r in built["data"]}) == len(built["data"])


def test_partition_layout(built: dict[str, Any]) -> None:
    data_dir = built["root"] / "out" / "data"
    leaves = sorted(str(p.parent.relative_to(data_dir)) for p in data_dir.rglob("*.parquet"))
    assert set(leaves) == {
        "language=fr/task_cluster=entailment",
        "language=en/task_cluster=sentiment",
        "language=es/task_cluster=extractive_qa",
        "language=de/task_cluster=extractive_qa",
    }
    # rows_per_file: 4 caps every file, and files stay sorted by id.
    for file in data_dir.rglob("*.parquet"):
        ids = pq.read_table(file, columns=["id"]).column("id").to_pylist()
        assert 0 < len(ids) <= 4 and ids == sorted(ids)
    schema = pq.read_schema(next(data_dir.rglob("*.parquet")))
    assert "language" not in schema.names and "instruction" in schema.names
    assert (built["root"] / "out" / "rejects" / "source=nli_fr").is_dir()


def test_manifest_equals_real_counts_and_reconciles(built: dict[str, Any]) -> None:
    manifest = built["manifest"]
    on_disk = json.loads((built["root"] / "out" / "_manifest.json").read_text())
    assert on_disk["run_id"] == manifest["run_id"]
    for name, entry in on_disk["sources"].items():
        written = [r for r in built["data"] if r["source"] == name]
        rejected = [r for r in built["rejects"] if r["source"] == name]
        assert entry["written"] == len(written)
        assert entry["rejected"] == len(rejected)
        assert entry["rejected_by_reason"] == dict(Counter(r["reason"] for r in rejected))
        assert entry["read"] == entry["written"] + entry["rejected"] + entry["duplicates"]
        assert entry["reconciled"] is True
        for template_id, counts in entry["templates"].items():
            assert counts["applied"] == sum(r["template_id"] == template_id for r in written)
            assert counts["rejected"] == sum(r["template_id"] == template_id for r in rejected)
    assert on_disk["sources"]["nli_fr"]["read"] == len(JSONL) + len(MALFORMED) + 1
    assert on_disk["totals"]["reconciled"] is True
    assert set(on_disk["config"]["sources"]) == {"nli_fr", "reviews_en", "qa_multi"}


def test_reruns_are_identical_across_partitionings(
    spark: Any, built: dict[str, Any], tmp_path: Path
) -> None:
    plan = load_plan(make_project(tmp_path), output_override=str(tmp_path / "again"))
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "64")  # many tiny input splits
    try:
        run_build(spark, plan, run_context(plan, None))
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)
    columns = ("id", "source_key", "template_id", "instruction", "response", "language")
    first = sorted(tuple(r[c] for c in columns) for r in built["data"])
    again = sorted(tuple(r[c] for c in columns) for r in table(tmp_path / "again" / "data"))
    assert first == again
    assert sorted(r["id"] for r in built["rejects"]) == sorted(
        r["id"] for r in table(tmp_path / "again" / "rejects")
    )


def test_all_templates_fan_out_and_still_reconcile(spark: Any, tmp_path: Path) -> None:
    plan = load_plan(make_project(tmp_path, templates_per_record="all"))
    manifest = run_build(spark, plan, run_context(plan, None)).to_dict()
    nli = manifest["sources"]["nli_fr"]
    assert nli["templates_per_record"] == 2
    assert nli["rows"] == 2 * nli["read"] == nli["written"] + nli["rejected"]
    data = table(tmp_path / "out" / "data")
    assert {r["template_id"] for r in data if r["source_key"] == "fr-1"} == {
        "nli/infer",
        "3f1c-0001",
    }
    assert manifest["totals"]["reconciled"] is True


def test_run_date_replaces_exactly_that_date(spark: Any, tmp_path: Path) -> None:
    # license "CC BY-SA 4.0" needs escaping in a folder name: the stale check must still match.
    conf = make_project(tmp_path, partition_by="[license, language]")
    # The same records every day: without this, day 2 would remove them all as records an
    # earlier load committed (test_nightly_loads.py).
    with conf.open("a", encoding="utf-8") as handle:
        handle.write("dedup: {across_loads: false}\n")
    plan = load_plan(conf)
    day1, day2 = date(2026, 11, 1), date(2026, 11, 2)
    run_build(spark, plan, run_context(plan, day1))
    run_build(spark, plan, run_context(plan, day2))
    out = tmp_path / "out" / "data"
    qa_folder = "license=CC BY-SA 4.0"
    assert (out / "load_date=2026-11-01" / qa_folder / "language=de").is_dir()
    # Rerun day 1 without the QA source: its partitions of that day must go, day 2 stays.
    (tmp_path / "conf" / "datasets" / "qa.yaml").unlink()
    rerun = run_build(spark, load_plan(conf), run_context(load_plan(conf), day1)).to_dict()
    assert not (out / "load_date=2026-11-01" / qa_folder).exists()
    assert (out / "load_date=2026-11-02" / qa_folder / "language=de").is_dir()
    rows = table(out)
    day1_rows = [r for r in rows if str(r["load_date"]) == "2026-11-01"]
    assert {r["run_id"] for r in day1_rows} == {rerun["run_id"]}
    assert len(day1_rows) == rerun["totals"]["written"]
    assert sum(str(r["load_date"]) == "2026-11-02" for r in rows) > len(day1_rows)


def test_dedup_can_be_switched_off(spark: Any, tmp_path: Path) -> None:
    pipeline = make_project(tmp_path)
    pipeline.write_text(pipeline.read_text() + "dedup: {enabled: false}\n")
    plan = load_plan(pipeline)
    manifest = run_build(spark, plan, run_context(plan, None)).to_dict()
    assert manifest["totals"]["duplicates"] == 0 and manifest["totals"]["reconciled"] is True
    assert "dedup_clusters" not in manifest
    data = table(tmp_path / "out" / "data")
    assert data and all(r["is_duplicate"] is False and r["dup_cluster"] is None for r in data)
