"""Render whole Arrow batches of one source: records in, rendered rows and rejects out.

This is the body of the render stage's ``mapInArrow``; it never sees Spark, so it is tested and
benchmarked as plain Python. Every input record yields exactly one output row per template it
is rendered with (``templates_per_record``, or all of them): a rendered pair, or a reject with a
reason. That is what lets the manifest reconcile read and written counts exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from udfs.records import (
    FIELD_SEPARATOR,
    RecordError,
    apply_renames,
    canonical_json,
    choose_templates,
    coerce_fields,
    decode_utf8,
    derive_key,
    names,
    normalise_language,
    parse_json_line,
    record_id,
    safe_text,
    source_key,
    stable_hash,
    strip_nul,
    task_name,
)
from udfs.render_clock import alarm_scope
from udfs.render_output import OUTPUT_CHAR_BUDGET, output_batches
from udfs.render_output import RENDER_SCHEMA as RENDER_SCHEMA
from udfs.templating import (
    CompiledTemplate,
    RenderError,
    TemplateSpec,
    compiled,
    mark_blanks,
    render,
)

# Columns the readers add to a source frame; every other column is the record itself.
JSON_TEXT_COLUMN = "_im_json"  # binary: the line's bytes, decoded per record
UNDECODABLE = "_im_undecodable"  # set on a row Arrow could not turn into Python values
CORRUPT_COLUMN = "_im_corrupt"
FILE_COLUMN = "_im_file"
READER_COLUMNS = (JSON_TEXT_COLUMN, CORRUPT_COLUMN, FILE_COLUMN)

RENDER_STAGE = "render"


@dataclass(frozen=True)
class RenderPlan:
    """Everything a Python worker needs to render one source: small, plain, picklable."""

    source: str
    record_format: Literal["json_text", "columns"]
    templates: tuple[TemplateSpec, ...]
    templates_per_record: int | None  # None: every template
    seed: int
    id_field: str | None = None
    language: str | None = None
    language_field: str | None = None
    target_language: str | None = None
    target_language_field: str | None = None
    # Translation: the fields in the target language (compared with target_language).
    target_fields: tuple[str, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    field_types: tuple[tuple[str, str], ...] = ()
    allow_empty: bool = False
    # The fields dedup compares; empty: every field any of the source's templates inserts.
    dedup_fields: tuple[str, ...] = ()
    task: str | None = None  # the registry's task: every record's, unless task_field has one
    task_field: str | None = None
    categories_field: str | None = None
    origins: tuple[str, ...] = ()  # the registry's origin datasets
    origin_field: str | None = None
    # Per-record bounds (jobs.config.models.RenderLimits).
    max_chars: int = 1_000_000
    max_seconds: float = 0.5

    @property
    def rows_per_record(self) -> int:
        if self.templates_per_record is None:
            return len(self.templates)
        return min(self.templates_per_record, len(self.templates))


def _decode(plan: RenderPlan, row: dict[str, Any]) -> dict[str, Any]:
    """The record as stored in the source."""
    return decode_row(plan.record_format == "json_text", row)


def decode_row(json_text: bool, row: dict[str, Any]) -> dict[str, Any]:
    """A reader's row as the record it holds: the parsed line (``json_text``: JSON Lines
    read as bytes) or the row's own columns; a row that cannot be one raises RecordError."""
    if UNDECODABLE in row:
        raise RecordError("invalid_utf8", row[UNDECODABLE])
    if json_text:
        return strip_nul(parse_json_line(decode_utf8(row[JSON_TEXT_COLUMN] or b"")))
    if row.get(CORRUPT_COLUMN) is not None:
        raise RecordError("malformed_row", "the row does not parse with the file's columns")
    return strip_nul({key: value for key, value in row.items() if key not in READER_COLUMNS})


def _raw_text(plan: RenderPlan, row: dict[str, Any]) -> str:
    if plan.record_format == "json_text":
        raw = row.get(JSON_TEXT_COLUMN) or b""
        return raw if isinstance(raw, str) else raw.decode("utf-8", "backslashreplace")
    corrupt = row.get(CORRUPT_COLUMN)
    if corrupt is not None:
        return corrupt
    return canonical_json({k: v for k, v in row.items() if k not in (*READER_COLUMNS, UNDECODABLE)})


def _language(plan: RenderPlan, record: dict[str, Any]) -> str:
    if plan.language_field is not None:
        return normalise_language(record.get(plan.language_field), f"field {plan.language_field!r}")
    return normalise_language(plan.language, "registry 'language'")


def _target_language(plan: RenderPlan, record: dict[str, Any]) -> str | None:
    if plan.target_language_field is not None:
        field = plan.target_language_field
        return normalise_language(record.get(field), f"field {field!r}")
    if plan.target_language is not None:
        return normalise_language(plan.target_language, "registry 'target_language'")
    return None


def _not_content(plan: RenderPlan) -> set[str | None]:
    """Fields a template may read that are not the record's text: its id and language codes."""
    return {
        plan.id_field,
        plan.language_field,
        plan.target_language_field,
        plan.task_field,
        plan.categories_field,
        plan.origin_field,
    }


def _content_fields(plan: RenderPlan, template: CompiledTemplate) -> tuple[list[str], list[str]]:
    """(fields in the record's language, fields in the target language) that the template
    reads; ids and language codes are not content."""
    fields = sorted(template.fields - _not_content(plan))
    target = set(plan.target_fields)
    return [f for f in fields if f not in target], [f for f in fields if f in target]


