"""Which of a record's fields are its own text, and that text: what language ID judges, dedup
compares and decontamination checks (never the template's words or the task's examples)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from udfs.records import FIELD_SEPARATOR
from udfs.superni_demos import DEMO_FIELDS
from udfs.templating import CompiledTemplate

if TYPE_CHECKING:
    from udfs.render_plan import RenderPlan


def not_content(plan: RenderPlan) -> set[str | None]:
    """Fields a template may read that are not the record's text: its id and language codes."""
    return {
        *DEMO_FIELDS,
        plan.id_field,
        plan.language_field,
        plan.target_language_field,
        plan.task_field,
        plan.categories_field,
        plan.origin_field,
    }


def content_fields(plan: RenderPlan, template: CompiledTemplate) -> tuple[list[str], list[str]]:
    """(fields in the record's language, fields in the target language) that the template
    reads; ids and language codes are not content."""
    fields = sorted(template.fields - not_content(plan))
    target = set(plan.target_fields)
    return [f for f in fields if f not in target], [f for f in fields if f in target]


def dedup_fields(plan: RenderPlan, templates: list[CompiledTemplate]) -> list[str]:
    """One list for the whole source, so that rows of one record rendered by different
    templates compare the same text, and records that only share a template share nothing."""
    if plan.dedup_fields:
        return list(plan.dedup_fields)
    return sorted(set().union(*(template.fields for template in templates)) - not_content(plan))


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


def content(record: dict[str, Any], fields: list[str]) -> str | None:
    """The record's own text in those fields, nested ones included."""
    parts = [part for name in fields for part in _strings(record.get(name)) if part.strip()]
    return "\n".join(parts) or None


def dedup_content(record: dict[str, Any], fields: list[str]) -> str | None:
    """:func:`content`, with the fields told apart by FIELD_SEPARATOR (dedup compares them
    one by one); the parts of one list field stay joined by newlines."""
    texts = [content(record, [name]) for name in fields]
    return FIELD_SEPARATOR.join(text for text in texts if text is not None) or None
