"""Super-NaturalInstructions demonstrations, in the encodings of the SuperNI paper (Wang et
al. 2022, "Super-NaturalInstructions", section 6) and Tk-Instruct: the task definition alone;
the definition and two positive examples; those and two negative examples, each with its
explanation; or two positive examples alone.

A record's encoding is chosen by a hash of (seed, source, record key) among the source's
encodings. A task file whose examples are missing, malformed or longer than ``max_demo_chars``
cannot support some encodings: its records fall back, by the same hash, to an encoding it
does support, and the fallback is recorded so the manifest counts it. The demonstrations reach
the template as two extra fields, ``demonstrations`` and ``show_definition`` (the record's own
text is unchanged, so dedup and language ID judge the instance, not the task's examples)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from udfs.records import FIELD_SEPARATOR, hash64

DEFINITION = "definition"
DEFINITION_POS2 = "definition_pos2"
DEFINITION_POS2_NEG2 = "definition_pos2_neg2_explanation"
POS2 = "pos2"
ENCODINGS = (DEFINITION, DEFINITION_POS2, DEFINITION_POS2_NEG2, POS2)
DEMONSTRATIONS_FIELD = "demonstrations"
SHOW_DEFINITION_FIELD = "show_definition"
# The shown examples' own texts, fields apart: what decontamination checks (not dedup).
DEMO_TEXTS_FIELD = "demonstration_texts"
DEMO_FIELDS = (DEMONSTRATIONS_FIELD, SHOW_DEFINITION_FIELD, DEMO_TEXTS_FIELD)
_EXAMPLES = 2


@dataclass(frozen=True)
class Example:
    input: str
    output: str
    explanation: str | None


def _example(item: Any, max_chars: int) -> Example | None:
    """A usable example: text input and output (an output list gives its first item), within
    the bound; anything else is skipped."""
    if not isinstance(item, dict):
        return None
    text, output, why = item.get("input"), item.get("output"), item.get("explanation")
    if isinstance(output, list) and output:
        output = output[0]
    if not isinstance(text, str) or not isinstance(output, str):
        return None
    if not text.strip() or not output.strip():
        return None
    explanation = why.strip() if isinstance(why, str) and why.strip() else None
    if len(text) + len(output) + len(explanation or "") > max_chars:
        return None
    return Example(text.strip(), output.strip(), explanation)


@lru_cache(maxsize=256)
def parse_examples(raw: str | None, max_chars: int) -> tuple[Example, ...]:
    """A task file's example list (its JSON text, as the reader keeps it), usable ones only.
    Cached: every instance of a task carries the same text."""
    if not raw:
        return ()
    try:
        items = json.loads(raw)
    except ValueError:
        return ()
    if not isinstance(items, list):
        return ()
    found = (_example(item, max_chars) for item in items)
    return tuple(example for example in found if example is not None)


def supported(
    definition: str | None, positives: Sequence[Example], negatives: Sequence[Example]
) -> set[str]:
    has_definition = bool(definition and definition.strip())
    explained = [example for example in positives if example.explanation]
    negative = [example for example in negatives if example.explanation]
    found = set()
    if has_definition:
        found.add(DEFINITION)
        if len(positives) >= _EXAMPLES:
            found.add(DEFINITION_POS2)
        if len(explained) >= _EXAMPLES and len(negative) >= _EXAMPLES:
            found.add(DEFINITION_POS2_NEG2)
    if len(positives) >= _EXAMPLES:
        found.add(POS2)
    return found


def choose_encoding(
    seed: int, source: str, key: str, encodings: Sequence[str], usable: set[str]
) -> tuple[str | None, str]:
    """(the encoding used, None when no configured one is usable; the one the hash wanted)."""
    pick = hash64(str(seed), source, key, "superni")
    wanted = encodings[pick % len(encodings)]
    if wanted in usable:
        return wanted, wanted
    left = [encoding for encoding in encodings if encoding in usable]
    return (left[pick % len(left)] if left else None), wanted


def _block(kind: str, index: int, example: Example, explain: bool) -> str:
    lines = [f"{kind} Example {index} -", f"Input: {example.input}", f"Output: {example.output}"]
    if explain and example.explanation:
        lines.append(f"Explanation: {example.explanation}")
    return "\n".join(lines)


def demonstration_fields(
    encoding: str, positives: Sequence[Example], negatives: Sequence[Example]
) -> dict[str, Any]:
    """The two fields the SuperNI template reads for ``encoding``."""
    explain = encoding == DEFINITION_POS2_NEG2
    pos = positives
    if explain:
        pos = [example for example in positives if example.explanation]
    shown = [("Positive", e) for e in pos[:_EXAMPLES]] if encoding != DEFINITION else []
    if explain:
        neg = [example for example in negatives if example.explanation][:_EXAMPLES]
        shown += [("Negative", e) for e in neg]
    numbers: dict[str, int] = {}
    blocks = []
    for kind, example in shown:
        numbers[kind] = numbers.get(kind, 0) + 1
        blocks.append(_block(kind, numbers[kind], example, explain))
    texts = [
        text
        for _, example in shown
        for text in (example.input, example.output, example.explanation if explain else None)
        if text
    ]
    return {
        DEMONSTRATIONS_FIELD: "\n\n".join(blocks),
        SHOW_DEFINITION_FIELD: encoding != POS2,
        DEMO_TEXTS_FIELD: FIELD_SEPARATOR.join(texts) or None,
    }
