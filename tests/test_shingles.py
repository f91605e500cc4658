"""Shingles for MinHash: the dedup normal form, word and character n-grams, and the shingle
hash, vectorised (``udfs.shingles``) against the plain-Python definitions, on real
sentences of the 24 UD languages."""

from __future__ import annotations

import random
import unicodedata

import numpy as np
import pytest

import udfs.shingles as shingles_module
from tests.dedup_texts import ENGLISH, ODD, documents, ud_texts
from udfs.minhash import MAX_HASH
from udfs.scripts import _tables, letters_and_scripts
from udfs.shingles import (
    FIRST_CHAR_NGRAM_CODE_POINT,
    normalise_for_dedup,
    shingle_hash,
    shingle_spans,
    shingles,
    span_hashes,
)

# --- the shingle hash ---------------------------------------------------------------------


def test_vectorised_hashes_equal_shingle_hash_on_every_shingle() -> None:
    sentences = [text for texts in ud_texts(20).values() for text in texts]
    texts = [*ENGLISH, *ODD[1:], *sentences, *documents(sentences, 200, seed=11)]
    spans = shingle_spans([normalise_for_dedup(text) for text in texts])
    expected = [shingle_hash(shingle) for text in texts for shingle in shingles(text)]
    assert spans.counts.tolist() == [len(shingles(text)) for text in texts]
    assert spans.hashes().tolist() == expected
    assert len(expected) > 5000


def test_span_hashes_of_arbitrary_bytes() -> None:
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, size=5000, dtype=np.uint8)
    data[:50] = 0  # NUL runs: the length term tells them apart
    starts = rng.integers(0, 4000, size=500)
    ends = np.minimum(starts + rng.integers(0, 900, size=500), len(data))
    starts[:3], ends[:3] = [0, 0, 0], [0, 1, 2]
    expected = [shingle_hash(data[s:e].tobytes()) for s, e in zip(starts, ends, strict=True)]
    assert span_hashes(data, starts, ends).tolist() == expected
    assert len(set(expected[:3])) == 3
    assert all(0 <= value <= MAX_HASH for value in expected)


def test_shingle_hash_is_a_fixed_definition() -> None:
    # Stored signatures depend on these values: they must never change.
    values = [shingle_hash(data) for data in (b"", b"a", b"hello world", "日本語".encode())]
    assert values == [0, 1558742631, 3510277717, 2080373877]
    assert shingle_hash(b"ab") != shingle_hash(b"ba")
    assert shingle_hash(b"a") != shingle_hash(b"a\x00")


# --- shingles ------------------------------------------------------------------------------


def test_word_shingles() -> None:
    assert shingles("One two  THREE four five six") == [
        b"one two three four five",
        b"two three four five six",
    ]
    assert shingles("a b c", word_ngram=2) == [b"a b", b"b c"]
    assert shingles("Short text here.") == [b"short text here."]
    assert shingles("word") == [b"word"]
    assert shingles("") == shingles(None) == shingles(" \n ") == []


def test_char_shingles() -> None:
    assert shingles("日本語のテキスト", char_ngram=3) == [
        gram.encode() for gram in ["日本語", "本語の", "語のテ", "のテキ", "テキス", "キスト"]
    ]
    assert shingles("中文 ok", char_ngram=4) == [b.encode() for b in ["中文 o", "文 ok"]]
    assert shingles("日本") == ["日本".encode()]  # fewer than n characters: one shingle


@pytest.mark.parametrize(
    ("language", "by_chars"),
    [("zh", True), ("ja", True), ("th", True), ("en", False), ("ru", False), ("ar", False)],
)
def test_char_ngrams_only_for_scripts_without_spaces(language: str, by_chars: bool) -> None:
    sentences = [text for text in ud_texts()[language] if len(text) > 40][:20]
    for text in sentences:
        normalised = normalise_for_dedup(text)
        grams = shingles(text)
        if by_chars:
            expected = [normalised[k : k + 5] for k in range(len(normalised) - 4)]
        else:
            words = normalised.split(" ")
            expected = [" ".join(words[k : k + 5]) for k in range(len(words) - 4)]
            expected = expected or [normalised]
        assert grams == [gram.encode() for gram in expected]


def test_no_letter_of_a_char_ngram_script_lies_below_the_prefilter() -> None:
    table, names = _tables()
    scripts = {
        names.index(name) for name in ("Hani", "Hira", "Kana", "Thai", "Laoo", "Khmr", "Mymr")
    }
    below = table[:FIRST_CHAR_NGRAM_CODE_POINT]
    assert not np.isin(below, list(scripts)).any()
    _, dominant = letters_and_scripts(
        ["ไทย", "ລາວ", "ខ្មែរ", "မြန်မာ", "漢字", "ひらがな", "カタカナ"]
    )
    assert all(shingles_module.uses_char_ngrams(code) for code in dominant)


# --- normalisation and exact hashes --------------------------------------------------------


def test_normalise_for_dedup() -> None:
    assert normalise_for_dedup("  Ｈｅｌｌｏ\u3000\u00a0WORLD\n\t ﬁ ") == "hello world fi"
    assert normalise_for_dedup("Straße") == "strasse"
    assert normalise_for_dedup("\u2028\u2029\x1c") == ""


def test_normalise_for_dedup_is_idempotent() -> None:
    rng = random.Random(0)
    code_points = [cp for cp in range(0x30000) if not 0xD800 <= cp < 0xE000]
    for _ in range(200):
        text = "".join(chr(rng.choice(code_points)) for _ in range(60))
        once = normalise_for_dedup(text)
        assert normalise_for_dedup(once) == once
        assert unicodedata.is_normalized("NFKC", once)
    for cp in code_points:
        once = normalise_for_dedup(chr(cp))
        assert normalise_for_dedup(once) == once, hex(cp)
