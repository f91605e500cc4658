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

from udfs.record_content import content as _content
from udfs.records import RecordError, source_key
from udfs.render_batches import _python_rows, decode_row

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


def item(spec: ItemSpec, row: dict[str, Any]) -> dict[str, Any]:
    """One item: ``item_id`` and ``texts``, or a ``reason`` and ``detail``."""
    try:
        record = decode_row(spec.json_text, row)
        texts = [text for name in spec.fields if (text := _content(record, [name])) is not None]
        if not texts:
            raise RecordError(
                "missing_field", f"none of the fields {list(spec.fields)} holds any text"
            )
        return {"item_id": source_key(record, spec.id_field, record), "texts": texts}
    except RecordError as exc:
        return {"reason": exc.reason, "detail": exc.detail}


def item_batches(spec: ItemSpec, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` body over a benchmark's rows."""
    for batch in batches:
        items = [item(spec, row) for row in _python_rows(batch)]
        yield pa.RecordBatch.from_pylist(items, schema=ITEM_SCHEMA)
