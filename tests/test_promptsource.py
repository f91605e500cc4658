"""promptsource compatibility: every shared template compiles, and rendering equals
promptsource's own ``Template.apply()`` run in its own venv on the same examples."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, shared_data
from udfs.template_files import load_promptsource_file
from udfs.templating import (
    RenderError,
    TemplateCompileError,
    TemplateSpec,
    compile_template,
    render,
)

SAMPLES = ROOT / "data" / "samples"
REFERENCE_PYTHON = Path(
    os.environ.get("INSTRUCTMILL_PROMPTSOURCE_PYTHON", ROOT / ".venv-ref" / "bin" / "python")
)
PER_DATASET = 25
RANDOM_CHOICE = re.compile(r"\|\s*choice\b")


@pytest.mark.parametrize("collection", ["promptsource", "promptsource-multilingual"])
def test_every_shared_promptsource_template_loads_and_compiles(
    collection: str, report: Callable[[str], None]
) -> None:
    files = sorted(shared_data(collection, "templates").rglob("templates.yaml"))
    assert files, f"no templates.yaml under {collection}"
    total, failures = 0, []
    for file in files:
        for spec in load_promptsource_file(file):
            total += 1
            try:
                compile_template(spec)
            except TemplateCompileError as exc:
                failures.append(str(exc))
    report(
        f"{collection}: {total - len(failures)} of {total} templates compile ({len(files)} files)"
    )
    assert total > 2000
    assert failures == [], failures[:5]


def _jsonl(name: str) -> list[dict[str, Any]]:
    records = []
    for line in (SAMPLES / name).read_text(encoding="utf-8").splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


def _usable(record: dict[str, Any], *fields: str) -> bool:
    return all(isinstance(record.get(f), (str, int)) and str(record.get(f)).strip() for f in fields)


def _examples() -> list[dict[str, Any]]:
    """Our sample records in the shape of the promptsource datasets whose templates fit them,
    plus edge cases: ||| inside the data, unlabelled rows (label -1)."""
    nli = [r for r in _jsonl("nli_en.jsonl") if _usable(r, "premise", "hypothesis")][:PER_DATASET]
    nli = [r for r in nli if isinstance(r.get("label"), int)]
    nli.append({"premise": "A ||| B is here.", "hypothesis": "It ||| is.", "label": 1})
    nli.append({"premise": "No label.", "hypothesis": "Unlabelled row.", "label": -1})
    sentiment = [r for r in _jsonl("sentiment_reviews.jsonl") if _usable(r, "text", "label")]
    sentiment = [r for r in sentiment if r["label"] in ("positive", "negative")][:PER_DATASET]
    polarity = [{"text": r["text"], "label": int(r["label"] == "positive")} for r in sentiment]
    polarity.append({"text": "Great ||| would buy again", "label": 1})
    pairs = [r for r in _jsonl("paraphrase_pairs.jsonl") if _usable(r, "sentence_a", "sentence_b")]
    pairs = [r for r in pairs if isinstance(r.get("label"), int)][:PER_DATASET]
    with (SAMPLES / "news_topics.csv").open(encoding="utf-8", newline="") as handle:
        news = [r for r in csv.DictReader(handle) if r.get("headline") and r.get("topic")]
    ag_labels = {"politics": 0, "sports": 1, "business": 2, "science": 3, "culture": 0}
    news = [r for r in news if r["topic"] in ag_labels][:PER_DATASET]
    squad = []
    source = json.loads((SAMPLES / "src" / "qa_es_de.json").read_text(encoding="utf-8"))
    for article in source["articles"]:
        for q in article["questions"]:
            answer = q.get("answer")
            if answer:
                start = article["context"].index(answer)
                answers = {"text": [answer], "answer_start": [start]}
                squad.append(
                    {
                        "id": q["id"],
                        "title": article["title"],
                        "context": article["context"],
                        "question": q["question"],
                        "answers": answers,
                    }
                )
    squad = squad[:PER_DATASET]
    return [
        {
            "dataset": "super_glue",
            "subset": "cb",
            "examples": [
                {
                    "premise": r["premise"],
                    "hypothesis": r["hypothesis"],
                    "label": r["label"],
                    "idx": i,
                }
                for i, r in enumerate(nli)
            ],
        },
        {
            "dataset": "anli",
            "subset": None,
            "examples": [
                {
                    "uid": str(i),
                    "premise": r["premise"],
                    "hypothesis": r["hypothesis"],
                    "label": r["label"],
                    "reason": "",
                }
                for i, r in enumerate(nli)
            ],
        },
        {"dataset": "imdb", "subset": None, "examples": polarity},
        {"dataset": "yelp_polarity", "subset": None, "examples": polarity},
        {
            "dataset": "paws",
            "subset": "labeled_final",
            "examples": [
                {
                    "id": i,
                    "sentence1": r["sentence_a"],
                    "sentence2": r["sentence_b"],
                    "label": r["label"],
                }
                for i, r in enumerate(pairs)
            ],
        },
        {
            "dataset": "glue",
            "subset": "mrpc",
            "examples": [
                {
                    "idx": i,
                    "sentence1": r["sentence_a"],
                    "sentence2": r["sentence_b"],
                    "label": r["label"],
                }
                for i, r in enumerate(pairs)
            ],
        },
        {
            "dataset": "ag_news",
            "subset": None,
            "examples": [{"text": r["headline"], "label": ag_labels[r["topic"]]} for r in news],
        },
        {"dataset": "squad", "subset": None, "examples": squad},
    ]


def _reference(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not REFERENCE_PYTHON.exists():
        pytest.skip(
            f"promptsource reference venv not found at {REFERENCE_PYTHON}: run `make reference-venv`"
        )
    script = Path(__file__).parent / "reference" / "promptsource_apply.py"
    done = subprocess.run(
        [str(REFERENCE_PYTHON), str(script)],
        input=json.dumps({"cases": cases}),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)["results"]


def test_rendering_equals_promptsource_template_apply(report: Callable[[str], None]) -> None:
    cases = _examples()
    for case in cases:
        assert case["examples"], f"no sample examples for {case['dataset']}"
        for example in case["examples"]:
            assert all(len(str(v)) < 2048 for v in example.values())
    examples = {(c["dataset"], c["subset"]): c["examples"] for c in cases}
    compared = same = rejected_both = 0
    mismatches = []
    for result in _reference(cases):
        if RANDOM_CHOICE.search(result["jinja"] + (result["answer_choices"] or "")):
            continue  # promptsource's `choice` is random.choice: nothing to compare against
        spec = TemplateSpec(
            result["template_id"], result["name"], result["jinja"], result["answer_choices"]
        )
        try:
            template = compile_template(spec)
        except TemplateCompileError:
            continue  # no ||| anywhere: promptsource never yields a pair from it either
        for example, output in zip(
            examples[(result["dataset"], result["subset"])], result["outputs"], strict=True
        ):
            compared += 1
            reference_pair = (
                tuple(output["parts"])
                if "parts" in output and len(output["parts"]) == 2 and all(output["parts"])
                else None
            )
            try:
                ours: tuple[str, str] | None = render(template, example, "salt")
            except RenderError:
                ours = None
            if ours == reference_pair:
                same += 1
                rejected_both += ours is None
            else:
                mismatches.append((result["dataset"], result["name"], example, output, ours))
    report(
        f"promptsource Template.apply() vs ours: {compared} renders compared, {same} identical "
        f"({rejected_both} rejected by both)"
    )
    assert compared > 1000
    assert mismatches == [], mismatches[:3]
