"""The Arrow batch renderer, without Spark: one output row per record and chosen template."""

from __future__ import annotations

import json

import pyarrow as pa

from udfs.records import FIELD_SEPARATOR
from udfs.render_batches import (
    CORRUPT_COLUMN,
    FILE_COLUMN,
    JSON_TEXT_COLUMN,
    RENDER_SCHEMA,
    RenderPlan,
    render_batches,
)
from udfs.templating import TemplateSpec

NLI = TemplateSpec(
    "nli/infer",
    "infer",
    "{{ premise }} => {{ hypothesis }}? ||| {{ answer_choices[label] }}",
    "yes ||| maybe ||| no",
)
NLI2 = TemplateSpec("nli/short", "short", "{{ premise }} / {{ hypothesis }} ||| {{ label }}")


def plan(**overrides: object) -> RenderPlan:
    settings = dict(
        source="nli_fr",
        record_format="json_text",
        templates=(NLI, NLI2),
        templates_per_record=1,
        seed=42,
        id_field="id",
        language="fr",
        field_types=(("label", "int"),),
    )
    settings.update(overrides)
    return RenderPlan(**settings)  # type: ignore[arg-type]


def json_batch(lines: list[str]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {JSON_TEXT_COLUMN: lines, FILE_COLUMN: ["file:/data/x.jsonl"] * len(lines)}
    )


def rows(render_plan: RenderPlan, batch: pa.RecordBatch) -> list[dict[str, object]]:
    out = list(render_batches(render_plan, [batch]))
    assert all(b.schema.equals(RENDER_SCHEMA) for b in out)
    return [row for b in out for row in b.to_pylist()]


LINES = [
    json.dumps(
        {"id": "1", "premise": "Le chat dort.", "hypothesis": "Un animal dort.", "label": 0}
    ),
    '{"id": "2", "premise": "cut',
    json.dumps({"id": "3", "premise": "P", "label": 1}),
    json.dumps({"id": "4", "premise": "", "hypothesis": "H", "label": 1}),
    json.dumps({"id": "5", "premise": "P", "hypothesis": "H", "label": "maybe"}),
    json.dumps({"premise": "P", "hypothesis": "H", "label": 1}),
]


def test_each_record_yields_one_row_rendered_or_rejected_with_reason() -> None:
    out = rows(plan(), json_batch(LINES))
    assert len(out) == len(LINES)
    by_key = {row["source_key"]: row for row in out}
    good = by_key["1"]
    assert good["reason"] is None and good["record"] is None
    assert good["response"] in {"yes", "0"}
    assert "Le chat dort." in good["instruction"]
    assert good["language"] == "fr"
    reasons = {row["source_key"]: row["reason"] for row in out if row["reason"]}
    assert reasons["3"] == "missing_field"
    assert reasons["4"] == "empty_field"
    assert reasons["5"] == "wrong_type"
    malformed = [row for row in out if row["reason"] == "malformed_json"]
    assert len(malformed) == 1
    assert malformed[0]["record"] == LINES[1]
    assert malformed[0]["source_file"] == "file:/data/x.jsonl"
    assert malformed[0]["source_key"].startswith("raw:")
    missing_id = [row for row in out if row["reason"] == "missing_id"]
    assert len(missing_id) == 1 and missing_id[0]["source_key"].startswith("sha:")


def test_all_templates_gives_one_row_per_template_even_for_rejects() -> None:
    out = rows(plan(templates_per_record=None), json_batch(LINES))
    assert len(out) == 2 * len(LINES)
    ids = [row["id"] for row in out]
    assert len(set(ids)) == len(ids)
    assert {row["template_id"] for row in out if row["source_key"] == "1"} == {
        "nli/infer",
        "nli/short",
    }


def test_output_is_independent_of_batching() -> None:
    whole = rows(plan(), json_batch(LINES))
    pieces = [r for i in range(len(LINES)) for r in rows(plan(), json_batch(LINES[i : i + 1]))]
    assert whole == pieces


def test_derived_keys_when_no_id_field() -> None:
    out = rows(plan(id_field=None), json_batch([LINES[0], LINES[0].replace(" ", "  ", 1)]))
    assert out[0]["source_key"].startswith("sha:")
    # Same JSON value, different whitespace: same record, same key and id.
    assert out[0]["source_key"] == out[1]["source_key"] and out[0]["id"] == out[1]["id"]


