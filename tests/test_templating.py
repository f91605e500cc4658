"""The renderer: promptsource semantics, and where we are deliberately stricter."""

from __future__ import annotations

import pytest

from udfs.templating import (
    PIPE_PROTECTOR,
    RenderError,
    TemplateCompileError,
    TemplateSpec,
    compile_template,
    render,
)


def make(jinja: str, answer_choices: str | None = None) -> object:
    return compile_template(TemplateSpec("t", "t", jinja, answer_choices))


def test_splits_on_separator_and_strips_both_parts() -> None:
    template = make("  Premise: {{ premise }}\n|||\n  {{ label }}  \n")
    assert render(template, {"premise": "It rains.", "label": "yes"}) == (
        "Premise: It rains.",
        "yes",
    )


def test_answer_choices_rendered_on_the_record_and_indexed() -> None:
    template = make(
        "{{ premise }} Does it follow? ||| {{ answer_choices[label] }}",
        answer_choices="Yes ||| Maybe ||| {{ no_word }}",
    )
    record = {"premise": "P.", "label": 2, "no_word": "No"}
    assert render(template, record) == ("P. Does it follow?", "No")


def test_answer_choices_list_is_visible_to_the_template() -> None:
    template = make(
        "Options: {{ answer_choices | join(', ') }} ||| {{ answer_choices[0] }}",
        answer_choices=" first |||second ",
    )
    assert render(template, {}) == ("Options: first, second", "first")


def test_separator_inside_data_does_not_split() -> None:
    template = make("{{ text }} ||| {{ target }}")
    record = {"text": "a ||| b", "target": "c|||d"}
    assert render(template, record) == ("a ||| b", "c|||d")


def test_separator_inside_nested_data_does_not_split() -> None:
    template = make("{{ answers.text[0] }} ||| {{ answers.text[1] }}")
    record = {"answers": {"text": ["x ||| y", "z"]}}
    instruction, response = render(template, record)
    assert (instruction, response) == ("x ||| y", "z")
    assert PIPE_PROTECTOR not in instruction


def test_sandbox_blocks_class_escape() -> None:
    template = make("{{ ''.__class__.__mro__[1].__subclasses__() }} ||| x")
    with pytest.raises(RenderError) as caught:
        render(template, {})
    assert caught.value.reason == "sandbox_violation"
    assert "__class__" in caught.value.detail


def test_sandbox_blocks_calling_unsafe_attribute() -> None:
    template = make("{{ text.__init__.__globals__ }} ||| x")
    with pytest.raises(RenderError) as caught:
        render(template, {"text": "hi"})
    assert caught.value.reason == "sandbox_violation"


def test_strict_undefined_rejects_missing_field() -> None:
    template = make("{{ premise }} {{ hypothesis }} ||| {{ label }}")
    with pytest.raises(RenderError) as caught:
        render(template, {"premise": "P", "label": 1})
    assert caught.value.reason == "missing_field"
    assert "hypothesis" in caught.value.detail


def test_empty_target_is_a_reject_not_an_empty_string() -> None:
    template = make("{{ text }} ||| {% if label >= 0 %}{{ label }}{% endif %}")
    with pytest.raises(RenderError) as caught:
        render(template, {"text": "t", "label": -1})
    assert caught.value.reason == "empty_response"


def test_empty_instruction_is_a_reject() -> None:
    with pytest.raises(RenderError) as caught:
        render(make("{{ text }} ||| y"), {"text": "   "})
    assert caught.value.reason == "empty_instruction"


def test_output_without_separator_is_a_reject() -> None:
    # promptsource's common pattern: the target exists only for labelled rows.
    template = make("{{ text }}{% if label != -1 %} ||| {{ label }}{% endif %}")
    with pytest.raises(RenderError) as caught:
        render(template, {"text": "t", "label": -1})
    assert caught.value.reason == "no_response"


def test_more_than_one_separator_is_a_reject() -> None:
    with pytest.raises(RenderError) as caught:
        render(make("a ||| b ||| c"), {})
    assert caught.value.reason == "too_many_parts"


def test_record_with_reserved_answer_choices_field_is_rejected() -> None:
    with pytest.raises(RenderError) as caught:
        render(make("{{ x }} ||| y"), {"x": 1, "answer_choices": "a"})
    assert caught.value.reason == "reserved_field"


def test_index_past_the_end_is_a_missing_field() -> None:
    with pytest.raises(RenderError) as caught:
        render(make("{{ items[5] }} ||| y"), {"items": [1]})
    assert caught.value.reason == "missing_field"


def test_runtime_error_in_template_is_a_reject() -> None:
    with pytest.raises(RenderError) as caught:
        render(make("{{ 1 // n }} ||| y"), {"n": 0})
    assert caught.value.reason == "template_error"
    assert "ZeroDivisionError" in caught.value.detail


def test_template_without_separator_fails_at_compile_time() -> None:
    with pytest.raises(TemplateCompileError, match=r"\|\|\|"):
        make("{{ text }} only")


def test_syntax_error_fails_at_compile_time_with_line() -> None:
    with pytest.raises(TemplateCompileError, match="line 2"):
        make("ok |||\n{% if %}")


def test_choice_filter_is_deterministic_per_salt_and_varies_across_records() -> None:
    template = make("{{ options | choice }} ||| {{ options | choice }}")
    record = {"options": [f"o{i}" for i in range(50)]}
    first = render(template, record, choice_salt="record-1")
    assert first == render(template, record, choice_salt="record-1")
    picks = {render(template, record, choice_salt=f"record-{i}") for i in range(20)}
    assert len(picks) > 5


def test_most_frequent_filter_and_zip_global() -> None:
    template = make(
        "{% for a, b in zip(xs, ys) %}{{ a }}{{ b }} {% endfor %}||| {{ votes | most_frequent | join(',') }}"
    )
    record = {"xs": ["a", "b"], "ys": [1, 2], "votes": ["y", "n", "y"]}
    assert render(template, record) == ("a1 b2", "y")


def test_template_mutation_does_not_leak_into_the_record() -> None:
    template = make("{{ items.append('x') or items | length }} ||| ok")
    record = {"items": ["a"]}
    assert render(template, record)[0] == "2"
    assert render(template, record)[0] == "2"
    assert record == {"items": ["a"]}


def test_fields_are_found_from_the_template_ast() -> None:
    template = make(
        "{{ a }} {{ b.c }} {% set d = 1 %}{{ d }} ||| {{ answer_choices[e] }}", "{{ f }}"
    )
    assert template.fields == frozenset({"a", "b", "e", "f"})


def test_blank_fields_can_be_tested_but_not_written() -> None:
    from udfs.templating import mark_blanks

    template = make("{% if title %}Title: {{ title }}. {% endif %}{{ text }} ||| {{ label }}")
    for title in ("", None, "  "):
        record = mark_blanks({"title": title, "text": "hello", "label": "pos"})
        assert render(template, record) == ("hello", "pos")
    with pytest.raises(RenderError) as caught:
        render(template, mark_blanks({"title": "T", "text": "", "label": "pos"}))
    assert caught.value.reason == "empty_field" and "'text'" in caught.value.detail
    with pytest.raises(RenderError) as caught:
        render(make("{{ text }} ||| {{ label }}"), mark_blanks({"text": "x", "label": None}))
    assert caught.value.reason == "empty_field"
    fallback = make("{{ title or 'Untitled' }} ({{ title | length }}) ||| {{ title == '' }}")
    assert render(fallback, mark_blanks({"title": ""})) == ("Untitled (0)", "True")
