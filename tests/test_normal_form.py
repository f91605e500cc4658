"""The vectorised clean-text test never calls a text clean that ``normalise`` would change."""

from __future__ import annotations

import json
import random
import unicodedata

import numpy as np
from fontTools.unicodedata import script

from tests.conftest import shared_data
from udfs.normal_form import letters_and_unclean, needs_normalising, normalise
from udfs.scripts import COMMON, encode


def flags(texts: list[str]) -> list[bool]:
    return needs_normalising(*encode(texts)).tolist()


def test_clean_and_unclean_texts_are_told_apart() -> None:
    cases = {
        "The cat sat on the mat.": False,
        "": False,
        "x": False,
        "café ok": False,  # precomposed é is NFC
        "नमस्ते दुनिया": False,  # virama and vowel signs in canonical order
        "한국어 문장": False,
        " leading": True,
        "trailing ": True,
        "two  spaces": True,
        "a\nb": True,
        "a\tb": True,
        "no\u00a0break": True,
        "ideographic\u3000space": True,
        "cafe\u0301": True,  # e + combining acute composes
        "\u1112\u1161\u11ab": True,  # conjoining jamo compose to 한
        "\u212b": True,  # ANGSTROM SIGN is never NFC
        "\u05d1\u05b0\u05bc": False,  # Hebrew sheva (10) then dagesh (21): in order
        "\u05d1\u05bc\u05b0": True,  # out of canonical order
        "a\u0323": True,  # a + dot below composes to U+1EA1
        "\u043e\u0301": False,  # Cyrillic o + acute (a stress mark): no composite exists
        "\u0b95\u0bbe": False,  # Tamil ka + vowel sign aa: stays two characters
        "\u0bc6\u0bbe": True,  # Tamil e + aa compose to o (U+0BCA)
        "\u09c7\u09be": True,  # Bengali vowel parts that compose
    }
    got = dict(zip(cases, flags(list(cases)), strict=True))
    assert got == cases
    for text, unclean in cases.items():
        assert (normalise(text) != text) <= unclean, text


def test_texts_do_not_leak_into_their_neighbours() -> None:
    # "a " then " b": each has one edge space; together they would look like a double space.
    # Dagesh (class 21) ending one text, sheva (10) starting the next: not a misordered pair.
    assert flags(["\u05d1\u05bc", "\u05b0x", "y"]) == [False, False, False]
    assert flags(["a ", "b"]) == [True, False]
    assert flags(["a\u0301", "b"]) == [True, False]
    assert flags(["", " ", ""]) == [False, True, False]


def test_random_tricky_texts_never_pass_as_clean_when_they_are_not() -> None:
    pool = [
        "a", "e", "o", "A", " ", "  ", "\n", "\u00a0", "\u2028", "\u0301", "\u0323", "\u0308",
        "\u0327", "\u1100", "\u1161", "\u11a8", "\uac00", "\u09c7", "\u09be", "\u0915",
        "\u093c", "\u094d", "\u0b47", "\u0b3e", "\u0bc6", "\u0bbe", "\u212b", "\u2126",
        "\u0344", "\u05b0", "\u05bc", "\u0650", "\u064b", "\u3099", "\u304b", "\u0f71",
    ]  # fmt: skip
    generator = random.Random(20261121)
    texts = [
        "".join(generator.choice(pool) for _ in range(generator.randint(0, 8)))
        for _ in range(30_000)
    ]
    unclean = flags(texts)
    missed = [t for t, u in zip(texts, unclean, strict=True) if not u and normalise(t) != t]
    assert missed == []
    # The test is not trivially "everything is unclean".
    assert 0 < sum(unclean) < len(texts)


def test_every_single_code_point_is_judged_safely() -> None:
    chars = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp < 0xE000]
    texts = ["a" + char + "b" for char in chars]
    letters, unclean = letters_and_unclean(*encode(texts))
    changed = np.array([normalise(text) != text for text in texts])
    assert not (changed & ~unclean).any()
    # NFC's quick check (No and Maybe) plus whitespace: about 1,300 code points, not thousands.
    assert 1_000 < unclean.sum() < 2_000
    # Letters are L* and M* of a real script in every plane, the skipped ones included.
    expected = [
        2 + (unicodedata.category(char)[0] in "LM" and script(char) not in COMMON) for char in chars
    ]
    assert letters.tolist() == expected


def test_real_sentences_are_mostly_clean_and_never_misjudged() -> None:
    folder = shared_data("ud")
    texts = [
        json.loads(line)["text"]
        for file in sorted(folder.glob("*.jsonl"))
        for line in file.open(encoding="utf-8")
    ]
    unclean = flags(texts)
    assert all(normalise(t) == t for t, u in zip(texts, unclean, strict=True) if not u)
    assert sum(unclean) < len(texts) // 2
