"""Record decoding, keys, ids, declared types and template choice."""

from __future__ import annotations

import math

import pytest

from udfs.records import (
    RecordError,
    apply_renames,
    choose_templates,
    coerce_fields,
    derive_key,
    normalise_language,
    parse_json_line,
    record_id,
    source_key,
)


def test_parse_json_line_reasons() -> None:
    assert parse_json_line('{"a": 1}') == {"a": 1}
    for line, reason in [
        ("{bad", "malformed_json"),
        ("[1, 2]", "not_an_object"),
        ("  ", "blank_line"),
    ]:
        with pytest.raises(RecordError) as caught:
            parse_json_line(line)
        assert caught.value.reason == reason


def test_upstream_nan_is_accepted_like_python_json() -> None:
    assert math.isnan(parse_json_line('{"x": NaN}')["x"])


def test_derived_key_ignores_key_order_and_differs_by_content() -> None:
    assert derive_key({"a": 1, "b": [1, 2]}) == derive_key({"b": [1, 2], "a": 1})
    assert derive_key({"a": 1}) != derive_key({"a": 2})
    assert derive_key({"a": 1}).startswith("sha:")


def test_source_key_uses_id_field_and_rejects_missing_ids() -> None:
    assert source_key({"id": 7}, "id", {}) == "7"
    for record in ({}, {"id": None}, {"id": ""}, {"id": [1]}):
        with pytest.raises(RecordError) as caught:
            source_key(record, "id", record)
        assert caught.value.reason == "missing_id"


def test_record_id_is_stable_and_separates_parts() -> None:
    assert record_id("s", "k", "t") == record_id("s", "k", "t")
    assert record_id("s", "k", "t") != record_id("s", "kt", "")
    assert len(record_id("s", "k", "t")) == 32


def test_coerce_declared_types() -> None:
    record = {"label": "2", "score": "0.5", "flag": "True", "tags": ["a"], "text": "x"}
    types = (
        ("label", "int"),
        ("score", "float"),
        ("flag", "bool"),
        ("tags", "list"),
        ("text", "string"),
    )
    assert coerce_fields(record, types) == {
        "label": 2,
        "score": 0.5,
        "flag": True,
        "tags": ["a"],
        "text": "x",
    }


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("maybe", "int"),
        (True, "int"),
        (1.5, "int"),
        ("x", "float"),
        ("nan", "float"),
        (3, "string"),
        ("perhaps", "bool"),
        ("a", "list"),
        ([1], "struct"),
    ],
)
def test_wrong_types_are_rejected(value: object, kind: str) -> None:
    with pytest.raises(RecordError) as caught:
        coerce_fields({"f": value}, (("f", kind),))
    assert caught.value.reason == "wrong_type"
    assert "'f'" in caught.value.detail and kind in caught.value.detail


def test_absent_declared_field_is_left_to_the_template() -> None:
    assert coerce_fields({"a": 1}, (("label", "int"),)) == {"a": 1}


def test_renames_apply_before_everything_else() -> None:
    assert apply_renames({"q": 1, "x": 2}, (("q", "question"),)) == {"question": 1, "x": 2}


def test_language_codes() -> None:
    assert normalise_language("FR", "f") == "fr"
    assert normalise_language("zh_Hant", "f") == "zh"  # one code system: subtags dropped
    assert normalise_language("eng", "f") == "en"
    assert normalise_language("iw", "f") == "he"
    assert normalise_language("ceb", "f") == "ceb"
    assert normalise_language("UND", "f") == "und"
    for bad in ("xx", "zzz", "English"):
        with pytest.raises(RecordError):
            normalise_language(bad, "f")
    assert normalise_language(None, "f") == "und"
    with pytest.raises(RecordError) as caught:
        normalise_language("English", "field 'lang'")
    assert caught.value.reason == "invalid_language"


def test_choose_templates_is_deterministic_balanced_and_respects_k() -> None:
    ids = ["a", "b", "c", "d"]
    picks = [choose_templates(42, "src", f"key{i}", ids, 1)[0] for i in range(4000)]
    assert picks == [choose_templates(42, "src", f"key{i}", ids, 1)[0] for i in range(4000)]
    counts = [picks.count(i) for i in range(4)]
    assert min(counts) > 850, counts  # ~1000 each
    assert choose_templates(42, "src", "k", ids, None) == [0, 1, 2, 3]
    two = choose_templates(42, "src", "k", ids, 2)
    assert len(two) == 2 and len(set(two)) == 2
    assert choose_templates(42, "src", "k", ids, 9) == [0, 1, 2, 3]
    other_seed = [choose_templates(7, "src", f"key{i}", ids, 1)[0] for i in range(200)]
    assert other_seed != picks[:200]