def _dedup_fields(plan: RenderPlan, templates: list[CompiledTemplate]) -> list[str]:
    """One list for the whole source, so that rows of one record rendered by different
    templates compare the same text, and records that only share a template share nothing."""
    if plan.dedup_fields:
        return list(plan.dedup_fields)
    return sorted(set().union(*(template.fields for template in templates)) - _not_content(plan))


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    """Every string inside a value (lists and structs walked, a few levels deep)."""
    if isinstance(value, str):
        yield value
    elif depth < 4 and isinstance(value, dict):
        for item in value.values():
            yield from _strings(item, depth + 1)
    elif depth < 4 and isinstance(value, list):
        for item in value:
            yield from _strings(item, depth + 1)


def _content(record: dict[str, Any], fields: list[str]) -> str | None:
    """The record's own text in those fields, nested ones included."""
    parts = [part for name in fields for part in _strings(record.get(name)) if part.strip()]
    return "\n".join(parts) or None


def _dedup_content(record: dict[str, Any], fields: list[str]) -> str | None:
    """:func:`_content`, with the fields told apart by FIELD_SEPARATOR (dedup compares them
    one by one); the parts of one list field stay joined by newlines."""
    texts = [_content(record, [name]) for name in fields]
    return FIELD_SEPARATOR.join(text for text in texts if text is not None) or None


@dataclass
class _Prepared:
    key: str
    language: str | None = None
    target_language: str | None = None
    record: dict[str, Any] | None = None
    failure: RecordError | None = None
    task: str | None = None
    categories: list[str] | None = None
    origins: list[str] | None = None


def _prepare(plan: RenderPlan, row: dict[str, Any]) -> _Prepared:
    """Decode, key, language, declared types: everything before templating."""
    original: dict[str, Any] | None = None
    key = ""
    try:
        original = _decode(plan, row)
        record = apply_renames(original, plan.renames)
        key = source_key(record, plan.id_field, original)
        language = _language(plan, record)
        target = _target_language(plan, record)
        task = task_name(record, plan.task_field, plan.task)
        categories = _field_names(plan.categories_field, record, "categories_field")
        origins = list(
            dict.fromkeys([*plan.origins, *_field_names(plan.origin_field, record, "origin_field")])
        )
        record = coerce_fields(record, plan.field_types)
    except Exception as exc:  # whatever one record does, it is that record's reject
        if not isinstance(exc, RecordError):
            exc = RecordError("internal_error", f"{type(exc).__name__}: {exc}")
        if not key:
            # Rejects keep a key derived from what the row holds, never from its position.
            key = (
                derive_key(original)
                if original is not None
                else "raw:" + stable_hash(_raw_text(plan, row))
            )
        return _Prepared(key=key, failure=exc)
    if not plan.allow_empty:
        record = mark_blanks(record)
    return _Prepared(
        key=key,
        language=language,
        target_language=target,
        record=record,
        task=task,
        categories=categories,
        origins=origins or [_own_origin(plan, task)],
    )


def _own_origin(plan: RenderPlan, task: str | None) -> str:
    """The origin of a record that declares none: its source, or in a pooled source (tasks
    per record) its source's task, so one held-out task does not take every train task of
    the pool with it."""
    return f"{plan.source}/{task}" if plan.task_field is not None and task else plan.source


def _field_names(field: str | None, record: dict[str, Any], key: str) -> list[str]:
    return names(record.get(field), f"{key} {field!r}") if field is not None else []


def _identity(plan: RenderPlan, prepared: _Prepared, index: int) -> dict[str, Any]:
    """The columns every row of a record and template has, rendered or rejected."""
    template_id = plan.templates[index].template_id
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


def render_rows(plan: RenderPlan, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One output row per (record, chosen template)."""
    template_ids = [spec.template_id for spec in plan.templates]
    templates = [compiled(spec) for spec in plan.templates]
    content_fields = [_content_fields(plan, template) for template in templates]
    dedup_fields = _dedup_fields(plan, templates)
    for row in rows:
        prepared = _prepare(plan, row)
        dedup_text = (
            _dedup_content(prepared.record, dedup_fields) if prepared.record is not None else None
        )
        chosen = choose_templates(
            plan.seed, plan.source, prepared.key, template_ids, plan.templates_per_record
        )
        for index in chosen:
            template_id = template_ids[index]
            out = _identity(plan, prepared, index)
            try:
                if prepared.failure is not None or prepared.record is None:
                    raise prepared.failure or RecordError("internal_error", "no record")
                salt = f"{plan.seed}\x1f{plan.source}\x1f{prepared.key}\x1f{template_id}"
                template = templates[index]
                out["instruction"], out["response"] = render(
                    template, prepared.record, salt, plan.max_chars, plan.max_seconds
                )
                own, target = content_fields[index]
                out["content"] = _content(prepared.record, own)
                out["target_content"] = _content(prepared.record, target)
                out["dedup_text"] = dedup_text
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
                    reason=exc.reason,
                    detail=safe_text(exc.detail),
                    record=safe_text(_raw_text(plan, row)),
                    source_file=row.get(FILE_COLUMN),
                )
            yield out


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
            row[name] = column[index].as_py()
        except UnicodeDecodeError as exc:
            row[name] = None
            problems.append(f"column {name!r}: byte {exc.start} is not valid UTF-8")
    if problems:
        row[UNDECODABLE] = "; ".join(problems)
    return row


def _python_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    try:
        return batch.to_pylist()
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
