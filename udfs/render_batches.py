"""Render whole Arrow batches of one source: records in, rendered rows and rejects out.

This is the body of the render stage's ``mapInArrow``; it never sees Spark, so it is tested and
benchmarked as plain Python. Every input record yields exactly one output row per template it
is rendered with (``templates_per_record``, or all of them): a rendered pair, or a reject with a
reason. That is what lets the manifest reconcile read and written counts exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from udfs.flan_formats import choose_format, formatted_instruction, options_block
from udfs.inversion import inverted_id, inverted_record
from udfs.record_content import content, content_fields, dedup_content, dedup_fields
from udfs.record_prepare import Prepared, decode_row, prepare, raw_text
from udfs.records import RecordError, choose_templates, record_id, safe_text
from udfs.render_clock import alarm_scope
from udfs.render_output import OUTPUT_CHAR_BUDGET, RENDER_SCHEMA, output_batches
from udfs.render_plan import (
    CORRUPT_COLUMN,
    CORRUPT_DETAIL,
    CORRUPT_REASON,
    FILE_COLUMN,
    JSON_TEXT_COLUMN,
    READER_COLUMNS,
    RENDER_STAGE,
    UNDECODABLE,
    RenderPlan,
)
from udfs.superni_demos import DEMO_TEXTS_FIELD
from udfs.templating import CompiledTemplate, RenderError, compiled, render_with_choices

# The reader columns and the plan live in udfs.render_plan; they are imported from here too.
__all__ = [
    "CORRUPT_COLUMN",
    "CORRUPT_DETAIL",
    "CORRUPT_REASON",
    "FILE_COLUMN",
    "JSON_TEXT_COLUMN",
    "READER_COLUMNS",
    "RENDER_SCHEMA",
    "RENDER_STAGE",
    "RenderPlan",
    "decode_row",
    "render_batches",
    "render_rows",
]


def _identity(plan: RenderPlan, prepared: Prepared, index: int, template_id: str) -> dict[str, Any]:
    """The columns every row of a record and template has, rendered or rejected."""
    return {
        "source": plan.source,
        "source_key": safe_text(prepared.key),
        "id": record_id(plan.source, prepared.key, template_id),
        "template_id": template_id,
        "template_hash": plan.templates[index].template_hash,
        "language": prepared.language,
        "target_language": prepared.target_language,
        "task": prepared.task or plan.task,
        "categories": prepared.categories,
        "origins": prepared.origins,
    }


@dataclass(frozen=True)
class _SourceTemplates:
    """What render_rows needs per template, compiled once per batch."""

    ids: list[str]
    compiled: list[CompiledTemplate]
    fields: list[tuple[list[str], list[str]]]  # (own, target-language) content fields
    dedup_fields: list[str]

    @classmethod
    def of(cls, plan: RenderPlan) -> _SourceTemplates:
        templates = [compiled(spec) for spec in plan.templates]
        return cls(
            ids=[spec.template_id for spec in plan.templates],
            compiled=templates,
            fields=[content_fields(plan, template) for template in templates],
            dedup_fields=dedup_fields(plan, templates),
        )


def _variants(plan: RenderPlan, prepared: Prepared) -> Iterator[tuple[Prepared, bool]]:
    """The record, and with ``invert`` the record read the other way round."""
    yield prepared, False
    if plan.invert_pairs:
        record = prepared.record
        if record is not None:
            languages = (plan.language_field, plan.target_language_field)
            record = inverted_record(record, plan.invert_pairs, languages)
        yield (
            replace(
                prepared,
                record=record,
                language=prepared.target_language,
                target_language=prepared.language,
            ),
            True,
        )


def _render_pair(
    plan: RenderPlan, prepared: Prepared, index: int, template: CompiledTemplate, template_id: str
) -> dict[str, Any]:
    """instruction, response and the row's format: a FLAN format, or the SuperNI encoding."""
    assert prepared.record is not None
    # The plan's spec, not the compiled one's: compiled templates are cached by text.
    spec = plan.templates[index]
    salt = f"{plan.seed}\x1f{plan.source}\x1f{prepared.key}\x1f{template_id}"
    instruction, response, choices = render_with_choices(
        template, prepared.record, salt, plan.max_chars, plan.max_seconds
    )
    block = options_block(choices)
    in_prompt = bool((spec.metadata or {}).get("choices_in_prompt"))
    if prepared.encoding is not None:
        fmt = prepared.encoding
    else:
        fmt = choose_format(
            plan.seed, plan.source, prepared.key, template_id, plan.formats,
            block is not None, in_prompt,
        )  # fmt: skip
    if in_prompt:
        block = None  # the prompt lists them already: exemplars must not list them again
    return {
        "instruction": formatted_instruction(instruction, fmt, block),
        "response": response,
        "template_format": fmt,
        "answer_options": block,
        "format_fallback": prepared.wanted,
    }


