"""What every few-shot row of a build must satisfy, read from the build's output: its
exemplars are other written train records of its source, never itself, a held-out, rejected
or duplicate record. A record is recognised in a row's text by a marker, a string only that
record's text holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def exemplar_keys(row: Mapping[str, Any], markers: Mapping[str, str]) -> set[str]:
    """The records whose marker a row's instruction holds, its own record aside."""
    return {
        key
        for key, marker in markers.items()
        if key != row["source_key"] and marker in row["instruction"]
    }


def check_few_shot_rows(
    written: list[Mapping[str, Any]], markers: Mapping[str, str], k: int, listed: bool = True
) -> dict[str, int]:
    """Assert the rules on every few-shot row of one source; ``markers`` covers every record
    of that source (written or not); ``listed``: its templates leave the options to the
    format (false: their prompts list them, so no OPTIONS block appears). Returns counts for
    the caller's report."""
    train = {row["source_key"] for row in written if row["split"] == "train"}
    by_template: dict[str, set[str]] = {}
    for row in written:
        if row["split"] == "train":
            by_template.setdefault(row["template_id"], set()).add(row["source_key"])
    rows = [row for row in written if row["template_format"] in ("fsopt", "fsnoopt")]
    assert rows, "the build wrote no few-shot row"
    shown = 0
    for row in rows:
        own = markers[row["source_key"]]
        assert row["instruction"].count(own) == 1, f"{row['id']} shows its own record"
        found = exemplar_keys(row, markers)
        assert found <= train, f"{row['id']} shows records not written to train: {found - train}"
        # Exemplars are records of the row's own template: k, or all there are.
        assert found <= by_template.get(row["template_id"], set()), (
            f"{row['id']}: another template's"
        )
        expected = min(k, len(by_template.get(row["template_id"], set()) - {row["source_key"]}))
        assert len(found) == expected, f"{row['id']} shows {len(found)} exemplars, not {expected}"
        assert row["instruction"].count("\n\n") >= expected
        if row["template_format"] == "fsopt" and listed:
            assert row["instruction"].count("OPTIONS:") == expected + 1
        else:
            assert "OPTIONS:" not in row["instruction"]
        shown += len(found)
    return {"few_shot_rows": len(rows), "exemplars": shown}
