"""Hostile templates and records, without Spark: every bomb is its record's reject, fast, and
neither compiling nor rendering it builds anything big; normal templates render as stock Jinja.

Times are measured and reported (``instructmill figures``), never asserted."""

from __future__ import annotations

import json
import signal
import threading
import time
import tracemalloc
from collections.abc import Callable

import pyarrow as pa
import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from udfs.bounded_sandbox import guard_template
from udfs.records import RecordError, parse_json_line, record_id
from udfs.render_batches import (
    FILE_COLUMN,
    JSON_TEXT_COLUMN,
    RENDER_SCHEMA,
    RenderPlan,
    render_batches,
)
from udfs.render_output import output_batches
from udfs.templating import (
    RenderError,
    TemplateSpec,
    compile_template,
    environment,
    render,
)

TOO_LARGE, TIMEOUT = "render_too_large", "render_timeout"
# name -> (template, the reasons it may be rejected with)
SIZE_BOMBS = {
    "str_mul": "{{ 'a' * 10**9 }}",
    "tilde_then_mul": "{{ ('ab' ~ 'c') * 10**9 }}",
    "tilde_of_mul": "{{ 'ab' ~ 'a' * 10**9 }}",
    "list_mul": "{{ [1] * 10**9 }}",
    "huge_power": "{{ 10**(10**10) }}",
    "range_list": "{{ range(10**9)|list }}",
    "loop_str_mul": "{% for i in range(100000) %}{{ 'a' * 100000 }}{% endfor %}",
    "join_wide_separator": "{{ range(100000)|join('x' * 100000) }}",
    "join_in_loop": "{% for i in range(10) %}{{ range(100000)|join }}{% endfor %}",
    "format_filter_width": "{{ '%999999999s'|format('a') }}",
    "format_filter_spread": "{{ ('%s' * 300000)|format(*(['a' * 900000] * 300000)) }}",
    "percent_width": "{{ '%0999999999d' % 1 }}",
    "percent_star_width": "{{ '%*d' % (999999999, 1) }}",
    "str_format_width": "{{ '{:>999999999}'.format('a') }}",
    "str_format_nested_width": "{{ '{:>{}}'.format('a', 999999999) }}",
    "str_format_repeat": "{{ ('{0}' * 250000).format('a' * 1000) }}",
    "center": "{{ 'a'|center(10**9) }}",
    "ljust": "{{ 'a'.ljust(10**9) }}",
    "replace_empty": "{{ ('a' * 100000).replace('', 'b' * 100000) }}",
    "replace_filter": "{{ ('a' * 100000)|replace('a', 'b' * 100000) }}",
    "set_block": "{% set x %}{% for i in range(100000) %}{{ 'a' * 100000 }}{% endfor %}"
    "{% endset %}{{ x|length }}",
    "macro_buffer": "{% macro m() %}{% for i in range(100000) %}{{ 'a' * 100000 }}{% endfor %}"
    "{% endmacro %}{{ m()|length }}",
    "namespace_doubling": "{% set ns = namespace(x='ab') %}{% for i in range(64) %}"
    "{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x|length }}",
    "list_of_itself": "{% set ns = namespace(x=[1]) %}{% for i in range(64) %}"
    "{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x }}",
    "zip_of_itself": "{% set ns = namespace(x=[1, 2]) %}{% for i in range(64) %}"
    "{% set ns.x = zip(ns.x, ns.x)|list %}{% endfor %}{{ ns.x|length }}",
    "dict_of_itself": "{% set ns = namespace(x=[1]) %}{% for i in range(64) %}"
    "{% set ns.x = dict(a=ns.x, b=ns.x) %}{% endfor %}{{ ns.x|length }}",
    "squaring": "{% set ns = namespace(x=3) %}{% for i in range(64) %}"
    "{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x > 0 }}",
    "sum_of_lists": "{{ ([[1] * 1000] * 1000)|sum(start=[])|length }}",
    "to_bytes": "{{ (1).to_bytes(10**9, 'big')|length }}",
    "wordwrap": "{{ ('a ' * 400000)|wordwrap(1, wrapstring='x' * 100000) }}",
    "indent": "{{ ('\n' * 400000)|indent(100000) }}",
    "expandtabs": "{{ ('\t' * 100000).expandtabs(100000) }}",
    "translate": "{{ ('a' * 100000).translate({97: 'b' * 100000}) }}",
    "batch_fill": "{{ [1]|batch(10**8, 'x' * 1000)|list }}",
    "tojson_doubling": "{% set ns = namespace(x='\"') %}{% for i in range(64) %}"
    "{% set ns.x = ns.x|tojson %}{% endfor %}{{ ns.x|length }}",
    "tojson_indent": "{{ [[1]]|tojson(10**8) }}",
    "dict_fromkeys": "{{ {}.fromkeys(range(100000), 'x' * 100000) }}",
    "lipsum": "{{ lipsum(10**6) }}",
    "urlize_rel": "{{ ('a.b ' * 100000)|urlize(rel='x' * 100000) }}",
}
TIME_BOMBS = {
    "nested_for_silent": "{% for i in range(100000) %}{% for j in range(100000) %}"
    "{% endfor %}{% endfor %}",
    "macro_doubling_calls": "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}"
    "{% endif %}{% endmacro %}{{ f(40) }}",
}
BOMBS = {
    **{name: (jinja, {TOO_LARGE}) for name, jinja in SIZE_BOMBS.items()},
    **{name: (jinja, {TIMEOUT}) for name, jinja in TIME_BOMBS.items()},
    # Each of these is stopped by the size check or by the clock, whichever comes first.
    "nested_for_output": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
        {TOO_LARGE, TIMEOUT},
    ),
    "nested_for_blank_output": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ '' if j < 0 }}"
        "{% endfor %}{% endfor %}",
        {TIMEOUT},
    ),
    "extend_itself": (
        "{% set l = [1] %}{% for i in range(64) %}{{ l.extend(l) }}{% endfor %}",
        {TOO_LARGE, TIMEOUT},
    ),
}


