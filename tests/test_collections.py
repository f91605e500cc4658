"""Seed collections in their own formats, without Spark: FLAN's four formats, SuperNI's
demonstration encodings on the real task files, inverted translation pairs, and promptsource
templates by dataset name (with metadata and nearest-name errors)."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jobs.config import ConfigError, load_plan
from tests.conftest import ROOT, shared_data
from udfs.flan_formats import choose_format, options_block
from udfs.render_batches import FILE_COLUMN, JSON_TEXT_COLUMN, RenderPlan, render_batches
from udfs.superni_demos import ENCODINGS, parse_examples, supported
from udfs.templating import TemplateSpec

NLI = TemplateSpec(
    "nli/guaranteed",
    "guaranteed",
    'Given {{ premise }} Is "{{ hypothesis }}" guaranteed true? ||| {{ answer_choices[label] }}',
    "Yes ||| Maybe ||| No",
)
PLAIN = TemplateSpec("nli/plain", "plain", "{{ premise }} / {{ hypothesis }} ||| {{ label }}")


def render(plan: RenderPlan, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    batch = pa.RecordBatch.from_pydict({JSON_TEXT_COLUMN: lines, FILE_COLUMN: ["f"] * len(lines)})
    return [row for out in render_batches(plan, [batch]) for row in out.to_pylist()]


def nli_records(n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"r{i}", "premise": f"Premise {i}.", "hypothesis": f"Claim {i}.", "label": i % 3}
        for i in range(n)
    ]


def test_options_are_listed_in_flans_style() -> None:
    assert options_block(["yes", "no"]) == "OPTIONS:\n- yes\n- no"
    assert options_block([]) is None and options_block(None) is None


def test_every_format_is_chosen_by_hash_and_listed_only_with_choices() -> None:
    formats = ("zsopt", "zsnoopt", "fsopt", "fsnoopt")
    plan = RenderPlan("nli", "json_text", (NLI, PLAIN), None, 7, id_field="id", language="en",
                      formats=formats)  # fmt: skip
    rows = render(plan, nli_records(200))
    by_template = collections.defaultdict(collections.Counter)
    for row in rows:
        assert row["reason"] is None, row
        by_template[row["template_id"]][row["template_format"]] += 1
        listed = "OPTIONS:\n- Yes\n- Maybe\n- No" in row["instruction"]
        assert listed == (row["template_format"] in ("zsopt", "fsopt")), row
        if row["template_id"] == "nli/guaranteed":
            assert row["answer_options"] == "OPTIONS:\n- Yes\n- Maybe\n- No"
    assert set(by_template["nli/guaranteed"]) == set(formats)
    # No answer_choices: nothing to list, so only the noopt formats.
    assert set(by_template["nli/plain"]) == {"zsnoopt", "fsnoopt"}
    assert rows == render(plan, nli_records(200))  # deterministic
    assert choose_format(7, "nli", "r1", "t", formats, True) == choose_format(
        7, "nli", "r1", "t", formats, True
    )


def test_a_prompt_that_lists_its_choices_gets_no_second_list() -> None:
    listed = TemplateSpec(NLI.template_id, NLI.name, NLI.jinja, NLI.answer_choices,
                          metadata={"choices_in_prompt": True})  # fmt: skip
    formats = ("zsopt", "zsnoopt", "fsopt", "fsnoopt")
    plan = RenderPlan("nli", "json_text", (listed,), None, 7, id_field="id", language="en",
                      formats=formats)  # fmt: skip
    rows = render(plan, nli_records(100))
    # It cannot hide its choices: every row is an *opt format, and none lists them twice.
    assert {row["template_format"] for row in rows} == {"zsopt", "fsopt"}
    assert all("OPTIONS:" not in row["instruction"] for row in rows)
    assert all(row["answer_options"] is None for row in rows)


def superni_plan(encodings: tuple[str, ...], seed: int = 0, max_chars: int = 2000) -> RenderPlan:
    template = TemplateSpec(
        "superni/tk_instruct",
        "tk",
        (ROOT / "templates" / "superni" / "tk_instruct.jinja").read_text(encoding="utf-8"),
    )
    return RenderPlan("superni", "columns", (template,), 1, seed, id_field="id",
                      superni_encodings=encodings, max_demo_chars=max_chars)  # fmt: skip


def superni_rows(task: dict[str, Any], limit: int = 40) -> pa.RecordBatch:
    """Reader rows of a task file, as jobs.io.readers.superni makes them."""
    instances = task["Instances"][:limit]
    columns = {
        "task_name": ["task"] * len(instances),
        "definition": ["\n".join(task.get("Definition") or [])] * len(instances),
        "positive_examples": [json.dumps(task.get("Positive Examples"))] * len(instances),
        "negative_examples": [json.dumps(task.get("Negative Examples"))] * len(instances),
        "id": [item["id"] for item in instances],
        "input": [item["input"] for item in instances],
        "output": [item["output"] for item in instances],
        FILE_COLUMN: ["task.json"] * len(instances),
    }
    return pa.RecordBatch.from_pydict(columns)


def load_task(name: str) -> dict[str, Any]:
    path = shared_data("superni", "tasks", name)
    return json.loads(path.read_text(encoding="utf-8"))


def test_superni_encodings_on_a_real_task_file() -> None:
    task = load_task("task1582_bless_hypernym_generation.json")
    plan = superni_plan(ENCODINGS)
    rows = [r for b in render_batches(plan, [superni_rows(task)]) for r in b.to_pylist()]
    seen = collections.Counter(row["template_format"] for row in rows)
    assert set(seen) == set(ENCODINGS), seen
    first_positive = task["Positive Examples"][0]
    for row in rows:
        text = row["instruction"]
        fmt = row["template_format"]
        assert text.startswith("Definition: ") == (fmt != "pos2")
        assert (f"Input: {first_positive['input']}" in text) == (fmt != "definition")
        assert ("Negative Example 1 -" in text) == (fmt == "definition_pos2_neg2_explanation")
        assert ("Explanation: " in text) == (fmt == "definition_pos2_neg2_explanation")
        assert row["format_fallback"] is None
        # The examples are not the record's text: dedup and language ID never see them.
        assert first_positive["input"] not in (row["content"] or "")


def test_a_task_without_usable_examples_falls_back_and_says_so() -> None:
    task = load_task("task1582_bless_hypernym_generation.json")
    task["Positive Examples"] = [{"input": "knife"}, "not an example"]  # malformed
    task["Negative Examples"] = None
    plan = superni_plan(ENCODINGS)
    rows = [r for b in render_batches(plan, [superni_rows(task)]) for r in b.to_pylist()]
    assert {row["template_format"] for row in rows} == {"definition"}
    fallbacks = collections.Counter(row["format_fallback"] for row in rows)
    assert set(fallbacks) - {None} <= {
        "pos2",
        "definition_pos2",
        "definition_pos2_neg2_explanation",
    }
    assert sum(count for name, count in fallbacks.items() if name) > 0
    # No definition either: nothing the record can be shown with is a reject with a reason.
    task["Definition"] = []
    rows = [r for b in render_batches(plan, [superni_rows(task)]) for r in b.to_pylist()]
    assert {row["reason"] for row in rows} == {"no_usable_encoding"}


def test_examples_past_max_demo_chars_are_not_shown() -> None:
    task = load_task("task1582_bless_hypernym_generation.json")
    positives = parse_examples(json.dumps(task["Positive Examples"]), 2000)
    assert len(positives) >= 2
    assert parse_examples(json.dumps(task["Positive Examples"]), 5) == ()
    assert supported("A definition.", (), ()) == {"definition"}


TRANSLATE = TemplateSpec(
    "translation/translate",
    "translate",
    '{% set names = {"en": "English", "de": "German"} %}Translate this {{ names[src_lang] }} '
    "sentence into {{ names[tgt_lang] }}: {{ source }} ||| {{ target }}",
)


def test_inverted_pairs_swap_texts_and_languages() -> None:
    plan = RenderPlan("pairs", "json_text", (TRANSLATE,), 1, 0, id_field="id",
                      language_field="src_lang", target_language_field="tgt_lang",
                      target_fields=("target",), invert_pairs=(("source", "target"),))  # fmt: skip
    record = {"id": "p1", "src_lang": "en", "tgt_lang": "de", "source": "Good morning.",
              "target": "Guten Morgen."}  # fmt: skip
    rows = render(plan, [record])
    assert plan.rows_per_record == 2 and len(rows) == 2
    forward, back = rows
    assert forward["template_id"] == "translation/translate"
    assert back["template_id"] == "translation/translate#inverted"
    assert forward["id"] != back["id"] and forward["source_key"] == back["source_key"]
    assert forward["instruction"].endswith("English sentence into German: Good morning.")
    assert forward["response"] == back["content"] == "Guten Morgen."
    assert back["instruction"].endswith("German sentence into English: Guten Morgen.")
    assert back["response"] == "Good morning."
    assert (back["language"], back["target_language"]) == ("de", "en")
    assert back["dedup_text"] == forward["dedup_text"]  # one record for dedup


def write_project(tmp_path: Path, templates: str, extra: str = "", roots: str = "") -> Path:
    (tmp_path / "in.jsonl").write_text(json.dumps(nli_records(1)[0]) + "\n", encoding="utf-8")
    (tmp_path / "reg.yaml").write_text(
        "name: rte\npath: in.jsonl\nformat: jsonl\nid_field: id\nlanguage: en\ntask: nli\n"
        f"license: MIT\n{extra}templates:\n{templates}",
        encoding="utf-8",
    )
    main = shared_data("promptsource")
    multilingual = shared_data("promptsource-multilingual")
    roots = (
        roots or f"promptsource_root: [{json.dumps(str(main))}, {json.dumps(str(multilingual))}]\n"
    )
    conf = tmp_path / "pipeline.yaml"
    conf.write_text(f"sources: [reg.yaml]\noutput: out\n{roots}", encoding="utf-8")
    return conf


def test_promptsource_templates_by_dataset_name(tmp_path: Path) -> None:
    plan = load_plan(write_project(tmp_path, "  - promptsource: super_glue/rte\n"))
    templates = plan.sources[0].render.templates
    assert len(templates) == 10
    described = plan.describe()["sources"]["rte"]["templates"]
    entry = described[templates[0].template_id]
    assert set(entry["metadata"]) == {"original_task", "choices_in_prompt", "languages", "metrics"}
    everything = load_plan(write_project(tmp_path, "  - promptsource: super_glue/record\n"))
    filtered = load_plan(write_project(
        tmp_path, "  - promptsource: super_glue/record\n    original_task: false\n"
    )).sources[0].render.templates  # fmt: skip
    assert len(filtered) == 2 < len(everything.sources[0].render.templates)
    assert not any(t.metadata["original_task"] for t in filtered)
    named = load_plan(write_project(
        tmp_path, "  - promptsource: super_glue/rte\n    names: [MNLI crowdsource]\n"
    )).sources[0].render.templates  # fmt: skip
    assert [t.name for t in named] == ["MNLI crowdsource"]
    # The eval-hackathon fork is a second root: xquad.ar is only there.
    xquad = load_plan(write_project(tmp_path, "  - promptsource: xquad/xquad.ar\n"))
    assert "promptsource-multilingual" in xquad.sources[0].render.templates[0].origin
    languages = load_plan(write_project(
        tmp_path, "  - promptsource: xnli/en\n    languages: [en]\n"
    )).sources[0].render.templates  # fmt: skip
    assert languages and all("en" in t.metadata["languages"] for t in languages)


@pytest.mark.parametrize(
    ("templates", "roots", "expected"),
    [
        ("  - promptsource: super_glue/rtee\n", "", "nearest: super_glue/rte"),
        ("  - promptsource: super_glue/rte\n    names: [MNLI crowdsourse]\n", "",
         "'MNLI crowdsource'"),
        ("  - promptsource: super_glue/rte\n", "promptsource_root: []\n",
         "needs promptsource_root"),
        ("  - promptsource: super_glue/rte\n    languages: [sw]\n", "", "no template"),
        ("  - path: x.jinja\n    promptsource: super_glue/rte\n", "", "exactly one of"),
    ],
)  # fmt: skip
def test_promptsource_name_errors_name_the_nearest(
    tmp_path: Path, templates: str, roots: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_plan(write_project(tmp_path, templates, roots=roots))
    assert expected in str(error.value)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("superni:\n  encodings: [pos2]\n", "apply only to format: superni"),
        ("split: train\n", "'split' applies only to format: hf"),
        ("invert: true\n", "invert: true needs a translation"),
        (
            "target_language: de\ntarget_fields: [hypothesis]\ninvert: true\n",
            "the languages must be record fields",
        ),
        ("formats: [zsopt, zsopt]\n", "listed twice"),
        ("formats: [fewshot]\n", "formats"),
        ("few_shot:\n  k: 0\n", "few_shot.k"),
    ],
)
def test_collection_options_are_checked_before_spark(
    tmp_path: Path, extra: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_plan(write_project(tmp_path, "  - promptsource: super_glue/rte\n", extra))
    assert expected in str(error.value)
