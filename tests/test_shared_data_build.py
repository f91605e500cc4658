"""conf/examples/shared_data.yaml end to end on local[2]: every collection of ../shared/data
in its own format (UD sentences as structured tasks, SuperNI tasks with demonstrations,
promptsource datasets by name over Hugging Face folders, FLAN's four formats, inverted
translations, CoNLL-U), reconciled, and each few-shot row checked record by record."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from jobs.commands.build import run_build, run_context
from jobs.config import load_plan
from tests.conftest import ROOT, shared_data
from tests.few_shot_checks import check_few_shot_rows
from udfs.structured import parse_tags

pytestmark = pytest.mark.spark
CONF = ROOT / "conf" / "examples" / "shared_data.yaml"


def table(path: Path) -> list[dict[str, Any]]:
    return ds.dataset(path, format="parquet", partitioning="hive").to_table().to_pylist()


@pytest.fixture(scope="module")
def built(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    shared_data("ud")
    out = tmp_path_factory.mktemp("shared") / "out"
    plan = load_plan(CONF, output_override=str(out))
    manifest = run_build(spark, plan, run_context(plan, None)).to_dict()
    return {"manifest": manifest, "data": table(out / "data"), "rejects": table(out / "rejects")}


def test_it_builds_reconciled_in_many_languages_and_clusters(
    built: dict[str, Any], report: Any
) -> None:
    manifest, data = built["manifest"], built["data"]
    assert manifest["totals"]["reconciled"], manifest["totals"]
    languages = {row["language"] for row in data} - {"und"}
    clusters = {row["task_cluster"] for row in data} - {"unassigned"}
    assert len(languages) >= 24, sorted(languages)
    assert len(clusters) >= 6, sorted(clusters)
    formats = collections.Counter(row["template_format"] for row in data)
    assert {"zsopt", "zsnoopt", "fsopt", "fsnoopt"} <= set(formats), formats
    encodings = set(manifest["sources"]["superni_tasks"]["template_formats"])
    assert len(encodings) >= 2, encodings
    written = sum(entry["written"] for entry in manifest["sources"].values())
    assert written == len(data)
    report(
        f"shared_data.yaml: {len(data):,} rows, {len(languages)} languages, "
        f"{len(clusters)} clusters, formats {dict(sorted(formats.items()))}"
    )


def test_every_few_shot_row_shows_only_other_written_train_records(
    built: dict[str, Any],
) -> None:
    datasets = pytest.importorskip("datasets")
    records = datasets.load_from_disk(str(ROOT / "data" / "samples" / "hf" / "rte_en"))
    markers = {str(record["idx"]): record["hypothesis"] for record in records}
    rows = [row for row in built["data"] if row["source"] == "rte_en"]
    # super_glue/rte's prompts list their choices (choices_in_prompt): no second list.
    check_few_shot_rows(rows, markers, k=2, listed=False)
    assert {row["template_format"] for row in rows} == {"zsopt", "fsopt"}
    # The reviews keep three planted duplicates: removed, so never shown.
    reviews = datasets.load_from_disk(str(ROOT / "data" / "samples" / "hf" / "reviews"))
    markers = {record["id"]: record["text"] for record in reviews}
    rows = [row for row in built["data"] if row["source"] == "reviews_flan"]
    assert built["manifest"]["sources"]["reviews_flan"]["duplicates"] == 3
    found = check_few_shot_rows(rows, markers, k=3)
    assert found["few_shot_rows"] > 0
    assert {row["template_format"] for row in rows} == {"zsopt", "zsnoopt", "fsopt", "fsnoopt"}


def test_every_pos_response_parses_back_to_its_sentence(built: dict[str, Any]) -> None:
    by_text: dict[tuple[str, str], set[tuple[tuple[str, str], ...]]] = {}
    for path in sorted(shared_data("ud").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            pairs = tuple(zip(record["tokens"], record["upos"], strict=True))
            by_text.setdefault((record["lang"], record["text"]), set()).add(pairs)
    rows = [row for row in built["data"] if row["source"] in ("ud_pos", "ud_pos_nc")]
    assert len({row["language"] for row in rows}) == 24
    for row in rows:
        # The row's own sentence, as its instruction quotes it: its words and tags exactly.
        text = re.search(r"\nSentence: (.*)\n\nWords:\n", row["instruction"]).group(1)
        assert tuple(parse_tags(row["response"])) in by_text[(row["language"], text)], row["id"]


def test_inverted_translations_have_both_directions(built: dict[str, Any]) -> None:
    rows = [row for row in built["data"] if row["source"] == "translation_both_ways"]
    by_key = collections.defaultdict(dict)
    for row in rows:
        by_key[row["source_key"]][row["template_id"].endswith("#inverted")] = row
    assert by_key and all(len(pair) == 2 for pair in by_key.values())
    for pair in by_key.values():
        forward, back = pair[False], pair[True]
        assert (
            forward["response"] in back["instruction"]
            and back["response"] in forward["instruction"]
        )
        assert forward["language"] != back["language"]


def test_conllu_pos_rows_parse_back_to_the_treebank_words(built: dict[str, Any]) -> None:
    conllu = pytest.importorskip("conllu")
    words = {}
    for path in sorted((ROOT / "tests" / "data" / "conllu").glob("*.conllu")):
        for sentence in conllu.parse(path.read_text(encoding="utf-8")):
            kept = [t for t in sentence if isinstance(t["id"], int)]  # syntactic words only
            words[sentence.metadata["sent_id"]] = [(t["form"], t["upos"]) for t in kept]
    rows = [row for row in built["data"] if row["source"].startswith("ud_conllu_")]
    assert len({row["source_key"] for row in rows}) == len(words) == 5
    tagged = [row for row in rows if row["template_id"] == "structured/pos_tagging"]
    assert {row["source"] for row in tagged} == {"ud_conllu_it"}  # the multiword-token file
    for row in tagged:
        assert parse_tags(row["response"]) == words[row["source_key"]]