def spec(name: str, jinja: str) -> TemplateSpec:
    return TemplateSpec(f"bomb/{name}", name, jinja + " ||| answer")


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_each_bomb_is_its_records_reject(name: str, report: Callable[[str], None]) -> None:
    jinja, reasons = BOMBS[name]
    template = compile_template(spec(name, jinja))
    # Size bombs get all the time they want, so the size bound alone stops them.
    seconds = 0.5 if TIMEOUT in reasons else 60.0
    started = time.perf_counter()
    with pytest.raises(RenderError) as caught:
        render(template, {}, max_seconds=seconds)
    report(f"bomb {name}: {caught.value.reason} in {time.perf_counter() - started:.3f} s")
    assert caught.value.reason in reasons
    assert f"template {name!r}" in caught.value.detail
    if caught.value.reason == TIMEOUT:
        assert "render.max_seconds (0.5 s)" in caught.value.detail
    if caught.value.reason == TOO_LARGE and "render.max_chars" in caught.value.detail:
        assert "(1,000,000)" in caught.value.detail and "pipeline YAML" in caught.value.detail


@pytest.mark.parametrize("name", sorted(SIZE_BOMBS))
def test_compiling_a_bomb_builds_nothing_big(name: str) -> None:
    tracemalloc.start()
    try:
        compile_template(spec(name, SIZE_BOMBS[name]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20
    env = environment()
    source = env.compile(guard_template(env.parse(SIZE_BOMBS[name]), env), raw=True)
    assert len(source) < 20_000  # no constant folded into the module


NORMAL = [
    "{% for a in answers %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}"
    "{% endfor %} ||| {{ answers|join(', ') }}",
    "{{ question ~ '?' ~ 1 }} {{ [question, 'b'] }} {{ (1, 2) }} {{ {'k': question} }} ||| x",
    "{% macro item(x) %}<{{ x }}>{% endmacro %}{% for a in answers %}{{ item(a) }}{% endfor %}"
    " ||| {% set block %}{{ answers|length }} items{% endset %}{{ block }}",
    "{{ '%s: %d' % (question, 3) }} {{ '{0}-{1:>4}'.format(question, 7) }} "
    "{{ '{x}'.format_map({'x': 1}) }} ||| {{ '%s'|format(question) }}",
    "{{ answers|sum(start=[]) if false else [1, 2]|sum }} {{ [[1], [2]]|sum(start=[]) }} "
    "{{ answers|batch(2, '-')|list }} ||| {{ answers|tojson(2) }}",
    "{{ question|center(11) }}|{{ 'a\nb'|indent(2, true) }} {{ 'aa bb cc'|wordwrap(3) }} "
    "||| {{ 'x' * 3 }} {{ [0] * 3 }} {{ 2 ** 10 }} {{ 10**10**10 }} {{ 'ab' + 'c' }}",
    "{% for k, v in {'a': 1, 'b': 2}|dictsort %}{{ k }}={{ v }} {% endfor %}"
    "{{ answers|map('upper')|list }} ||| {{ answers|reverse|list }} {{ zip(answers, answers)|list }}",
    "{% filter upper %}{{ question }}{% endfilter %} {{ question.replace('W', 'w').ljust(7, '.') }}"
    " ||| {{ answers|select('ne', 'two')|join }} {{ range(3)|list }} {{ lipsum(1, False, 2, 3)|length > 0 }}",
]


@pytest.mark.parametrize("jinja", NORMAL)
def test_normal_templates_render_as_stock_jinja(jinja: str) -> None:
    record = {"question": "Which", "answers": ["one", "two", "three"]}
    stock = SandboxedEnvironment(undefined=StrictUndefined)
    stock.globals.update(zip=zip)
    expected = [part.strip() for part in stock.from_string(jinja).render(**record).split("|||")]
    ours = render(compile_template(TemplateSpec("t", "t", jinja)), record)
    assert list(ours) == expected


def test_limits_come_from_the_caller() -> None:
    template = compile_template(TemplateSpec("t", "t", "{{ text }} ||| ok"))
    record = {"text": "w" * 2000}
    assert render(template, record)[0] == "w" * 2000
    with pytest.raises(RenderError) as caught:
        render(template, record, max_chars=1000)
    assert caught.value.reason == TOO_LARGE and "render.max_chars (1,000)" in caught.value.detail
    slow = compile_template(spec("slow", TIME_BOMBS["nested_for_silent"]))
    with pytest.raises(RenderError) as caught:
        render(slow, {}, max_seconds=0.05)
    assert caught.value.reason == TIMEOUT and "(0.05 s)" in caught.value.detail


def test_the_previous_alarm_handler_and_timer_are_given_back() -> None:
    fired: list[int] = []
    previous = signal.signal(signal.SIGPROF, lambda signum, frame: fired.append(signum))
    signal.setitimer(signal.ITIMER_PROF, 30)
    try:
        with pytest.raises(RenderError):
            render(compile_template(spec("slow", TIME_BOMBS["nested_for_silent"])), {})
        assert signal.getsignal(signal.SIGPROF) is not None and not fired
        assert 0 < signal.getitimer(signal.ITIMER_PROF)[0] <= 30
        assert signal.getsignal(signal.SIGPROF).__name__ == "<lambda>"  # type: ignore[union-attr]
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


@pytest.mark.parametrize("name", [*TIME_BOMBS, "nested_for_blank_output"])
def test_time_bound_holds_outside_the_main_thread(name: str) -> None:
    template = compile_template(spec(name, BOMBS[name][0]))
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            render(template, {})
        except BaseException as exc:  # the thread's outcome, checked below
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=120)  # a hang fails here instead of stalling the run
    assert not thread.is_alive()
    assert isinstance(outcome[0], RenderError) and outcome[0].reason == TIMEOUT


NORMAL_SPEC = TemplateSpec("ok/premise", "premise", "{{ premise }} ||| {{ label }}")


def plan(*templates: TemplateSpec, **overrides: object) -> RenderPlan:
    settings = dict(
        source="hostile",
        record_format="json_text",
        templates=templates,
        templates_per_record=None,
        seed=1,
        id_field="id",
        language="en",
    )
    settings.update(overrides)
    return RenderPlan(**settings)  # type: ignore[arg-type]


def json_batch(records: list[dict[str, object]]) -> pa.RecordBatch:
    lines = [json.dumps(record) for record in records]
    return pa.RecordBatch.from_pydict({JSON_TEXT_COLUMN: lines, FILE_COLUMN: ["f"] * len(lines)})


def rendered_rows(batches: list[pa.RecordBatch]) -> list[dict[str, object]]:
    assert all(batch.schema.equals(RENDER_SCHEMA) for batch in batches)
    return [row for batch in batches for row in batch.to_pylist()]


def test_bombs_in_a_batch_leave_every_record_its_rows(report: Callable[[str], None]) -> None:
    bombs = [spec(name, BOMBS[name][0]) for name in ("str_mul", "nested_for_silent", "range_list")]
    records = [{"id": str(i), "premise": f"premise {i}", "label": i} for i in range(3)]
    started = time.perf_counter()
    out = rendered_rows(list(render_batches(plan(NORMAL_SPEC, *bombs), [json_batch(records)])))
    report(f"batch of 3 records x 3 bombs: {time.perf_counter() - started:.2f} s")
    assert len(out) == 3 * 4
    assert [r["instruction"] for r in out if r["template_id"] == "ok/premise"] == [
        "premise 0",
        "premise 1",
        "premise 2",
    ]
    reasons = {(r["template_id"], r["reason"]) for r in out if r["template_id"] != "ok/premise"}
    assert reasons == {
        ("bomb/str_mul", TOO_LARGE),
        ("bomb/nested_for_silent", TIMEOUT),
        ("bomb/range_list", TOO_LARGE),
    }


def test_a_batch_past_the_text_budget_splits_and_keeps_every_row() -> None:
    records = [{"id": str(i), "premise": "p" * 1000, "label": i} for i in range(50)]
    batches = list(render_batches(plan(NORMAL_SPEC), [json_batch(records)], char_budget=20_000))
    out = rendered_rows(batches)
    assert len(batches) > 1
    for batch in batches:  # each within the budget: the row that would pass it opens the next
        texts = [v for row in batch.to_pylist() for v in row.values() if isinstance(v, str)]
        assert sum(map(len, texts)) <= 20_000
    assert [row["source_key"] for row in out] == [str(i) for i in range(50)]
    assert all(row["reason"] is None and row["instruction"] == "p" * 1000 for row in out)


def test_a_row_arrow_cannot_hold_becomes_a_reject_and_the_others_stay() -> None:
    good = {"source": "s", "source_key": "1", "id": "a", "template_id": "t", "template_hash": "h"}
    bad = {**good, "source_key": "2", "id": "b", "instruction": 12345}  # not a string
    out = rendered_rows(list(output_batches([good, bad, {**good, "id": "c"}])))
    assert [row["id"] for row in out] == ["a", "b", "c"]
    assert out[1]["reason"] == "internal_error" and "Arrow" in out[1]["detail"]
    assert out[0]["reason"] is None and out[2]["reason"] is None


def test_nul_never_reaches_text_or_keys() -> None:
    line = json.dumps({"id": "k\x00ey", "premise": "a\x00b", "label": "c\x00"})
    batch = pa.RecordBatch.from_pydict({JSON_TEXT_COLUMN: [line], FILE_COLUMN: ["f"]})
    (row,) = rendered_rows(list(render_batches(plan(NORMAL_SPEC), [batch])))
    assert (row["instruction"], row["response"], row["source_key"]) == ("ab", "c", "key")
    assert row["id"] == record_id("hostile", "key", "ok/premise")
    assert "\x00" not in (row["content"] or "") + (row["dedup_text"] or "")
    columns = pa.RecordBatch.from_pydict(
        {"id": ["x\x00"], "premise": ["p\x00q"], "label": ["\x00l"], FILE_COLUMN: ["f"]}
    )
    (row,) = rendered_rows(
        list(render_batches(plan(NORMAL_SPEC, record_format="columns"), [columns]))
    )
    assert (row["instruction"], row["response"], row["source_key"]) == ("pq", "l", "x")
    literal = compile_template(TemplateSpec("t", "t", "a{{ '\x00' }}b ||| c\x00"))
    assert render(literal, {}) == ("ab", "c")


def test_fields_that_collide_once_nul_is_gone_are_a_reject() -> None:
    batch = json_batch([{"id": "1", "premise": "p", "prem\x00ise": "q", "label": 0}])
    (row,) = rendered_rows(list(render_batches(plan(NORMAL_SPEC), [batch])))
    assert row["reason"] == "rename_conflict" and "'premise'" in row["detail"]


def test_json_error_detail_says_at_once() -> None:
    with pytest.raises(RecordError) as caught:
        parse_json_line('{"a": "abc')
    assert caught.value.detail == "Unterminated string starting at column 7"
