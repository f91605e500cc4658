"""N-gram hashes for decontamination, vectorised with numpy (no pyspark here): the normal
form, the tokens (words, or characters for scripts written without spaces) and the 64-bit
hashes of a batch's n-grams, for the reference side (:func:`item_ngrams`) and the train side
(:func:`train_ngrams`). :mod:`udfs.ngram_match` builds the index from them and looks train
texts up in it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from udfs.scripts import ASSIGNED_PLANES, _tables, count_letters_and_scripts, encode
from udfs.shingles import (
    CHAR_NGRAM_SCRIPTS,
    FIRST_CHAR_NGRAM_CODE_POINT,
    GROUP_CODE_POINTS,
    _char_tokens,
    _code_point_offsets,
    _exclusive_cumsum,
    _utf8,
    _word_tokens,
    normalise_for_dedup,
    span_hashes64,
    text_groups,
    uses_char_ngrams,
)

FULL_NGRAM = 0  # the length tag of a full n-gram; a short text's hash is tagged with m > 0
# Scripts of CHAR_NGRAM_SCRIPTS whose code points are letters and vowel or tone marks, not
# syllables or morphemes: a Thai word is ~4-5 code points, a Chinese one ~1.5-2.
ABUGIDA_SCRIPTS = frozenset({"Thai", "Laoo", "Khmr", "Mymr"})
SPACE = 0x20
# Lookup filters: ~8 table slots per key, at most 16 MB per length group (bool per slot).
MAX_FILTER_BITS = 24


@dataclass(frozen=True)
class NgramSettings:
    """How texts are cut into n-grams; the reference and train sides must share them."""

    ngram: int = 13  # word n-grams
    char_ngram: int = 13  # character n-grams, for scripts written without spaces
    min_tokens: int = 5  # shorter reference texts are skipped: a match could be chance
    # char_ngram and min_tokens for ABUGIDA_SCRIPTS (Thai, Lao, Khmer, Burmese): 13 Thai code
    # points are one or two words ("ความรับผิดชอบ", responsibility), so 13-grams flag ~1 in 5
    # clean Thai sentences; ~2.5 times as many code points span as much text as Chinese ones.
    abugida_char_ngram: int = 32
    abugida_min_tokens: int = 12

    def __post_init__(self) -> None:
        sizes = (self.ngram, self.char_ngram, self.abugida_char_ngram)
        if min(*sizes, self.min_tokens, self.abugida_min_tokens) < 1:
            raise ValueError(f"n-gram sizes and minimum token counts must be positive: {self}")


# --- the normal form ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _punctuation_table() -> np.ndarray:
    """Code point -> whether it is punctuation (P*) or a symbol (S*); once per process.

    Unassigned planes hold neither, so only the assigned ones are scanned (~0.1 s).
    """
    table = np.zeros(0x110000, dtype=bool)
    for plane in ASSIGNED_PLANES:
        table[plane.start : plane.stop] = np.fromiter(
            (unicodedata.category(chr(cp))[0] in "PS" for cp in plane), dtype=bool
        )
    return table


def _blank_punctuation(text: str) -> str:
    """Every punctuation or symbol code point of ``text`` as a space, by one table lookup.

    Faster than ``str.translate`` with a dict (a lookup per character) or a regex over the
    ~340 ranges of such code points.
    """
    code_points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    blanked = np.where(_punctuation_table()[code_points], np.uint32(SPACE), code_points)
    return blanked.tobytes().decode("utf-32-le", "surrogatepass")


def decontamination_form(text: str) -> str:
    """:func:`normalise_for_dedup`, then every run of punctuation and symbols (Unicode
    categories P* and S*) as one space, spaces collapsed and stripped.

    Copies of a benchmark item are often re-cased, re-spaced or re-punctuated (quotes
    straightened, a full stop dropped, a list turned into a sentence); none of that changes
    this form, so n-grams of the copy equal n-grams of the item.
    """
    return " ".join(_blank_punctuation(normalise_for_dedup(text)).split())


def decontamination_forms(texts: Sequence[str | None]) -> list[str]:
    """:func:`decontamination_form` of a batch (None as ""), blanking punctuation in one pass."""
    normalised = [normalise_for_dedup(text or "") for text in texts]
    blanked = _blank_punctuation("".join(normalised))
    result, position = [], 0
    for text in normalised:
        result.append(" ".join(blanked[position : position + len(text)].split()))
        position += len(text)
    return result


# --- tokens and n-grams ---------------------------------------------------------------------


@lru_cache(maxsize=1)
def _char_script_ids() -> np.ndarray:
    table_names = _tables()[1]
    return np.array([table_names.index(s) for s in CHAR_NGRAM_SCRIPTS if s in table_names])


def _has_char_script_letters(lengths: np.ndarray, code_points: np.ndarray) -> np.ndarray:
    """Per text, whether any of its letters belongs to one of CHAR_NGRAM_SCRIPTS."""
    owner = np.repeat(np.arange(len(lengths)), lengths)
    high = np.flatnonzero(code_points >= FIRST_CHAR_NGRAM_CODE_POINT)
    letters = np.isin(_tables()[0][code_points[high]], _char_script_ids())
    result = np.zeros(len(lengths), dtype=bool)
    result[owner[high[letters]]] = True
    return result


def _spaceless_texts(lengths: np.ndarray, code_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per text, whether its dominant script is one of CHAR_NGRAM_SCRIPTS, and whether it is
    one of ABUGIDA_SCRIPTS; only texts with a code point from U+0E00 up can be either."""
    high = _exclusive_cumsum(code_points >= FIRST_CHAR_NGRAM_CODE_POINT)
    candidates = np.diff(high[_exclusive_cumsum(lengths)]) > 0
    by_chars = np.zeros(len(lengths), dtype=bool)
    abugida = np.zeros(len(lengths), dtype=bool)
    if candidates.any():
        subset = (lengths[candidates], code_points[np.repeat(candidates, lengths)])
        scripts = count_letters_and_scripts(*subset)[1]
        by_chars[candidates] = [uses_char_ngrams(script) for script in scripts]
        abugida[candidates] = [script in ABUGIDA_SCRIPTS for script in scripts]
    return by_chars, abugida


