"""Build data/samples/qa_es_de.parquet from data/samples/src/qa_es_de.json.

The JSON source groups questions by article (title + context).  This script
flattens it into one SQuAD-style row per question:

    id, lang, title, context, question,
    answers: struct<text: list<string>, answer_start: list<int32>>

`answer_start` is computed here as the character (code point) offset of the
answer text inside the context, and checked: every answer must occur exactly
once in its context, so the offset is unambiguous.  A question whose answer is
null gets empty `text`/`answer_start` lists (SQuAD v2 style "unanswerable");
the sample data contains exactly one such row on purpose (see README.md).

Usage (from the repository root):

    .venv/bin/python data/samples/make_parquet.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
SRC = HERE / "src" / "qa_es_de.json"
OUT = HERE / "qa_es_de.parquet"

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("lang", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("context", pa.string(), nullable=False),
        pa.field("question", pa.string(), nullable=False),
        pa.field(
            "answers",
            pa.struct(
                [
                    pa.field("text", pa.list_(pa.string())),
                    pa.field("answer_start", pa.list_(pa.int32())),
                ]
            ),
        ),
    ]
)


def flatten(source: dict) -> list[dict]:
    rows = []
    seen_ids = set()
    for article in source["articles"]:
        context = article["context"]
        for qa in article["questions"]:
            qid = qa["id"]
            assert qid not in seen_ids, f"duplicate id {qid}"
            seen_ids.add(qid)
            answer = qa["answer"]
            if answer is None:
                answers = {"text": [], "answer_start": []}
            else:
                count = context.count(answer)
                assert count == 1, f"{qid}: answer {answer!r} occurs {count} times in context"
                start = context.index(answer)
                assert context[start : start + len(answer)] == answer
                answers = {"text": [answer], "answer_start": [start]}
            rows.append(
                {
                    "id": qid,
                    "lang": article["lang"],
                    "title": article["title"],
                    "context": context,
                    "question": qa["question"],
                    "answers": answers,
                }
            )
    return rows


def main() -> None:
    source = json.loads(SRC.read_text(encoding="utf-8"))
    rows = flatten(source)
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    pq.write_table(table, OUT)

    # Round-trip check: offsets read back from the file still point at the answers.
    back = pq.read_table(OUT).to_pylist()
    assert len(back) == len(rows)
    for row in back:
        for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"]):
            assert row["context"][start : start + len(text)] == text, row["id"]
    print(f"wrote {OUT.relative_to(HERE.parent.parent)}: {len(back)} rows")


if __name__ == "__main__":
    main()
