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
COMMON = ("Zyyy", "Zinh", "Zzzz")


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
    letters = np.fromiter(
        (unicodedata.category(chr(cp))[0] in "LM" for cp in range(0x110000)),
        dtype=bool,
        count=0x110000,
    )
    table[~letters] = NOT_A_LETTER
    return table, names


def _script_ids(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(length of each text in code points, the script index of every code point in turn)."""
    table, _ = _tables()
    lengths = np.array([len(text) for text in texts], dtype=np.int64)
    code_points = np.frombuffer(
        "".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32
    )
    return lengths, table[code_points]


def letter_counts(texts: Sequence[str]) -> np.ndarray:
    """Per text, the number of letters (cheaper than :func:`letters_and_scripts`)."""
    lengths, script_ids = _script_ids(texts)
    running = np.zeros(len(script_ids) + 1, dtype=np.int64)
    np.cumsum(script_ids != NOT_A_LETTER, out=running[1:])
    ends = np.cumsum(lengths)
    return running[ends] - running[ends - lengths]


def letters_and_scripts(texts: Sequence[str]) -> tuple[np.ndarray, list[str | None]]:
    """Per text: the number of letters, and its dominant script (None without letters)."""
    _, names = _tables()
    lengths, script_ids = _script_ids(texts)
    if not len(script_ids):
        return np.zeros(len(texts), dtype=np.int64), [None] * len(texts)
    owner = np.repeat(np.arange(len(texts)), lengths)
    counts = np.bincount(
        owner * len(names) + script_ids.astype(np.int64), minlength=len(texts) * len(names)
    )
    counts = counts.reshape(len(texts), len(names))
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
