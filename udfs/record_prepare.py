"""A reader's row -> the record a template sees: decoded, keyed, its languages, task,
categories and origins found, declared types applied, SuperNI demonstrations added; or the
record's failure, which every row of the record then carries as its reject."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from udfs.records import (
    RecordError,
    apply_renames,
    canonical_json,
    coerce_fields,
    decode_utf8,
    derive_key,
    names,
    normalise_language,
    parse_json_line,
    source_key,
    stable_hash,
    strip_nul,
    task_name,
)
from udfs.render_plan import (
    CORRUPT_COLUMN,
    CORRUPT_DETAIL,
    CORRUPT_REASON,
    JSON_TEXT_COLUMN,
    READER_COLUMNS,
    UNDECODABLE,
    RenderPlan,
)
from udfs.superni_demos import choose_encoding, demonstration_fields, parse_examples, supported
from udfs.templating import mark_blanks


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
        raise RecordError(
            row.get(CORRUPT_REASON) or "malformed_row",
            row.get(CORRUPT_DETAIL) or "the row does not parse with the file's columns",
        )
    return strip_nul({key: value for key, value in row.items() if key not in READER_COLUMNS})


def raw_text(plan: RenderPlan, row: dict[str, Any]) -> str:
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


@dataclass
class Prepared:
    key: str
    language: str | None = None
    target_language: str | None = None
    record: dict[str, Any] | None = None
    failure: RecordError | None = None
    task: str | None = None
    categories: list[str] | None = None
    origins: list[str] | None = None
    encoding: str | None = None  # the SuperNI encoding of the record
    wanted: str | None = None  # the encoding its hash picked, when it could not be used


def prepare(plan: RenderPlan, row: dict[str, Any]) -> Prepared:
    """Decode, key, language, declared types: everything before templating."""
    original: dict[str, Any] | None = None
    key = ""
    try:
        original = _decode(plan, row)
        record = apply_renames(_with_comments(plan, original), plan.renames)
        key = source_key(record, plan.id_field, original)
        language = _language(plan, record)
        target = _target_language(plan, record)
        task = task_name(record, plan.task_field, plan.task)
        categories = _field_names(plan.categories_field, record, "categories_field")
        origins = list(
            dict.fromkeys([*plan.origins, *_field_names(plan.origin_field, record, "origin_field")])
        )
        record = coerce_fields(record, plan.field_types)
        encoding, wanted = _demonstrations(plan, record, key)
    except Exception as exc:  # whatever one record does, it is that record's reject
        if not isinstance(exc, RecordError):
            exc = RecordError("internal_error", f"{type(exc).__name__}: {exc}")
        if not key:
            # Rejects keep a key derived from what the row holds, never from its position.
            key = (
                derive_key(original)
                if original is not None
                else "raw:" + stable_hash(raw_text(plan, row))
            )
        return Prepared(key=key, failure=exc)
    if not plan.allow_empty:
        record = mark_blanks(record)
    return Prepared(
        key=key,
        language=language,
        target_language=target,
        record=record,
        task=task,
        categories=categories,
        origins=origins or [_own_origin(plan, task)],
        encoding=encoding,
        wanted=wanted if wanted != encoding else None,
    )


def _with_comments(plan: RenderPlan, record: dict[str, Any]) -> dict[str, Any]:
    comments = record.get("comments")
    if not plan.comment_fields or not isinstance(comments, dict):
        return record
    return {**{key: value for key, value in comments.items() if key not in record}, **record}


def _demonstrations(plan: RenderPlan, record: dict[str, Any], key: str) -> tuple[Any, Any]:
    """Add the demonstration fields of the record's SuperNI encoding to ``record``."""
    if not plan.superni_encodings:
        return None, None
    positives = parse_examples(record.get("positive_examples"), plan.max_demo_chars)
    negatives = parse_examples(record.get("negative_examples"), plan.max_demo_chars)
    usable = supported(record.get("definition"), positives, negatives)
    encoding, wanted = choose_encoding(plan.seed, plan.source, key, plan.superni_encodings, usable)
    if encoding is None:
        raise RecordError(
            "no_usable_encoding",
            f"the task file supports none of {list(plan.superni_encodings)} (it has "
            f"{len(positives)} usable positive and {len(negatives)} negative examples)",
        )
    record.update(demonstration_fields(encoding, positives, negatives))
    return encoding, wanted


def _own_origin(plan: RenderPlan, task: str | None) -> str:
    """The origin of a record that declares none: its source, or in a pooled source (tasks
    per record) its source's task, so one held-out task does not take every train task of
    the pool with it."""
    return f"{plan.source}/{task}" if plan.task_field is not None and task else plan.source


def _field_names(field: str | None, record: dict[str, Any], key: str) -> list[str]:
    return names(record.get(field), f"{key} {field!r}") if field is not None else []
