"""The language-ID stage on Spark: model shipped with SparkFiles, columns, mismatch, drop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from jobs.commands.build import run_build, run_context
from jobs.config import load_plan
from udfs.language_codes import iso_code

pytestmark = pytest.mark.spark

RECORDS = [
    {
        "id": "1",
        "lang": "fr",
        "text": "La boulangerie du quartier ferme ses portes à midi le dimanche.",
    },
    {
        "id": "2",
        "lang": "fr",
        "text": "Der Zug nach Hamburg hatte heute Morgen fast eine Stunde Verspätung.",
    },
    {
        "id": "3",
        "lang": "de",
        "text": "Wir treffen uns morgen früh vor dem Bahnhof und fahren dann zusammen los.",
    },
    {"id": "4", "text": "Вчера вечером мы долго гуляли по набережной и разговаривали."},
    {"id": "5", "lang": "fr", "text": "Merci."},
    {
        "id": "6",
        "lang": "deu",
        "text": "Wir treffen uns morgen früh vor dem Bahnhof und fahren los.",
    },
    {"id": "7", "lang": "pt_BR", "text": "A reunião foi adiada porque o diretor estava doente."},
]
PAIRS = [
    {
        "id": "p1",
        "src": "en",
        "tgt": "de",
        "source": "The train to Hamburg was almost an hour late this morning.",
        "target": "Der Zug nach Hamburg hatte heute Morgen fast eine Stunde Verspätung.",
    },
    {
        "id": "p2",
        "src": "en",
        "tgt": "de",
        "source": "We are meeting in front of the station tomorrow morning.",
        "target": "Nous nous retrouvons demain matin devant la gare, comme prévu.",
    },
]


def project(root: Path, action: str) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "datasets").mkdir(parents=True, exist_ok=True)
    (root / "data" / "texts.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS), encoding="utf-8"
    )
    (root / "data" / "pairs.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in PAIRS), encoding="utf-8"
    )
    (root / "summary.jinja").write_text("Summarise this text:\n\n{{ text }} ||| {{ text[:12] }}")
    (root / "translate.jinja").write_text("Translate into German:\n\n{{ source }} ||| {{ target }}")
    (root / "conf" / "datasets" / "texts.yaml").write_text(
        "name: texts\npath: ../../data/texts.jsonl\nformat: jsonl\nid_field: id\n"
        "language_field: lang\ntask: summarization\nlicense: CC0-1.0\n"
        "templates: [../../summary.jinja]\n"
    )
    (root / "conf" / "datasets" / "pairs.yaml").write_text(
        "name: pairs\npath: ../../data/pairs.jsonl\nformat: jsonl\nid_field: id\n"
        "language_field: src\ntarget_language_field: tgt\ntarget_fields: [target]\n"
        "task: translation\nlicense: CC0-1.0\ntemplates: [../../translate.jinja]\n"
    )
    conf = root / "conf" / "pipeline.yaml"
    conf.write_text(
        "sources: [datasets/*.yaml]\noutput: ../out\n"
        f"langid: {{action: {action}, thresholds: {{fr: 0.6}}}}\n"
    )
    return conf


def rows(path: Path) -> list[dict[str, Any]]:
    return ds.dataset(path, format="parquet", partitioning="hive").to_table().to_pylist()


def test_label_mode_flags_mismatches_and_fills_undeclared_languages(
    spark: Any, tmp_path: Path
) -> None:
    plan = load_plan(project(tmp_path, "label"))
    manifest = run_build(spark, plan, run_context(plan, None)).to_dict()
    data = {r["source_key"]: r for r in rows(tmp_path / "out" / "data")}
    assert data["2"]["lang_mismatch"] is True and data["2"]["language"] == "fr"
    assert data["1"]["lang_mismatch"] is False and data["1"]["instruction_lang"] == "fr"
    assert data["3"]["lang_mismatch"] is False and data["3"]["script"] == "Latn"
    assert data["4"]["language"] == "ru" and data["4"]["script"] == "Cyrl"  # detected
    assert data["5"]["lang_mismatch"] is False  # "Merci." is too short to judge
    # Declared codes land in the same code system as the model's: deu -> de, pt_BR -> pt.
    assert (data["6"]["language"], data["6"]["lang_mismatch"]) == ("de", False)
    assert (data["7"]["language"], data["7"]["lang_mismatch"]) == ("pt", False)
    assert data["p1"]["lang_mismatch"] is False and data["p1"]["response_lang"] == "de"
    assert data["p2"]["lang_mismatch"] is True  # the target side is French, declared German
    for row in data.values():
        for column in ("language", "instruction_lang", "response_lang"):
            code = row[column]
            assert code == "und" or iso_code(code) == code, (column, code)
        assert (row["response_lang"] == "und") == (row["response_lang_score"] is None)
    summary = manifest["sources"]["texts"]["langid"]
    assert summary["detected"] == {"fr": 1, "de": 3, "ru": 1, "pt": 1, "und": 1}
    assert summary["mismatched"] == 1 and summary["mismatch_rate"] == round(1 / 6, 4)
    assert manifest["totals"]["reconciled"] is True


def test_drop_mode_moves_rows_to_rejects_and_still_reconciles(spark: Any, tmp_path: Path) -> None:
    plan = load_plan(project(tmp_path, "drop"))
    manifest = run_build(spark, plan, run_context(plan, None)).to_dict()
    data = {r["source_key"] for r in rows(tmp_path / "out" / "data")}
    rejects = {r["source_key"]: r for r in rows(tmp_path / "out" / "rejects")}
    assert set(rejects) == {"2", "p2"} and {"1", "3", "4", "5", "6", "7", "p1"} <= data
    assert rejects["2"]["reason"] == "language_mismatch" and rejects["2"]["stage"] == "langid"
    texts = manifest["sources"]["texts"]
    assert texts["rejected_by_reason"] == {"language_mismatch": 1}
    assert texts["read"] == texts["written"] + texts["rejected"] == len(RECORDS)
    assert manifest["totals"]["reconciled"] is True
