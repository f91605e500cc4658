"""Shingles for MinHash, vectorised with numpy: the dedup normal form, word or character
n-grams, and the 64-bit shingle hash.

Every text goes through :func:`normalise_for_dedup` (NFKC, casefold, whitespace runs as one
space) and is cut into shingles: word 5-grams, or character 5-grams for texts whose dominant
script is written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Burmese).
:func:`shingles` is the plain-Python definition; :func:`shingle_spans` computes the same thing
for a whole batch as byte spans of one UTF-8 buffer, and :func:`span_hashes` hashes them all
at once to what :func:`shingle_hash` gives each, so shingles are never materialised as Python
objects and hashing needs no loop per shingle.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from udfs.scripts import count_letters_and_scripts, encode, letters_and_scripts

MASK64 = (1 << 64) - 1
MAX_HASH = (1 << 32) - 1  # datasketch's _max_hash: the value of an empty MinHash
SPACE = 0x20

# Shingle hash: polynomial in the UTF-8 bytes mod 2**64, the length added, then fmix64.
HASH_BASE = 0x9E3779B97F4A7C15  # odd, so it is invertible mod 2**64
HASH_BASE_INVERSE = pow(HASH_BASE, -1, 1 << 64)
HASH_LENGTH_FACTOR = 0xC2B2AE3D27D4EB4F
FMIX64 = (33, 0xFF51AFD7ED558CCD, 33, 0xC4CEB9FE1A85EC53, 33)

# ISO 15924 codes (as udfs.scripts names them) of scripts written without spaces between words:
# word n-grams of such text would be whole sentences or clauses.
CHAR_NGRAM_SCRIPTS = frozenset({"Hani", "Hira", "Kana", "Jpan", "Thai", "Laoo", "Khmr", "Mymr"})
# No letter of those scripts lies below Thai's block (a test checks it against the tables).
FIRST_CHAR_NGRAM_CODE_POINT = 0x0E00

# Bounds the memory of one pass: ~40 bytes per UTF-8 byte, plus the power tables.
GROUP_CODE_POINTS = 1 << 18
# Power tables for a whole group, whatever its script, stay cached (16 bytes an entry).
CACHED_POWERS = 4 * GROUP_CODE_POINTS + 1


# --- normalisation -------------------------------------------------------------------------


def normalise_for_dedup(text: str) -> str:
    """NFKC, casefolded, every run of Unicode whitespace as one ASCII space, stripped.

    Casefolding can undo NFKC (a few characters fold to sequences that compose or have
    compatibility forms), so NFKC runs again where that happened: the function is idempotent.
    """
    normalised = unicodedata.normalize("NFKC", text)
    folded = normalised.casefold()
    # Most scripts have no case: skip the second check (slow for Indic marks) when nothing folded.
    if folded != normalised and not unicodedata.is_normalized("NFKC", folded):
        folded = unicodedata.normalize("NFKC", folded)
    return " ".join(folded.split())


def _utf8(text: str) -> bytes:
    # Python strings may hold lone surrogates (Arrow strings cannot); they hash like any
    # other code point instead of failing the batch.
    return text.encode("utf-8", "surrogatepass")


# --- the shingle hash -----------------------------------------------------------------------


def _fmix64_int(value: int) -> int:
    shift1, mult1, shift2, mult2, shift3 = FMIX64
    value ^= value >> shift1
    value = (value * mult1) & MASK64
    value ^= value >> shift2
    value = (value * mult2) & MASK64
    return value ^ (value >> shift3)


def shingle_hash(data: bytes) -> int:
    """The project's 32-bit shingle hash; pass it to datasketch as ``hashfunc``.

    ``x = len(data) * 0xC2B2AE3D27D4EB4F + sum(data[i] * 0x9E3779B97F4A7C15**i)`` mod 2**64,
    then MurmurHash3's 64-bit finaliser (fmix64), low 32 bits. The polynomial form lets
    :func:`span_hashes` hash every span of a buffer from one prefix sum; the length term
    separates spans differing only by trailing NUL bytes; fmix64 spreads every input bit over
    the 32 bits kept.
    """
    polynomial = 0
    for byte in reversed(data):  # Horner's rule, from the highest power down
        polynomial = (polynomial * HASH_BASE + byte) & MASK64
    mixed = _fmix64_int((polynomial + len(data) * HASH_LENGTH_FACTOR) & MASK64)
    return mixed & MAX_HASH


def _fmix(values: np.ndarray, constants: tuple[int, int, int, int, int]) -> np.ndarray:
    """MurmurHash3's finaliser over an unsigned array; multiplication wraps as it should."""
    dtype = values.dtype.type
    shift1, mult1, shift2, mult2, shift3 = (dtype(c) for c in constants)
    values = values ^ (values >> shift1)
    values *= mult1
    values ^= values >> shift2
    values *= mult2
    values ^= values >> shift3
    return values


