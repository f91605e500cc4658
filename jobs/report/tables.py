"""The report's tables of numbers, as plain rows of cells: one template macro renders them
all, and every cell names the number it holds (``data-field`` and its row's key) so the page
can be read back and checked against the manifest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.report import numbers
from jobs.report.aggregates import DataAggregates

LENGTH_MARKS = ("p5", "p25", "p50", "p75", "p95", "max")
SHARE_FIELDS = (
    "available", "target_rows", "achieved_rows", "target_share", "achieved_share", "saturated",
)  # fmt: skip
DECONTAMINATION_FIELDS = ("items", "bad_lines", "ngrams", "found_in_train", "contaminated_records")


@dataclass(frozen=True)
class Cell:
    field: str
    value: Any
    # The row's key as a data-* attribute (data-source="nli_en"), beside data-field.
    keys: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Table:
    id: str
    first: str  # the key column's header
    headers: Sequence[str]
    rows: list[tuple[str, list[Cell | None]]] = field(default_factory=list)


def headline_table(manifest: Mapping[str, Any], data: DataAggregates | None) -> Table:
    found = numbers.headline(manifest)
    if data is not None:
        found.append(("data.rows", "rows in data/", data.rows))
        for key, what in (("source", "sources"), ("language", "languages"),
                          ("script", "scripts"), ("task_cluster", "task_clusters")):  # fmt: skip
            distinct = len(data.counts_of(key))
            found.append((f"data.{what}", f"{what.replace('_', ' ')} in data/", distinct))
    rows = [(name, [Cell(path, value)]) for path, name, value in found]
    return Table("totals", "number", ("value",), rows)


def source_table(manifest: Mapping[str, Any]) -> Table | None:
    fields, counts = numbers.source_table(manifest)
    if not counts:
        return None
    rows: list[tuple[str, list[Cell | None]]] = [
        (
            name,
            [Cell(f, entry[f], (("source", name),)) if f in entry else None for f in fields],
        )
        for name, entry in counts.items()
    ]
    return Table("source-counts", "source", fields, rows)


def language_table(data: DataAggregates | None) -> Table | None:
    if data is None or not data.rows:
        return None
    ordered = sorted(data.counts_of("language").items(), key=lambda kv: (-kv[1], kv[0]))
    rows: list[tuple[str, list[Cell | None]]] = [
        (name, [Cell("data.language_rows", count, (("language", name),))])
        for name, count in ordered
    ]
    return Table("language-counts", "language", ("rows",), rows)


def length_table(data: DataAggregates | None) -> Table | None:
    if data is None or not data.rows:
        return None
    rows: list[tuple[str, list[Cell | None]]] = [
        (
            name,
            [
                Cell(f"data.length.{name}.{mark}", stats.percentiles.get(mark))
                for mark in LENGTH_MARKS
            ],
        )
        for name, stats in data.lengths.items()
    ]
    return Table("length-percentiles", "characters", LENGTH_MARKS, rows)


def share_tables(manifest: Mapping[str, Any]) -> list[Table]:
    """A mixture's target vs achieved rows and shares, per group and per language."""
    found = []
    for name, entries in numbers.share_tables(manifest).items():
        key = name[:-1]  # "groups": each row's "group"
        rows: list[tuple[str, list[Cell | None]]] = [
            (
                str(entry.get(key)),
                [Cell(f, entry.get(f), ((key, str(entry.get(key))),)) for f in SHARE_FIELDS],
            )
            for entry in entries
        ]
        found.append(Table(f"mixture-{name}", key, SHARE_FIELDS, rows))
    return found


def decontamination_table(manifest: Mapping[str, Any]) -> Table | None:
    sets = numbers.decontamination_sets(manifest)
    if not sets:
        return None
    rows: list[tuple[str, list[Cell | None]]] = [
        (
            name,
            [
                Cell(f"decontamination.sets.{f}", entry.get(f), (("set", name),))
                for f in DECONTAMINATION_FIELDS
            ],
        )
        for name, entry in sets.items()
    ]
    return Table("decontamination", "reference set", DECONTAMINATION_FIELDS, rows)