def test_columnar_rows_with_corrupt_record_column() -> None:
    batch = pa.RecordBatch.from_pydict(
        {
            "id": ["1", "2"],
            "premise": ["P", None],
            "hypothesis": ["H", None],
            "label": ["2", None],
            CORRUPT_COLUMN: [None, "2,P,H,1,extra"],
            FILE_COLUMN: ["file:/x.csv", "file:/x.csv"],
        }
    )
    out = rows(plan(record_format="columns"), batch)
    assert out[0]["reason"] is None and out[0]["response"] in {"no", "2"}
    assert out[1]["reason"] == "malformed_row" and out[1]["record"] == "2,P,H,1,extra"


def test_language_field_and_invalid_codes() -> None:
    lines = [
        json.dumps({"id": "1", "lang": "DE", "premise": "P", "hypothesis": "H", "label": 0}),
        json.dumps({"id": "2", "lang": "German", "premise": "P", "hypothesis": "H", "label": 0}),
        json.dumps({"id": "3", "premise": "P", "hypothesis": "H", "label": 0}),
    ]
    out = rows(plan(language=None, language_field="lang"), json_batch(lines))
    assert [row["language"] for row in out] == ["de", None, "und"]
    assert out[1]["reason"] == "invalid_language"


def test_renames_make_fields_available_to_templates() -> None:
    line = json.dumps({"id": "1", "sentence_a": "P", "hypothesis": "H", "label": 0})
    out = rows(plan(renames=(("sentence_a", "premise"),)), json_batch([line]))
    assert out[0]["reason"] is None and out[0]["instruction"].startswith("P")


def test_bytes_that_are_not_utf8_are_that_lines_reject() -> None:
    good = LINES[0].encode()
    batch = pa.RecordBatch.from_pydict(
        {
            JSON_TEXT_COLUMN: [
                good,
                b'{"id": "9", "premise": "caf\xe9 \xff"}',
                "\ufeff".encode() + good,
            ],
            FILE_COLUMN: ["f"] * 3,
        },
        schema=pa.schema([(JSON_TEXT_COLUMN, pa.binary()), (FILE_COLUMN, pa.string())]),
    )
    out = rows(plan(), batch)
    assert [row["reason"] for row in out] == [None, "invalid_utf8", None]
    assert "\\xe9" in out[1]["record"]  # the raw bytes stay visible in the reject
    assert out[2]["source_key"] == "1"  # a byte order mark before the first record is fine


def test_lone_surrogates_huge_numbers_and_deep_nesting_do_not_fail_the_batch() -> None:
    lines = [
        '{"id": "s\\ud83d", "premise": "broken emoji \\ud83d", "hypothesis": "H", "label": 0}',
        '{"id": "n", "premise": "P", "hypothesis": "H", "label": ' + "9" * 5000 + "}",
        '{"id": "d", "premise": ' + "[" * 100_000 + "]" * 100_000 + "}",
        LINES[0],
    ]
    out = rows(plan(), json_batch(lines))
    assert len(out) == 4
    assert out[0]["reason"] == "invalid_unicode" and out[0]["source_key"] == "s\\ud83d"
    assert out[1]["reason"] == "malformed_json"
    assert out[2]["reason"] == "malformed_json"
    assert out[3]["reason"] is None


def test_float_overflow_is_a_wrong_type() -> None:
    line = json.dumps({"id": "1", "premise": "P", "hypothesis": "H", "label": 0, "x": 10**400})
    out = rows(plan(field_types=(("x", "float"),)), json_batch([line]))
    assert out[0]["reason"] == "wrong_type"


def test_undecodable_strings_in_columnar_batches_become_rejects() -> None:
    texts = pa.array([b"fine", b"caf\xe9"], pa.binary()).view(pa.string())
    batch = pa.RecordBatch.from_arrays(
        [pa.array(["1", "2"]), texts, pa.array(["H", "H"]), pa.array([0, 1]), pa.array(["f", "f"])],
        names=["id", "premise", "hypothesis", "label", FILE_COLUMN],
    )
    out = rows(plan(record_format="columns"), batch)
    assert out[0]["reason"] is None
    assert out[1]["reason"] == "invalid_utf8" and "premise" in out[1]["detail"]


