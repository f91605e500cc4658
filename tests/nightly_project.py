"""A small project for the nightly-load tests: one JSONL source whose file a test rewrites
between loads, as a nightly export would be, and its pipeline conf."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

WORDS = (
    "river mountain quiet market ancient bridge winter harvest silver lantern garden "
    "teacher letter engine window forest island candle shadow morning journey village "
    "painter kitchen thunder meadow harbor library mirror orchard pocket saddle tower "
    "valley whisper yellow basket cotton desert feather glacier hollow ivory jungle "
    "kettle ladder marble needle ocean pepper quartz ribbon stable timber velvet wagon"
).split()


def text(seed: int, words: int = 30) -> str:
    chooser = random.Random(seed)
    return " ".join(chooser.choice(WORDS) for _ in range(words)).capitalize() + "."


def record(key: str, seed: int) -> dict[str, str]:
    return {"id": key, "text": text(seed), "summary": text(seed + 10_000, 8)}


def with_typo(row: dict[str, str], key: str) -> dict[str, str]:
    """The same record with one word changed: a near-duplicate."""
    words = row["text"].split()
    words[3] = "zebra"
    return {**row, "id": key, "text": " ".join(words)}


def write_records(root: Path, rows: list[dict[str, str]]) -> None:
    path = root / "in" / "notes.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def make_project(root: Path, rows: list[dict[str, str]], extra: str = "") -> Path:
    write_records(root, rows)
    files = {
        "templates/summary.jinja": "{{ text }}\nSum it up in a line. ||| {{ summary }}\n",
        "conf/datasets/notes.yaml": (
            "name: notes\npath: ../../in/notes.jsonl\nformat: jsonl\nid_field: id\n"
            "language: en\ntask: summarization\ntask_cluster: summarization\nlicense: MIT\n"
            "templates: [../../templates/summary.jinja]\n"
        ),
        "conf/pipeline.yaml": f"sources: [datasets/*.yaml]\noutput: ../out\nseed: 3\n{extra}",
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root / "conf" / "pipeline.yaml"


def rows_of(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return ds.dataset(path, format="parquet", partitioning="hive").to_table().to_pylist()


def content(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows without the run that wrote them, in a stable order: what two runs must share."""
    return sorted(
        tuple((key, str(value)) for key, value in sorted(row.items()) if key != "run_id")
        for row in rows
    )