def render_rows(plan: RenderPlan, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One output row per (record, chosen template), and per direction with ``invert``."""
    source = _SourceTemplates.of(plan)
    for row in rows:
        prepared = prepare(plan, row)
        dedup_text = (
            dedup_content(prepared.record, source.dedup_fields)
            if prepared.record is not None
            else None
        )
        chosen = choose_templates(
            plan.seed, plan.source, prepared.key, source.ids, plan.templates_per_record
        )
        for variant, inverted in _variants(plan, prepared):
            for index in chosen:
                yield _render_row(plan, source, variant, index, inverted, row, dedup_text)


def _render_row(
    plan: RenderPlan,
    source: _SourceTemplates,
    prepared: Prepared,
    index: int,
    inverted: bool,
    row: dict[str, Any],
    dedup_text: str | None,
) -> dict[str, Any]:
    template_id = inverted_id(source.ids[index]) if inverted else source.ids[index]
    out = _identity(plan, prepared, index, template_id)
    try:
        if prepared.failure is not None or prepared.record is None:
            raise prepared.failure or RecordError("internal_error", "no record")
        out.update(_render_pair(plan, prepared, index, source.compiled[index], template_id))
        own, target = source.fields[index]
        out["content"] = content(prepared.record, own)
        out["target_content"] = content(prepared.record, target)
        out["dedup_text"] = dedup_text
        out["demo_text"] = _plain(prepared.record.get(DEMO_TEXTS_FIELD))
        _check_encodable(
            out["instruction"],
            out["response"],
            out["content"] or "",
            out["target_content"] or "",
            dedup_text or "",
        )
    except Exception as exc:  # never let one record fail the batch
        if not isinstance(exc, (RecordError, RenderError)):
            exc = RenderError("internal_error", f"{type(exc).__name__}: {exc}")
        out.update(
            instruction=None,
            response=None,
            content=None,
            target_content=None,
            dedup_text=None,
            template_format=None,
            answer_options=None,
            format_fallback=None,
            demo_text=None,
            reason=exc.reason,
            detail=safe_text(exc.detail),
            record=safe_text(raw_text(plan, row)),
            source_file=row.get(FILE_COLUMN),
        )
    return out


def _plain(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _check_encodable(*texts: str) -> None:
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RenderError(
                "invalid_unicode",
                f"the rendered text holds {text[exc.start]!r}, which UTF-8 cannot",
            ) from None


def _row_or_marker(batch: pa.RecordBatch, index: int) -> dict[str, Any]:
    """One row as Python values; a row holding bytes that are not UTF-8 becomes a marker row
    (rejected as invalid_utf8) instead of failing the batch."""
    row: dict[str, Any] = {}
    problems = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            row[name] = column[index].as_py(maps_as_pydicts="strict")
        except UnicodeDecodeError as exc:
            row[name] = None
            problems.append(f"column {name!r}: byte {exc.start} is not valid UTF-8")
    if problems:
        row[UNDECODABLE] = "; ".join(problems)
    return row


def _python_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    try:
        return batch.to_pylist(maps_as_pydicts="strict")
    except UnicodeDecodeError:
        return [_row_or_marker(batch, index) for index in range(batch.num_rows)]


def render_batches(
    plan: RenderPlan, batches: Iterable[pa.RecordBatch], char_budget: int = OUTPUT_CHAR_BUDGET
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` body: each input batch's rows, in one output batch or, past
    ``char_budget`` characters of text, in several."""
    for batch in batches:
        with alarm_scope():  # one SIGPROF handler for the batch; each record sets the timer
            rendered = render_rows(plan, _python_rows(batch))
            output = list(output_batches(rendered, char_budget))
        yield from output