def test_rename_onto_an_existing_field_is_a_reject_and_renames_swap() -> None:
    line = json.dumps({"id": "1", "premise": "P", "hypothesis": "H", "label": 0})
    out = rows(plan(renames=(("hypothesis", "premise"),)), json_batch([line]))
    assert out[0]["reason"] == "rename_conflict"
    swapped = rows(
        plan(renames=(("premise", "hypothesis"), ("hypothesis", "premise"))), json_batch([line])
    )
    assert swapped[0]["instruction"].startswith("H")


def test_content_is_the_records_own_text_nested_fields_included() -> None:
    template = TemplateSpec(
        "qa/nested", "nested", "Context: {{ data.context }}\nQ: {{ q }} ||| {{ data.answers[0] }}"
    )
    line = json.dumps(
        {
            "id": "1",
            "lang": "fr",
            "q": "Où ?",
            "data": {"context": "À Paris.", "answers": ["Paris"]},
        }
    )
    out = rows(plan(templates=(template,), language=None, language_field="lang", field_types=()),
               json_batch([line]))  # fmt: skip
    assert out[0]["content"] == "À Paris.\nParis\nOù ?"  # no template words, no id or lang code


def test_dedup_text_is_one_per_record_whatever_the_template() -> None:
    """Every row of a record compares the same text: the fields any of the source's templates
    insert (here NLI2 reads no field NLI does not), or the configured ``dedup_fields``."""
    premise_only = TemplateSpec("nli/p", "p", "{{ premise }} ||| {{ label }}")
    line = json.dumps({"id": "1", "premise": "Le chat dort.", "hypothesis": "Un animal dort.",
                       "label": 0})  # fmt: skip
    out = rows(plan(templates=(premise_only, NLI2), templates_per_record=None), json_batch([line]))
    both = "Un animal dort.\nLe chat dort."  # fields in name order
    assert [row["content"] for row in out] == ["Le chat dort.", both]
    # Fields are told apart, for field-aware dedup; the normal form reads U+001E as a space.
    assert {row["dedup_text"] for row in out} == {both.replace("\n", FIELD_SEPARATOR)}
    chosen = rows(plan(dedup_fields=("hypothesis",)), json_batch([line]))
    assert chosen[0]["dedup_text"] == "Un animal dort."
    rejected = rows(plan(), json_batch(['{"id": "2", "premise": "cut']))
    assert rejected[0]["dedup_text"] is None and rejected[0]["reason"] == "malformed_json"


def test_task_categories_and_origins_come_from_the_record_or_the_registry() -> None:
    lines = [
        json.dumps({"id": "a", "premise": "p", "hypothesis": "h", "label": 0, "t": "task1",
                    "cats": "Textual Entailment", "src": ["snli", "snli", " mnli "]}),
        json.dumps({"id": "b", "premise": "p", "hypothesis": "h", "label": 0, "t": "task2"}),
        json.dumps({"id": "c", "premise": "p", "hypothesis": "h", "label": 0}),
        json.dumps({"id": "d", "premise": "p", "hypothesis": "h", "label": 0, "t": "x",
                    "cats": [3]}),
    ]  # fmt: skip
    pooled = plan(task_field="t", categories_field="cats", origin_field="src", origins=("xnli",))
    out = {row["source_key"]: row for row in rows(pooled, json_batch(lines))}
    assert (out["a"]["task"], out["a"]["categories"]) == ("task1", ["Textual Entailment"])
    assert out["a"]["origins"] == ["xnli", "snli", "mnli"]
    assert out["b"]["origins"] == ["xnli"] and out["b"]["categories"] == []
    assert out["c"]["reason"] == "missing_field"  # no task, and no registry task to fall back on
    assert out["d"]["reason"] == "invalid_field"
    # Category and origin fields are metadata, not content dedup compares.
    assert out["a"]["dedup_text"] is not None and "snli" not in out["a"]["dedup_text"]
    # A pooled source without declared origins: each task is its own origin.
    own = {r["source_key"]: r for r in rows(plan(task_field="t", task="fallback"),
                                            json_batch(lines[:3]))}  # fmt: skip
    assert own["b"]["origins"] == [f"{own['b']['source']}/task2"]
    assert own["c"]["task"] == "fallback"
    assert own["c"]["origins"] == [f"{own['c']['source']}/fallback"]
    single = rows(plan(task="nli"), json_batch(lines[:1]))[0]
    assert (single["task"], single["origins"]) == ("nli", [single["source"]])
