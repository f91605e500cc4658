"""Inverted translation pairs (xP3x writes both directions): the record with each source field
and its target field swapped, and its two languages swapped, rendered with the same template
under a template id of its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

INVERTED_SUFFIX = "#inverted"


def inverted_id(template_id: str) -> str:
    return template_id + INVERTED_SUFFIX


def inverted_record(
    record: dict[str, Any],
    pairs: Sequence[tuple[str, str]],
    language_fields: tuple[str | None, str | None],
) -> dict[str, Any]:
    """The record read the other way: each (source field, target field) pair and the two
    language fields (when the languages are record fields) exchange their values."""
    swapped = dict(record)
    language, target = language_fields
    for left, right in [*pairs, *([(language, target)] if language and target else [])]:
        swapped[left], swapped[right] = record.get(right), record.get(left)
    return swapped