@dataclass(frozen=True)
class _Tokens:
    """A batch of normal forms as one UTF-8 buffer, with the byte spans of its tokens.

    ``words`` and ``chars`` are (starts, ends, counts per text); a text may have both (train
    texts mixing scripts) or only one (reference texts).
    """

    data: np.ndarray  # uint8
    text_offsets: np.ndarray  # int64, len(texts) + 1 byte offsets
    by_chars: np.ndarray  # bool per text: dominant script written without spaces
    abugida: np.ndarray  # bool per text: dominant script one of ABUGIDA_SCRIPTS
    words: tuple[np.ndarray, np.ndarray, np.ndarray]
    chars: tuple[np.ndarray, np.ndarray, np.ndarray]


def _tokens(normalised: Sequence[str], train: bool) -> _Tokens:
    """Tokens of a batch of normal forms.

    A reference text is tokenised one way, by its dominant script, as dedup's shingles are.
    A train text gets words always, and characters too when it holds any letter of a script
    written without spaces: a Japanese item quoted in an English prompt (or an English item in
    a Chinese one) is then still found. Every match is an exact substring either way, so the
    extra tokenisation can only add true matches.
    """
    lengths, code_points, _ = encode(normalised)
    by_chars, abugida = _spaceless_texts(lengths, code_points)
    data = np.frombuffer(_utf8("".join(normalised)), dtype=np.uint8)
    byte_offsets = _code_point_offsets(code_points)
    text_offsets = byte_offsets[_exclusive_cumsum(lengths)]
    if train:
        word_texts = np.ones(len(lengths), dtype=bool)
        char_texts = by_chars | _has_char_script_letters(lengths, code_points)
    else:
        word_texts, char_texts = ~by_chars, by_chars
    words = _word_tokens(data, text_offsets, word_texts)
    chars = _char_tokens(byte_offsets, lengths, char_texts)
    return _Tokens(data, text_offsets, by_chars, abugida, words, chars)


def _grams(
    tokens: tuple[np.ndarray, np.ndarray, np.ndarray], n: int | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, owners) of every run of n consecutive tokens (n: one size, or one per
    text); texts with fewer tokens have none (unlike shingles, where a short text is one
    shingle: here it must not match as n tokens)."""
    starts, ends, counts = tokens
    n = np.broadcast_to(np.asarray(n, dtype=np.int64), counts.shape)
    per_text = np.maximum(counts - n + 1, 0)
    owners = np.repeat(np.arange(len(counts)), per_text)
    first = _exclusive_cumsum(counts)[owners] + (
        np.arange(len(owners)) - _exclusive_cumsum(per_text)[owners]
    )
    return starts[first], ends[first + n[owners] - 1], owners


def _text_groups(normalised: Sequence[str]) -> list[slice]:
    return text_groups(normalised, GROUP_CODE_POINTS)  # tens of bytes per n-gram


def _train_spans(
    tokens: _Tokens, tag: int, settings: NgramSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, owners) of the train spans that can equal an entry tagged ``tag``: every
    n-gram of every size a reference text could use (tag 0), or every run of m = tag tokens."""
    if tag == FULL_NGRAM:
        char_sizes = {settings.char_ngram, settings.abugida_char_ngram}
        grams = [_grams(tokens.words, settings.ngram)]
        grams += [_grams(tokens.chars, size) for size in sorted(char_sizes)]
    else:
        grams = [_grams(tokens.words, tag), _grams(tokens.chars, tag)]
    starts, ends, owners = (np.concatenate(column) for column in zip(*grams, strict=True))
    return starts, ends, owners


# --- the reference side ---------------------------------------------------------------------


