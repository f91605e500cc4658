"""The task taxonomy: the bundled conf/task_clusters.yaml and the loader's checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.config import DEFAULT_TAXONOMY
from tests.conftest import shared_data
from udfs.taxonomy import UNASSIGNED, TaxonomyError, load_taxonomy, match_key

TAXONOMY = load_taxonomy(DEFAULT_TAXONOMY)


def test_every_crosswalk_target_is_a_cluster_with_a_description() -> None:
    assert set(TAXONOMY.crosswalks) == {"flan2021", "superni", "aya", "promptsource"}
    for name, entries in TAXONOMY.crosswalks.items():
        assert entries, name
        assert set(entries.values()) <= set(TAXONOMY.clusters), name
    assert UNASSIGNED not in TAXONOMY.clusters
    assert all(
        description and "\n" not in description for description in TAXONOMY.clusters.values()
    )
    # No name means two clusters in two crosswalks: the merged table drops nothing.
    assert TAXONOMY.ambiguous() == {}


def test_demo_clusters_and_flan_heldout_clusters_exist() -> None:
    for cluster in ("entailment", "sentiment", "paraphrase", "extractive_qa",
                    "topic_classification", "translation", "commonsense", "closed_book_qa"):  # fmt: skip
        assert cluster in TAXONOMY.clusters
    flan = TAXONOMY.crosswalks["flan2021"]
    # The FLAN code's held-out clusters (flan/task_splits.py) map onto the taxonomy.
    assert flan[match_key("entailment")] == "entailment"
    assert flan[match_key("common_sense")] == "commonsense"
    assert flan[match_key("open_domain_qa")] == "closed_book_qa"
    assert len({match_key(n) for n in (
        "summarization", "structure_to_text", "reading_comprehension", "open_domain_qa",
        "paraphrase", "sentiment", "text_formatting", "common_sense", "translation",
        "coreference", "entailment", "math", "conversational_qa", "word_disambiguation",
        "linguistic_acceptability", "question_classification", "read_comp_and_common_sense",
    )} - set(flan)) == 0  # fmt: skip


def test_every_superni_category_in_shared_data_maps() -> None:
    folder = shared_data("superni")
    categories = {
        category
        for path in sorted(folder.glob("*/*.json"))
        if path.parent.name in ("tasks", "excerpts")
        for category in json.loads(path.read_text(encoding="utf-8"))["Categories"]
    }
    categories |= set(json.loads((folder / "doc" / "categories_map.json").read_text()))
    assert len(categories) > 150
    unmapped = sorted(c for c in categories if TAXONOMY.lookup(c, "superni") is None)
    assert unmapped == []
    assert TAXONOMY.lookup("Cause Effect Classification", "superni") == "commonsense"
    assert TAXONOMY.lookup("Textual Entailment", "superni") == "entailment"


def test_promptsource_names_are_real_template_folders() -> None:
    roots = [shared_data("promptsource", "templates"),
             shared_data("promptsource-multilingual", "templates")]  # fmt: skip
    folders = {
        match_key(str(p.parent.relative_to(root)))
        for root in roots
        for p in root.glob("**/templates.yaml")
    }
    assert set(TAXONOMY.crosswalks["promptsource"]) <= folders
    assert TAXONOMY.lookup("super_glue/rte") == "entailment"
    assert TAXONOMY.lookup("imdb", "promptsource") == "sentiment"


def test_lookup_matches_ignoring_case_and_spaces_and_names_clusters_directly() -> None:
    assert TAXONOMY.lookup("  textual   ENTAILMENT ", "superni") == "entailment"
    assert TAXONOMY.lookup("Sentiment") == "sentiment"  # a cluster id itself
    assert TAXONOMY.lookup("no such task") is None
    assert TAXONOMY.lookup(None) is None


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tax.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("clusters: {a: A}\ncrosswalks: {w: {map: {x: b}}}\n", "crosswalks.w.map.x: maps to 'b'"),
        ("clusters: {a: A}\ncrosswalks: {w: {map: {X y: a, x  Y: a}}}\n", "is the same name"),
        ("clusters: {unassigned: U}\n", "reserved"),
        ("clusters: {Bad-Id: B}\n", "lower-case"),
        ("clusters: {a: ''}\n", "one-line description"),
        ("clusters: {a: A}\ncrosswalks: {w: {mapping: {}}}\n", "give 'description' and 'map'"),
        ("clusters: {a: A}\nextra: 1\n", "unknown keys ['extra']"),
    ],
)
def test_loader_names_the_file_the_key_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(TaxonomyError, match=r"tax\.yaml") as caught:
        load_taxonomy(_write(tmp_path, text))
    assert message in str(caught.value)


def test_merged_table_leaves_out_names_two_crosswalks_disagree_on(tmp_path: Path) -> None:
    taxonomy = load_taxonomy(
        _write(
            tmp_path,
            "clusters: {a: A, b: B}\n"
            "crosswalks:\n  one: {map: {shared: a, only: a}}\n  two: {map: {shared: b}}\n",
        )
    )
    assert taxonomy.ambiguous() == {"shared": {"a", "b"}}
    assert taxonomy.lookup("shared") is None
    assert taxonomy.lookup("shared", "two") == "b"
    assert taxonomy.lookup("only") == "a"
