"""The render stage's output rows as Arrow batches that cannot fail the job.

An Arrow ``string`` array addresses its bytes with 32-bit offsets: one column of one batch holds
at most 2 GiB, and ``RecordBatch.from_pydict`` past that builds a ChunkedArray and fails with
``TypeError: Cannot convert pyarrow.lib.ChunkedArray to pyarrow.lib.Array``, outside every
per-record guard. So a batch is closed once its rows' text passes :data:`OUTPUT_CHAR_BUDGET`
(characters of every string column together: at most 4 UTF-8 bytes each, so no column nears
2 GiB), and a batch that still does not build is rebuilt row by row, a row that does not build
alone becoming a reject that does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from udfs.records import safe_text

RENDER_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_key", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("template_id", pa.string(), nullable=False),
        pa.field("template_hash", pa.string(), nullable=False),
        pa.field("language", pa.string()),
        pa.field("target_language", pa.string()),
        pa.field("instruction", pa.string()),
        pa.field("response", pa.string()),
        pa.field("content", pa.string()),
        pa.field("target_content", pa.string()),
        # The record's own text that dedup compares: the same for every row of one record.
        pa.field("dedup_text", pa.string()),
        pa.field("task", pa.string()),
        # The record's own category names (through a crosswalk to a task cluster) and the
        # datasets it derives from (for held-out same-source exclusion).
        pa.field("categories", pa.list_(pa.string())),
        pa.field("origins", pa.list_(pa.string())),
        # The row's FLAN format (zsopt, zsnoopt, fsopt, fsnoopt) or SuperNI encoding; the
        # FLAN option list (few-shot exemplars show it); the SuperNI encoding the record's
        # hash picked when its task file could not support it.
        pa.field("template_format", pa.string()),
        pa.field("answer_options", pa.string()),
        pa.field("format_fallback", pa.string()),
        # The SuperNI examples a row shows, fields apart: decontamination checks them too.
        pa.field("demo_text", pa.string()),
        # Set on rejects only.
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("record", pa.string()),
        pa.field("source_file", pa.string()),
    ]
)
OUTPUT_CHAR_BUDGET = 256 * 2**20
# What a row keeps when even it alone does not build: who it is, and why it is a reject.
_IDENTITY = ("source", "source_key", "id", "template_id", "template_hash", "language", "task")
_BUILD_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError, MemoryError)


def row_chars(row: dict[str, Any]) -> int:
    return sum(len(value) for value in row.values() if type(value) is str)


def _batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    columns = {name: [row.get(name) for row in rows] for name in RENDER_SCHEMA.names}
    return pa.RecordBatch.from_pydict(columns, schema=RENDER_SCHEMA)


def _unbuildable(row: dict[str, Any], exc: Exception) -> dict[str, Any]:
    chars = row_chars(row)
    reason, detail = (
        ("render_too_large", f"the row's text ({chars:,} characters) passes what Arrow holds")
        if chars > OUTPUT_CHAR_BUDGET
        else ("internal_error", f"the row does not convert to Arrow: {type(exc).__name__}: {exc}")
    )
    kept = {name: row.get(name) for name in _IDENTITY}
    kept["source_key"] = safe_text(str(kept["source_key"]))[:OUTPUT_CHAR_BUDGET]
    return {**kept, "reason": reason, "detail": safe_text(detail[:500])}


def _built(rows: list[dict[str, Any]]) -> list[pa.RecordBatch]:
    try:
        return [_batch(rows)]
    except _BUILD_ERRORS as exc:
        if len(rows) > 1:
            return [batch for row in rows for batch in _built([row])]
        return [_batch([_unbuildable(rows[0], exc)])]


def output_batches(
    rows: Iterable[dict[str, Any]], char_budget: int = OUTPUT_CHAR_BUDGET
) -> Iterator[pa.RecordBatch]:
    """The rows in order, in as few batches as ``char_budget`` allows (one, normally; always
    at least one, empty for no rows)."""
    pending: list[dict[str, Any]] = []
    chars = 0
    made = False
    for row in rows:
        size = row_chars(row)
        if pending and chars + size > char_budget:
            yield from _built(pending)
            made = True
            pending, chars = [], 0
        pending.append(row)
        chars += size
    if pending or not made:
        yield from _built(pending)