@dataclass(frozen=True)
class ItemNgrams:
    """The reference side of a batch, flat: one row per distinct (hash, length) of a text."""

    hashes: np.ndarray  # uint64
    lengths: np.ndarray  # int32: 0 for a full n-gram, m for a short text's whole-text hash
    owners: np.ndarray  # int64: index of the text in the batch


def _item_ngrams_of_group(
    normalised: Sequence[str], settings: NgramSettings, spaced_words: np.ndarray
) -> ItemNgrams:
    tokens = _tokens(normalised, train=False)
    counts = tokens.words[2] + tokens.chars[2]  # each reference text has one kind of token
    abugida = tokens.abugida
    eligible = counts >= np.where(abugida, settings.abugida_min_tokens, settings.min_tokens)
    char_n = np.where(abugida, settings.abugida_char_ngram, settings.char_ngram)
    n = np.where(tokens.by_chars, char_n, settings.ngram)
    # A short text must also have min_tokens words between spaces: an e-mail address or a
    # number is one word however many tokens its punctuation cuts it into, and is found in
    # train text by chance (a signature line), not by contamination.
    eligible &= tokens.by_chars | (counts >= n) | (spaced_words >= settings.min_tokens)
    word_starts, word_ends, word_owners = _grams(tokens.words, settings.ngram)
    char_starts, char_ends, char_owners = _grams(tokens.chars, char_n)
    short = np.flatnonzero(eligible & (counts < n))
    starts = np.concatenate([word_starts, char_starts, tokens.text_offsets[short]])
    ends = np.concatenate([word_ends, char_ends, tokens.text_offsets[short + 1]])
    owners = np.concatenate([word_owners, char_owners, short])
    lengths = np.zeros(len(owners), dtype=np.int32)
    lengths[len(owners) - len(short) :] = counts[short]
    keep = eligible[owners]  # full n-grams of texts under min_tokens (if min_tokens > n)
    hashes = span_hashes64(tokens.data, starts[keep], ends[keep])
    return ItemNgrams(hashes, lengths[keep], owners[keep].astype(np.int64))


def _distinct(*columns: np.ndarray) -> np.ndarray:
    """Order of the rows sorted by the columns (first the most significant), repeats removed."""
    order = np.lexsort(columns[::-1])
    if not len(order):
        return order
    changed = np.zeros(len(order), dtype=bool)
    changed[0] = True
    for column in columns:
        ordered = column[order]
        changed[1:] |= ordered[1:] != ordered[:-1]
    return order[changed]


def item_ngrams(texts: Sequence[str | None], settings: NgramSettings) -> ItemNgrams:
    """The n-gram hashes of reference texts (None counts as empty), each listed once per text.

    A text with at least n tokens gives all its n-grams (length 0); one with min_tokens <= m < n
    tokens gives the hash of its whole normal form, tagged m; a shorter one gives nothing.
    Rows are sorted by owner, then length, then hash.
    """
    normalised = decontamination_forms(texts)
    spaced_words = np.array(
        [len(normalise_for_dedup(text or "").split(" ")) for text in texts], dtype=np.int64
    )
    parts = []
    for group in _text_groups(normalised):
        part = _item_ngrams_of_group(normalised[group], settings, spaced_words[group])
        parts.append(ItemNgrams(part.hashes, part.lengths, part.owners + group.start))
    hashes = np.concatenate([part.hashes for part in parts])
    lengths = np.concatenate([part.lengths for part in parts])
    owners = np.concatenate([part.owners for part in parts])
    rows = _distinct(owners, lengths, hashes)
    return ItemNgrams(hashes[rows], lengths[rows], owners[rows])


def train_ngrams(
    texts: Sequence[str | None], settings: NgramSettings, lengths: Sequence[int]
) -> ItemNgrams:
    """The train side of a join with reference n-grams too many to broadcast: per text, every
    distinct full n-gram hash (length 0) and every distinct hash of m consecutive tokens for
    the short-text lengths m > 0 in ``lengths``, cut as :meth:`NgramIndex.first_matches` cuts
    them, so the join finds the texts it would flag. Rows are sorted by owner, length, hash.
    """
    tags = sorted({FULL_NGRAM, *(int(length) for length in lengths if length > 0)})
    normalised = decontamination_forms(texts)
    parts = []
    for group in _text_groups(normalised):
        tokens = _tokens(normalised[group], train=True)
        for tag in tags:
            starts, ends, owners = _train_spans(tokens, tag, settings)
            hashes = span_hashes64(tokens.data, starts, ends)
            tagged = np.full(len(owners), tag, dtype=np.int32)
            parts.append(ItemNgrams(hashes, tagged, owners.astype(np.int64) + group.start))
    hashes = np.concatenate([part.hashes for part in parts])
    tagged = np.concatenate([part.lengths for part in parts])
    owners = np.concatenate([part.owners for part in parts])
    rows = _distinct(owners, tagged, hashes)
    return ItemNgrams(hashes[rows], tagged[rows], owners[rows])
