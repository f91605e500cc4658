"""Benchmark files -> items to decontaminate against: one row per line (or instance), with the
item's id and the texts of the configured fields, or the reason the line cannot be used.

A bad line is the line's problem (reported and counted by the caller), never the batch's.
The texts of a field are its strings (list and struct fields walked, as the renderer does),
joined by newlines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from udfs.records import RecordError, derive_key, parse_json_line
from udfs.render_batches import (
    CORRUPT_COLUMN,
    JSON_TEXT_COLUMN,
    READER_COLUMNS,
    UNDECODABLE,
    _content,
    _python_rows,
)

ITEM_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string()),
        pa.field("texts", pa.list_(pa.string())),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
    ]
)


@dataclass(frozen=True)
class ItemSpec:
    json_text: bool  # jsonl: each row is one line's bytes
    id_field: str | None
    fields: tuple[str, ...]


def _record(spec: ItemSpec, row: dict[str, Any]) -> dict[str, Any]:
    if UNDECODABLE in row:
        raise RecordError("invalid_utf8", row[UNDECODABLE])
    if spec.json_text:
        raw = row.get(JSON_TEXT_COLUMN) or b""
        return parse_json_line(raw if isinstance(raw, str) else raw.decode("utf-8"))
    if row.get(CORRUPT_COLUMN) is not None:
        raise RecordError("malformed_row", "the row does not parse with the file's columns")
    return {key: value for key, value in row.items() if key not in READER_COLUMNS}


def item(spec: ItemSpec, row: dict[str, Any]) -> dict[str, Any]:
    """One item: ``item_id`` and ``texts``, or a ``reason`` and ``detail``."""
    try:
        record = _record(spec, row)
        texts = [text for name in spec.fields if (text := _content(record, [name])) is not None]
        if not texts:
            raise RecordError(
                "missing_field", f"none of the fields {list(spec.fields)} holds any text"
            )
        if spec.id_field is None:
            item_id = derive_key(record)
        else:
            value = record.get(spec.id_field)
            if value is None or value == "" or isinstance(value, (dict, list)):
                raise RecordError("missing_id", f"id field {spec.id_field!r} is missing or empty")
            item_id = str(value)
        return {"item_id": item_id, "texts": texts}
    except UnicodeDecodeError as exc:
        return {"reason": "invalid_utf8", "detail": f"byte {exc.start} is not valid UTF-8"}
    except RecordError as exc:
        return {"reason": exc.reason, "detail": exc.detail}


def item_batches(spec: ItemSpec, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` body over a benchmark's rows."""
    for batch in batches:
        items = [item(spec, row) for row in _python_rows(batch)]
        yield pa.RecordBatch.from_pylist(items, schema=ITEM_SCHEMA)
