"""Letters and writing systems of whole batches of texts, vectorised with numpy.

One lookup table per process maps every code point to the ISO 15924 script of a letter (0 for
anything that is not a letter), built from the Unicode Scripts data that fontTools ships. A
batch is then one UTF-32 encode, one table lookup and one ``bincount``: no Python loop over
characters.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fontTools.unicodedata import Scripts

NOT_A_LETTER = 0
# Planes 4-13 hold no characters and planes 15-16 only private use: no letters, nothing that
# normalisation changes. Tables built per code point skip them.
ASSIGNED_PLANES = (range(0, 0x40000), range(0xE0000, 0xF0000))
COMMON = ("Zyyy", "Zinh", "Zzzz")
EAST_ASIAN = ("Hani", "Hira", "Kana", "Hang")


def script_table() -> np.ndarray:
    """Code point -> script index of letters and marks, NOT_A_LETTER for anything else."""
    return _tables()[0]


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, tuple[str, ...]]:
    """(code point -> script index for letters, index -> ISO 15924 code); once per process."""
    names = tuple(["", *sorted(set(Scripts.VALUES) - set(COMMON))])
    index = {name: i for i, name in enumerate(names)}
    table = np.zeros(0x110000, dtype=np.uint8)
    bounds = [*Scripts.RANGES, 0x110000]
    for start, end, script in zip(bounds, bounds[1:], Scripts.VALUES, strict=False):
        table[start:end] = index.get(script, NOT_A_LETTER)
    # Keep letters (L*) and combining marks (M*, the vowel signs of Indic scripts) only.
    letters = np.zeros(0x110000, dtype=bool)
    for plane in ASSIGNED_PLANES:
        letters[plane.start : plane.stop] = np.fromiter(
            (unicodedata.category(chr(cp))[0] in "LM" for cp in plane), dtype=bool
        )
    table[~letters] = NOT_A_LETTER
    return table, names


class Encoded(NamedTuple):
    """A batch of texts as code points: one array for all, and where each text ends."""

    lengths: np.ndarray  # code points per text
    code_points: np.ndarray  # uint32, the texts one after another
    joined: str  # the same texts as one string (str.find scans it at C speed)


def encode(texts: Sequence[str]) -> Encoded:
    """One UTF-32 encode for the whole batch."""
    joined = "".join(texts)
    lengths = np.array([len(text) for text in texts], dtype=np.int64)
    code_points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return Encoded(lengths, code_points, joined)


def encode_array(texts: pa.Array) -> Encoded:
    """:func:`encode` of an Arrow string array (nulls count as empty texts) straight from its
    UTF-8 buffer: no Python string per text. Raises UnicodeDecodeError on invalid UTF-8,
    which Arrow does not check when it receives a batch."""
    texts = texts.cast(pa.large_string())
    if texts.null_count:
        texts = texts.fill_null("")
    size = len(texts)
    if size == 0:
        return Encoded(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint32), "")
    _, offsets_buffer, data = texts.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[texts.offset : texts.offset + size + 1]
    joined = str(memoryview(data)[offsets[0] : offsets[-1]], "utf-8") if data else ""
    lengths = pc.utf8_length(texts).to_numpy().astype(np.int64, copy=False)
    code_points = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    return Encoded(lengths, code_points, joined)


def letter_counts(texts: Sequence[str]) -> np.ndarray:
    """Per text, the number of letters (cheaper than :func:`letters_and_scripts`)."""
    lengths, code_points, _ = encode(texts)
    table, _ = _tables()
    running = np.zeros(len(code_points) + 1, dtype=np.int64)
    np.cumsum(table[code_points] != NOT_A_LETTER, out=running[1:])
    ends = np.cumsum(lengths)
    return running[ends] - running[ends - lengths]


def letters_and_scripts(texts: Sequence[str]) -> tuple[np.ndarray, list[str | None]]:
    """Per text: the number of letters, and its dominant script (None without letters)."""
    lengths, code_points, _ = encode(texts)
    return count_letters_and_scripts(lengths, code_points)


def count_letters_and_scripts(
    lengths: np.ndarray, code_points: np.ndarray
) -> tuple[np.ndarray, list[str | None]]:
    """:func:`letters_and_scripts` of texts already encoded."""
    size = len(lengths)
    table, names = _tables()
    script_ids = np.take(table, code_points)
    # Counted per text over the scripts the batch uses (a handful), not all of Unicode's.
    seen = np.zeros(len(names), dtype=bool)
    seen[script_ids] = True
    seen[NOT_A_LETTER] = False
    used = np.flatnonzero(seen)
    if not len(used):
        return np.zeros(size, dtype=np.int64), [None] * size
    compact = np.zeros(len(names), dtype=np.int64)
    compact[used] = np.arange(len(used))
    letter_at = np.flatnonzero(script_ids != NOT_A_LETTER)
    owner = np.repeat(np.arange(size), lengths)[letter_at]
    counts = np.bincount(
        owner * len(used) + compact[script_ids[letter_at]], minlength=size * len(used)
    ).reshape(size, len(used))
    letters = counts.sum(axis=1)
    leading = np.argmax(counts, axis=1)
    dominant = np.array(names, dtype=object)[used][leading]

    def count(name: str) -> np.ndarray:
        found = np.flatnonzero(used == names.index(name))
        return counts[:, found[0]] if len(found) else np.zeros(size, dtype=np.int64)

    # ISO 15924's combined codes, for text written mainly in East Asian scripts: kana with
    # (or without) Han is Japanese, hangul with Han is Korean. An English sentence quoting one
    # Korean name stays Latn.
    kana = count("Hira") + count("Kana")
    east_asian = np.isin(used, [names.index(name) for name in EAST_ASIAN])[leading]
    # A tenth of the letters: Chinese quoting one の stays Hani.
    japanese = east_asian & (kana * 10 >= letters) & (kana > 0)
    korean = east_asian & ~japanese & (count("Hang") * 10 >= letters)
    korean &= count("Hang") > 0
    dominant[japanese] = "Jpan"
    dominant[korean] = "Kore"
    dominant[letters == 0] = None
    return letters, dominant.tolist()
