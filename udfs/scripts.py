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

import numpy as np
from fontTools.unicodedata import Scripts

NOT_A_LETTER = 0
# Planes 4-13 hold no characters and planes 15-16 only private use: no letters, nothing that
# normalisation changes. Tables built per code point skip them.
ASSIGNED_PLANES = (range(0, 0x40000), range(0xE0000, 0xF0000))
COMMON = ("Zyyy", "Zinh", "Zzzz")


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


# (length of each text in code points, all their code points in one array)
Encoded = tuple[np.ndarray, np.ndarray]


def encode(texts: Sequence[str]) -> Encoded:
    """One UTF-32 encode for the whole batch."""
    lengths = np.array([len(text) for text in texts], dtype=np.int64)
    code_points = np.frombuffer(
        "".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32
    )
    return lengths, code_points


def letter_counts(texts: Sequence[str]) -> np.ndarray:
    """Per text, the number of letters (cheaper than :func:`letters_and_scripts`)."""
    lengths, code_points = encode(texts)
    table, _ = _tables()
    running = np.zeros(len(code_points) + 1, dtype=np.int64)
    np.cumsum(table[code_points] != NOT_A_LETTER, out=running[1:])
    ends = np.cumsum(lengths)
    return running[ends] - running[ends - lengths]


def letters_and_scripts(texts: Sequence[str]) -> tuple[np.ndarray, list[str | None]]:
    """Per text: the number of letters, and its dominant script (None without letters)."""
    return count_letters_and_scripts(encode(texts))


def count_letters_and_scripts(encoded: Encoded) -> tuple[np.ndarray, list[str | None]]:
    """:func:`letters_and_scripts` of texts already encoded."""
    lengths, code_points = encoded
    size = len(lengths)
    table, names = _tables()
    script_ids = table[code_points]
    if not len(script_ids):
        return np.zeros(size, dtype=np.int64), [None] * size
    owner = np.repeat(np.arange(size), lengths)
    counts = np.bincount(
        owner * len(names) + script_ids.astype(np.int64), minlength=size * len(names)
    )
    counts = counts.reshape(size, len(names))
    letters = counts.sum(axis=1) - counts[:, NOT_A_LETTER]
    dominant = np.array(names, dtype=object)[np.argmax(counts[:, 1:], axis=1) + 1]
    # ISO 15924's combined codes, for text written mainly in East Asian scripts: kana with
    # (or without) Han is Japanese, hangul with Han is Korean. An English sentence quoting one
    # Korean name stays Latn.
    column = {name: i for i, name in enumerate(names)}
    kana = counts[:, column["Hira"]] + counts[:, column["Kana"]]
    east_asian = np.isin(dominant, ["Hani", "Hira", "Kana", "Hang"])
    # A tenth of the letters: Chinese quoting one の stays Hani.
    japanese = east_asian & (kana * 10 >= letters) & (kana > 0)
    korean = east_asian & ~japanese & (counts[:, column["Hang"]] * 10 >= letters)
    korean &= counts[:, column["Hang"]] > 0
    dominant[japanese] = "Jpan"
    dominant[korean] = "Kore"
    dominant[letters == 0] = None
    return letters, dominant.tolist()