def _powers(base: int, size: int) -> np.ndarray:
    """``base**j mod 2**64`` for j in [0, size): a cumulative product, which wraps."""
    powers = np.full(size, base, dtype=np.uint64)
    powers[0] = 1
    return np.cumprod(powers, out=powers)


@lru_cache(maxsize=1)
def _cached_power_tables(size: int) -> tuple[np.ndarray, np.ndarray]:
    return _powers(HASH_BASE, size), _powers(HASH_BASE_INVERSE, size)


def _power_tables(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(base**j, base**-j) for at least ``size`` values of j; the usual sizes are cached."""
    if size <= CACHED_POWERS:
        return _cached_power_tables(CACHED_POWERS)
    return _powers(HASH_BASE, size), _powers(HASH_BASE_INVERSE, size)


def span_hashes(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """:func:`shingle_hash` of ``data[start:end]`` for every span, as uint32, with no loop.

    With ``prefix[k] = sum(data[j] * base**j for j < k)`` over the whole buffer, a span's
    polynomial is ``(prefix[end] - prefix[start]) * base**-start``, all mod 2**64.
    """
    return (span_hashes64(data, starts, ends) & np.uint64(MAX_HASH)).astype(np.uint32)


def span_hashes64(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """:func:`span_hashes` with all 64 bits of fmix64 kept, as uint64.

    32 bits are plenty for MinHash, but an exact-match index is probed with every n-gram of a
    corpus: 10**8 entries against 10**11 probes collide by chance ~10**9 times at 32 bits, and
    about once at 64.
    """
    data = np.asarray(data, dtype=np.uint8)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    powers, inverse_powers = _power_tables(len(data) + 1)
    prefix = np.zeros(len(data) + 1, dtype=np.uint64)
    np.cumsum(data * powers[: len(data)], out=prefix[1:])
    polynomial = (prefix[ends] - prefix[starts]) * inverse_powers[starts]
    polynomial += (ends - starts).astype(np.uint64) * np.uint64(HASH_LENGTH_FACTOR)
    return _fmix(polynomial, FMIX64)


def text_groups(texts: Sequence[str], limit: int = GROUP_CODE_POINTS) -> list[slice]:
    """Consecutive slices of a batch of about ``limit`` code points each (a long text alone):
    bounds the memory of one pass and keeps the hash's power tables in the cached size."""
    groups, start, size = [], 0, 0
    for index, text in enumerate(texts):
        if size and size + len(text) > limit:
            groups.append(slice(start, index))
            start, size = index, 0
        size += len(text)
    groups.append(slice(start, len(texts)))
    return groups


# --- shingles -------------------------------------------------------------------------------


def uses_char_ngrams(script: str | None) -> bool:
    """Whether text whose dominant script is ``script`` (ISO 15924) is shingled by characters."""
    return script in CHAR_NGRAM_SCRIPTS


def _ngrams(tokens: Sequence[str], n: int, separator: str) -> list[str]:
    if len(tokens) < n:
        return [separator.join(tokens)]
    return [separator.join(tokens[k : k + n]) for k in range(len(tokens) - n + 1)]


def shingles(text: str | None, word_ngram: int = 5, char_ngram: int = 5) -> list[bytes]:
    """The shingles of a text, as UTF-8 bytes, in order of occurrence (repeats included: they
    do not change a MinHash). This is the definition :class:`MinHasher` computes in bulk.

    The text is normalised by :func:`normalise_for_dedup`. If its dominant script is one of
    :data:`CHAR_NGRAM_SCRIPTS`, a shingle is ``char_ngram`` consecutive code points, spaces
    included (so that Latin words or numbers embedded in Chinese text keep their boundaries);
    otherwise it is ``word_ngram`` consecutive space-separated words joined by one space.
    Either way a shingle is a substring of the normalised text. A text with fewer tokens than
    the n-gram size is one shingle, the whole text; an empty text has none.
    """
    normalised = normalise_for_dedup(text or "")
    if not normalised:
        return []
    script = letters_and_scripts([normalised])[1][0]
    if uses_char_ngrams(script):
        grams = _ngrams(list(normalised), char_ngram, "")
    else:
        grams = _ngrams(normalised.split(" "), word_ngram, " ")
    return [_utf8(gram) for gram in grams]


def _exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


@dataclass(frozen=True)
class ShingleSpans:
    """The shingles of a batch as byte spans of one buffer, grouped by text in batch order."""

    data: np.ndarray  # uint8: the UTF-8 bytes of all normalised texts, concatenated
    starts: np.ndarray  # int64: start of each shingle in data
    ends: np.ndarray  # int64: end (exclusive) of each shingle in data
    counts: np.ndarray  # int64: number of shingles of each text

    def hashes(self) -> np.ndarray:
        """:func:`shingle_hash` of every shingle, as uint32."""
        return span_hashes(self.data, self.starts, self.ends)


def _ngram_spans(
    token_starts: np.ndarray, token_ends: np.ndarray, token_counts: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spans of the n-grams of tokens grouped by text: (starts, ends, n-grams per text).

    A text with 0 < tokens < n gets one span from its first token to its last.
    """
    counts = np.where(token_counts >= n, token_counts - n + 1, np.minimum(token_counts, 1))
    owner = np.repeat(np.arange(len(counts)), counts)
    base = _exclusive_cumsum(token_counts)[owner]
    rank = np.arange(len(owner)) - _exclusive_cumsum(counts)[owner]
    last = base + np.minimum(rank + n - 1, token_counts[owner] - 1)
    return token_starts[base + rank], token_ends[last], counts


def _word_tokens(
    data: np.ndarray, text_offsets: np.ndarray, selected: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, counts per text) of the words of the selected texts.

    Normalised text has single spaces between words and none at either end, so a text's words
    are delimited by its own bounds and the spaces inside it.
    """
    spaces = np.flatnonzero(data == SPACE)
    space_owner = np.searchsorted(text_offsets, spaces, side="right") - 1
    spaces = spaces[selected[space_owner]]
    nonempty = selected & (text_offsets[1:] > text_offsets[:-1])
    text_starts, text_ends = text_offsets[:-1][nonempty], text_offsets[1:][nonempty]
    # Both sides are sorted and never equal, so inserting is a merge (no sort needed).
    starts = np.insert(spaces + 1, np.searchsorted(spaces, text_starts), text_starts)
    ends = np.insert(spaces, np.searchsorted(spaces, text_ends), text_ends)
    counts = np.diff(np.searchsorted(spaces, text_offsets)) + nonempty
    return starts, ends, np.where(nonempty, counts, 0)


def _code_point_offsets(code_points: np.ndarray) -> np.ndarray:
    """Byte offset of every code point in the UTF-8 buffer (and the buffer's size, last)."""
    widths = (
        1
        + (code_points >= 0x80).astype(np.int64)
        + (code_points >= 0x800)
        + (code_points >= 0x10000)
    )
    return _exclusive_cumsum(widths)


def _char_tokens(
    byte_offsets: np.ndarray, lengths: np.ndarray, selected: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, counts per text) of the code points of the selected texts, in bytes."""
    keep = np.repeat(selected, lengths)
    return byte_offsets[:-1][keep], byte_offsets[1:][keep], np.where(selected, lengths, 0)


def _char_ngram_texts(lengths: np.ndarray, code_points: np.ndarray) -> np.ndarray:
    """Per text, whether it is shingled by characters (see :func:`shingles`).

    Only texts with a code point from U+0E00 (Thai) up can be dominated by one of
    CHAR_NGRAM_SCRIPTS, so the others, most texts, skip counting scripts.
    """
    high = _exclusive_cumsum(code_points >= FIRST_CHAR_NGRAM_CODE_POINT)
    candidates = np.diff(high[_exclusive_cumsum(lengths)]) > 0
    result = np.zeros(len(lengths), dtype=bool)
    if candidates.any():
        subset = (lengths[candidates], code_points[np.repeat(candidates, lengths)])
        _, scripts = count_letters_and_scripts(*subset)
        result[candidates] = [uses_char_ngrams(script) for script in scripts]
    return result


def shingle_spans(
    normalised: Sequence[str], word_ngram: int = 5, char_ngram: int = 5
) -> ShingleSpans:
    """:func:`shingles` of texts already normalised, for the whole batch at once."""
    lengths, code_points, _ = encode(normalised)
    by_chars = _char_ngram_texts(lengths, code_points)
    data = np.frombuffer(_utf8("".join(normalised)), dtype=np.uint8)
    byte_offsets = _code_point_offsets(code_points)
    text_offsets = byte_offsets[_exclusive_cumsum(lengths)]
    word_starts, word_ends, word_counts = _ngram_spans(
        *_word_tokens(data, text_offsets, ~by_chars), word_ngram
    )
    if not by_chars.any():
        return ShingleSpans(data, word_starts, word_ends, word_counts)
    char_starts, char_ends, char_counts = _ngram_spans(
        *_char_tokens(byte_offsets, lengths, by_chars), char_ngram
    )
    # Each text is shingled one way only, and texts are laid out in order: sorting by start
    # position puts every text's shingles back together, in batch order.
    starts = np.concatenate([word_starts, char_starts])
    order = np.argsort(starts, kind="stable")
    ends = np.concatenate([word_ends, char_ends])[order]
    return ShingleSpans(data, starts[order], ends, word_counts + char_counts)
