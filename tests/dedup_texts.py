"""Texts the MinHash and shingle tests share: odd edge cases and real UD sentences."""

from __future__ import annotations

import json
import random

from tests.conftest import shared_data

ENGLISH = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "The quick brown fox jumps over the lazy dog near the river bend.",
    "Instruction tuning turns supervised datasets into prompts and answers.",
    "A completely different sentence about Spark, Arrow and numpy arrays, with 42 numbers.",
    "one two three four five six seven eight nine ten eleven twelve",
]
ODD = [
    None,
    "",
    "   \t\n ",
    "word",
    "two words",
    "exactly five words right here",
    "Ｆｕｌｌ－ｗｉｄｔｈ　ＬＥＴＴＥＲＳ and ﬁne ligatures",
    "  MiXeD\u00a0case\u2003and\n\n odd\twhitespace \u3000everywhere  ",
    "Straße STRASSE straße",
    "İstanbul ΣΊΣΥΦΟΣ",
    "emoji 🙂🙂 and \x00 control \x1f chars",
    "日本",
    "短い",
    "ไทย",
    "12345 67890",
]


def ud_texts(limit: int | None = None) -> dict[str, list[str]]:
    """Real sentences of the 24 UD languages, by language code."""
    texts = {}
    for path in sorted(shared_data("ud").glob("*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            texts[path.stem] = [json.loads(line)["text"] for line in lines][:limit]
    return texts


def documents(sentences: list[str], count: int, seed: int) -> list[str]:
    """Paragraph-sized texts of a few consecutive sentences each."""
    rng = random.Random(seed)
    result = []
    for _ in range(count):
        start = rng.randrange(len(sentences))
        result.append(" ".join(sentences[start : start + rng.randint(1, 6)]))
    return result
