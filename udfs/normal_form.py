"""The form texts take before language ID, and a vectorised test for texts already in it.

Nearly every text is already clean (NFC, words separated by single ASCII spaces), so the
per-text Python normalisation is only run where a numpy pass over the batch's code points says
it could change something. The test is Unicode's NFC quick check (UAX #15) plus the
whitespace rules, done with lookup tables: it never calls a text clean that is not.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import numpy as np

SPACE_CODE_POINT = 0x20
# Conjoining jamo vowels and trailing consonants compose with the syllable before them by
# Unicode's algorithm, not by a decomposition in the data, so no table lookup finds them.
HANGUL_COMBINING_JAMO = ((0x1161, 0x1176), (0x11A8, 0x11C3))


def normalise(text: str) -> str:
    """NFC (decomposed accents and Hangul jamo are another text to fastText) and every run of
    Unicode whitespace as one space (fastText refuses ``\n`` and does not split on NBSP).
    Text that is already clean, like the model's training data, comes through unchanged."""
    return " ".join(unicodedata.normalize("NFC", text).split())


# Bits of the per-code-point property table.
LETTER = 1  # a letter or combining mark, as :mod:`udfs.scripts` counts them
SUSPECT = 2  # makes a text unclean on its own: whitespace other than a space, NFC_QC=No
MAYBE = 4  # NFC_QC=Maybe: unclean only if it composes with what precedes it
SPACE = 8  # U+0020
MARK = 16  # canonical combining class above 0: order matters


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(code point -> property bits, code point -> canonical combining class, the sorted keys
    ``first * 0x110000 + second`` of every pair that NFC composes)."""
    from udfs.scripts import ASSIGNED_PLANES, NOT_A_LETTER, script_table

    properties = np.where(script_table() != NOT_A_LETTER, LETTER, 0).astype(np.uint8)
    combining_class = np.zeros(0x110000, dtype=np.uint8)
    pairs = []
    for cp in (cp for plane in ASSIGNED_PLANES for cp in plane):
        if 0xD800 <= cp < 0xE000:
            continue
        char = chr(cp)
        if cp != SPACE_CODE_POINT and char.isspace():
            properties[cp] |= SUSPECT
        combining_class[cp] = unicodedata.combining(char)
        decomposition = unicodedata.decomposition(char)
        if not decomposition:
            continue
        if unicodedata.normalize("NFC", char) != char:
            properties[cp] |= SUSPECT  # never appears in NFC
        elif not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2:  # a primary composite
                first, second = (int(part, 16) for part in parts)
                properties[second] |= MAYBE
                pairs.append(first * 0x110000 + second)
    # Conjoining jamo compose by Unicode's algorithm, not by a decomposition in the data.
    for start, end in HANGUL_COMBINING_JAMO:
        properties[start:end] |= SUSPECT
    properties[0xD800:0xE000] |= SUSPECT
    properties[SPACE_CODE_POINT] |= SPACE
    properties[combining_class > 0] |= MARK
    return properties, combining_class, np.array(sorted(pairs), dtype=np.int64)


def _within(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """``np.isin`` for keys already sorted: a binary search, without hashing the keys."""
    if not len(sorted_keys):
        return np.zeros(len(values), dtype=bool)
    found = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
    return sorted_keys[found] == values


def letters_and_unclean(
    lengths: np.ndarray, code_points: np.ndarray, joined: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per text (``lengths`` code points each, concatenated in ``code_points`` and
    ``joined``, see :func:`udfs.scripts.encode`): its number of letters, and True where
    :func:`normalise` might change it (False only where it certainly returns it unchanged).
    One table lookup serves both."""
    property_table, class_table, composing = _tables()
    size = len(lengths)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    if not len(code_points):
        return np.zeros(size, dtype=np.int64), np.zeros(size, dtype=bool)
    properties = np.take(property_table, code_points)
    running = np.zeros(len(code_points) + 1, dtype=np.int32)
    np.cumsum(properties & LETTER, out=running[1:], dtype=np.int32)
    letters = (running[ends] - running[starts]).astype(np.int64)

    # Unclean texts are rare, so the test works on the positions of the rare code points:
    # UAX #15's quick check, with its Maybe answered exactly where it is cheap to.
    # (flatnonzero of a bool array is several times faster than of the uint8 bits)
    rare = np.flatnonzero((properties & (SUSPECT | MAYBE | MARK)) != 0)
    rare_properties = properties[rare]
    suspect = rare[(rare_properties & SUSPECT) != 0]
    # Code points unclean only next to the one before them: (second of the pair) positions.
    paired = [rare[:0]]
    marks = rare[(rare_properties & MARK) != 0]
    if len(marks) > 1:
        after = marks[1:][marks[1:] == marks[:-1] + 1]
        classes = class_table[code_points[after]]
        paired.append(after[class_table[code_points[after - 1]] > classes])  # out of order
    maybe = rare[(rare_properties & MAYBE) != 0]
    maybe = maybe[maybe > 0]
    if len(maybe):
        before = code_points[maybe - 1].astype(np.int64)
        # After a starter it composes only with that starter; after a mark it might with a
        # starter further back, which is left to the exact check.
        composes = _within(before * 0x110000 + code_points[maybe], composing)
        paired.append(maybe[composes | (class_table[before] > 0)])
    pairs = np.concatenate(paired)
    # A pair that straddles two texts says nothing about either.
    pairs = pairs[~_within(pairs, starts)]
    unclean = np.zeros(size, dtype=bool)
    unclean[np.searchsorted(ends, np.concatenate([suspect, pairs]), side="right")] = True
    # Two spaces in a row (most batches have none, which one C scan of the text tells):
    # where they straddle two texts, one ends and the other starts with a space, which
    # makes both unclean anyway.
    if "  " in joined:
        space = code_points == SPACE_CODE_POINT
        second = np.flatnonzero(space[1:] & space[:-1]) + 1
        unclean[np.searchsorted(ends, np.concatenate([second - 1, second]), side="right")] = True
    present = lengths > 0
    edges = code_points[np.concatenate([starts[present], ends[present] - 1])]
    unclean[present] |= (edges[: present.sum()] == SPACE_CODE_POINT) | (
        edges[present.sum() :] == SPACE_CODE_POINT
    )
    return letters, unclean


def needs_normalising(lengths: np.ndarray, code_points: np.ndarray, joined: str) -> np.ndarray:
    """The second half of :func:`letters_and_unclean`."""
    return letters_and_unclean(lengths, code_points, joined)[1]
