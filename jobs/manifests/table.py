"""The one text-table formatter of the summaries commands print."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def _cell(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def format_table(
    headers: Sequence[str], body: Iterable[Sequence[Any]], footer: Sequence[Any] | None = None
) -> str:
    """Columns padded to their widest cell: the first and last left-aligned, the rest (numbers)
    right-aligned; integers with thousands separators. A footer row (totals) stands below a
    second rule."""
    rows = [[_cell(value) for value in row] for row in body]
    total = [_cell(value) for value in footer] if footer is not None else None
    cells = [list(headers), *rows, *([total] if total else [])]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i in (0, len(row) - 1) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    lines = [line(cells[0]), rule, *map(line, rows)]
    if total is not None:
        lines += [rule, line(total)]
    return "\n".join(lines)
