"""MinHash signatures and LSH band keys for near-duplicate detection, vectorised with numpy.

Every text goes through :func:`normalise_for_dedup` (NFKC, casefold, whitespace runs as one
space) and is cut into shingles: word 5-grams, or character 5-grams for texts whose dominant
script is written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Burmese).
:func:`shingles` is the plain-Python definition; :class:`MinHasher` computes the same thing for
a whole batch as byte spans of one UTF-8 buffer, so shingles are never materialised as Python
objects and hashing needs no loop per shingle.

Signatures are identical to datasketch's, bit for bit::

    from datasketch import MinHash
    m = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash)
    m.update_batch(shingles(text))
    assert (m.hashvalues == minhasher(128, 1).signatures([text])[0]).all()

with ``scheme="affine32"`` (the default of datasketch 2.x: the 32-bit input hash is pre-mixed
with MurmurHash3's fmix32, then ``a * h + b mod 2**32``). ``scheme="legacy"`` reproduces
datasketch 1.x (``(a * h + b) mod (2**61 - 1)``, low 32 bits), which 2.x still offers as
``MinHash(..., scheme="legacy")``. Both give values below 2**32, returned as uint32; a text
without shingles (None, empty) gets all ``2**32 - 1``, like an empty ``MinHash``.

In Spark, signatures are ``array<int>`` holding the uint32 bit patterns (:func:`to_int32`).
To query them with datasketch, load them back with :func:`to_datasketch`::

    from datasketch import MinHashLSH
    bands, rows = lsh_params(0.7, 128)  # what MinHashLSH(threshold=0.7, num_perm=128) picks
    lsh = MinHashLSH(num_perm=128, params=(bands, rows))
    for key, signature in rows_from_spark:  # signature: list of int32
        lsh.insert(key, to_datasketch(signature, seed=1))
    duplicates = lsh.query(to_datasketch(signature_of_new_text, seed=1))

:func:`band_keys` is the same banding done in bulk: band ``i`` covers signature positions
``[i * rows, (i + 1) * rows)`` as in ``MinHashLSH``, and two texts share a band key exactly
when (up to 64-bit hash collisions) those positions are all equal, so a Spark self-join on
``(band index, key)`` finds the candidate pairs ``MinHashLSH.query`` would.
"""

from __future__ import annotations

import hashlib
import inspect
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa

from udfs.scripts import count_letters_and_scripts, encode, letters_and_scripts

if TYPE_CHECKING:
    # Imported where used: datasketch pulls in scipy, which workers need not load.
    from datasketch import MinHash

Scheme = Literal["affine32", "legacy"]

MASK64 = (1 << 64) - 1
MAX_HASH = (1 << 32) - 1  # datasketch's _max_hash: the value of an empty MinHash
MERSENNE_PRIME = (1 << 61) - 1  # datasketch's _mersenne_prime (legacy scheme)
SPACE = 0x20

# Shingle hash: polynomial in the UTF-8 bytes mod 2**64, the length added, then fmix64.
HASH_BASE = 0x9E3779B97F4A7C15  # odd, so it is invertible mod 2**64
HASH_BASE_INVERSE = pow(HASH_BASE, -1, 1 << 64)
HASH_LENGTH_FACTOR = 0xC2B2AE3D27D4EB4F
FMIX64 = (33, 0xFF51AFD7ED558CCD, 33, 0xC4CEB9FE1A85EC53, 33)
FMIX32 = (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)
BAND_SEED = 0x9E3779B97F4A7C15

# ISO 15924 codes (as udfs.scripts names them) of scripts written without spaces between words:
# word n-grams of such text would be whole sentences or clauses.
CHAR_NGRAM_SCRIPTS = frozenset({"Hani", "Hira", "Kana", "Jpan", "Thai", "Laoo", "Khmr", "Mymr"})
# No letter of those scripts lies below Thai's block (a test checks it against the tables).
FIRST_CHAR_NGRAM_CODE_POINT = 0x0E00

# Bounds the memory of one pass: ~40 bytes per UTF-8 byte, plus the power tables.
GROUP_CODE_POINTS = 1 << 18
# Shingles per permute-and-min step: num_perm * CHUNK_SHINGLES values in flight.
CHUNK_SHINGLES = 1 << 14
# Power tables for a whole group, whatever its script, stay cached (16 bytes an entry).
CACHED_POWERS = 4 * GROUP_CODE_POINTS + 1

MINHASH_TYPE = pa.struct(
    [
        pa.field("content_hash", pa.string()),
        pa.field("signature", pa.list_(pa.int32())),
        pa.field("band_keys", pa.list_(pa.int64())),
    ]
)
MINHASH_SPARK_DDL = "struct<content_hash:string,signature:array<int>,band_keys:array<bigint>>"


# --- normalisation and exact duplicates -----------------------------------------------------


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


def _content_hash(normalised: str) -> str | None:
    return hashlib.blake2b(_utf8(normalised), digest_size=16).hexdigest() if normalised else None


def exact_hash(texts: Sequence[str | None]) -> list[str | None]:
    """Per text, the exact-duplicate key: 32 hex digits of BLAKE2b-128 over the UTF-8 bytes of
    :func:`normalise_for_dedup` of the text; None for None or text empty once normalised.

    Reproduce it with ``hashlib.blake2b(normalise_for_dedup(t).encode(), digest_size=16)``.
    Texts differing only in case, whitespace or compatibility forms (full-width letters,
    ligatures) share a key.
    """
    return [None if text is None else _content_hash(normalise_for_dedup(text)) for text in texts]


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
    data = np.asarray(data, dtype=np.uint8)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    powers, inverse_powers = _power_tables(len(data) + 1)
    prefix = np.zeros(len(data) + 1, dtype=np.uint64)
    np.cumsum(data * powers[: len(data)], out=prefix[1:])
    polynomial = (prefix[ends] - prefix[starts]) * inverse_powers[starts]
    polynomial += (ends - starts).astype(np.uint64) * np.uint64(HASH_LENGTH_FACTOR)
    return (_fmix(polynomial, FMIX64) & np.uint64(MAX_HASH)).astype(np.uint32)


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


# --- MinHash --------------------------------------------------------------------------------


def _permutations(num_perm: int, seed: int, scheme: Scheme) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's (a, b) for ``MinHash(num_perm, seed, scheme=scheme)``, drawn the same way
    from the same generator (so signatures do not depend on importing datasketch)."""
    generator = np.random.RandomState(seed)
    if scheme == "legacy":
        pairs = [
            (
                generator.randint(1, MERSENNE_PRIME, dtype=np.uint64),
                generator.randint(0, MERSENNE_PRIME, dtype=np.uint64),
            )
            for _ in range(num_perm)
        ]
        a, b = np.array(pairs, dtype=np.uint64).T
        return np.ascontiguousarray(a), np.ascontiguousarray(b)
    a = generator.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = generator.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _text_groups(normalised: Sequence[str]) -> list[slice]:
    """Consecutive slices of the batch of about GROUP_CODE_POINTS each (a long text alone)."""
    groups, start, size = [], 0, 0
    for index, text in enumerate(normalised):
        if size and size + len(text) > GROUP_CODE_POINTS:
            groups.append(slice(start, index))
            start, size = index, 0
        size += len(text)
    groups.append(slice(start, len(normalised)))
    return groups


@dataclass(frozen=True)
class MinHasher:
    """MinHash over shingles, identical to ``datasketch.MinHash(num_perm, seed,
    hashfunc=shingle_hash, scheme=scheme)`` updated with :func:`shingles` of each text.

    Build it with :func:`minhasher` to get one per process.
    """

    num_perm: int = 128
    seed: int = 1
    word_ngram: int = 5
    char_ngram: int = 5
    scheme: Scheme = "affine32"
    a: np.ndarray = field(init=False, repr=False, compare=False)
    b: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.num_perm < 1 or self.word_ngram < 1 or self.char_ngram < 1:
            raise ValueError("num_perm and the n-gram sizes must be positive")
        if self.scheme not in ("affine32", "legacy"):
            raise ValueError(f"unknown MinHash scheme {self.scheme!r}")
        a, b = _permutations(self.num_perm, self.seed, self.scheme)
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)

    def signatures(self, texts: Sequence[str | None]) -> np.ndarray:
        """Signatures of the texts, shape (len(texts), num_perm), uint32 (datasketch's values:
        it stores them as uint32 for affine32, as uint64 for legacy). None, or text that
        normalises to nothing, gets a row of 2**32 - 1, like an empty MinHash."""
        return self.signatures_of_normalised(
            ["" if text is None else normalise_for_dedup(text) for text in texts]
        )

    def signatures_of_normalised(self, normalised: Sequence[str]) -> np.ndarray:
        """:meth:`signatures` of texts already passed through :func:`normalise_for_dedup`."""
        result = np.full((len(normalised), self.num_perm), MAX_HASH, dtype=np.uint32)
        for group in _text_groups(normalised):
            spans = shingle_spans(normalised[group], self.word_ngram, self.char_ngram)
            result[group] = self._minima(spans.hashes(), spans.counts)
        return result

    def _permute(self, hashes: np.ndarray) -> np.ndarray:
        """(num_perm, len(hashes)) permuted values of shingle hashes, as datasketch does."""
        if self.scheme == "legacy":
            values = self.a[:, None] * hashes.astype(np.uint64)[None, :]
            values += self.b[:, None]
            values %= np.uint64(MERSENNE_PRIME)
            return (values & np.uint64(MAX_HASH)).astype(np.uint32)
        values = self.a[:, None] * _fmix(hashes, FMIX32)[None, :]
        values += self.b[:, None]
        return values

    def _minima(self, hashes: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Per text, the minimum over its shingles of every permutation: (texts, num_perm)."""
        result = np.full((len(counts), self.num_perm), MAX_HASH, dtype=np.uint32)
        offsets = _exclusive_cumsum(counts)
        for begin in range(0, len(hashes), CHUNK_SHINGLES):
            end = min(begin + CHUNK_SHINGLES, len(hashes))
            # Texts with shingles in [begin, end); one may continue from the previous chunk.
            rows = np.arange(
                np.searchsorted(offsets[1:], begin, side="right"),
                np.searchsorted(offsets[:-1], end, side="left"),
            )
            rows = rows[counts[rows] > 0]
            firsts = np.maximum(offsets[rows], begin) - begin
            minima = np.minimum.reduceat(self._permute(hashes[begin:end]), firsts, axis=1)
            result[rows] = np.minimum(result[rows], minima.T)
        return result

    def to_datasketch(self, signature: np.ndarray | Sequence[int]) -> MinHash:
        """:func:`to_datasketch` with this hasher's seed and scheme."""
        return to_datasketch(signature, self.seed, self.scheme)


@lru_cache(maxsize=8)
def minhasher(
    num_perm: int = 128,
    seed: int = 1,
    word_ngram: int = 5,
    char_ngram: int = 5,
    scheme: Scheme = "affine32",
) -> MinHasher:
    """One :class:`MinHasher` per process and parameters."""
    return MinHasher(num_perm, seed, word_ngram, char_ngram, scheme)


# --- signatures outside numpy ---------------------------------------------------------------


def _as_uint32(signature: np.ndarray | Sequence[int]) -> np.ndarray:
    """A signature as uint32, from uint32 or uint64 values (datasketch) or from int32 bit
    patterns (Spark), whether in an int32 array or a list of Python ints."""
    values = np.asarray(signature)
    if values.dtype == np.int32:
        return values.view(np.uint32)
    if values.dtype.kind not in "iu":
        raise ValueError(f"signatures are integers, not {values.dtype}")
    if values.size and (values.min() < -(1 << 31) or values.max() > MAX_HASH):
        raise ValueError("signature values must fit in 32 bits")
    # Negative values are int32 bit patterns: masking recovers the uint32 value.
    return (values.astype(np.int64) & MAX_HASH).astype(np.uint32)


def to_int32(signature: np.ndarray) -> np.ndarray:
    """The uint32 values as int32 with the same bits, for Spark's ``array<int>``."""
    return np.ascontiguousarray(_as_uint32(signature)).view(np.int32)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """The fraction of positions where two signatures agree: their estimated Jaccard similarity
    (like ``MinHash.jaccard``). Signatures may be uint32, uint64 or Spark's int32."""
    left, right = _as_uint32(a), _as_uint32(b)
    if left.shape != right.shape:
        raise ValueError("signatures of different lengths")
    return float(np.count_nonzero(left == right)) / float(left.size)


@lru_cache(maxsize=1)
def _datasketch_has_schemes() -> bool:
    from datasketch import MinHash

    return "scheme" in inspect.signature(MinHash.__init__).parameters


def to_datasketch(
    signature: np.ndarray | Sequence[int], seed: int = 1, scheme: Scheme = "affine32"
) -> MinHash:
    """A ``datasketch.MinHash`` holding a signature (uint32, or int32 bit patterns from Spark),
    with :func:`shingle_hash` as its hash function so it can be updated further."""
    from datasketch import MinHash

    values = _as_uint32(signature)
    if _datasketch_has_schemes():
        if scheme == "legacy":
            values = values.astype(np.uint64)
        return MinHash(seed=seed, hashfunc=shingle_hash, hashvalues=values, scheme=scheme)
    if scheme != "legacy":
        raise ValueError(f"datasketch before 2.0 only knows the legacy scheme, not {scheme!r}")
    return MinHash(seed=seed, hashfunc=shingle_hash, hashvalues=values.astype(np.uint64))


# --- LSH banding ----------------------------------------------------------------------------


@lru_cache(maxsize=64)
def lsh_params(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """(bands, rows) that ``MinHashLSH(threshold, num_perm, weights)`` would use."""
    from datasketch.lsh import _optimal_param

    bands, rows = _optimal_param(threshold, num_perm, false_positive_weight, false_negative_weight)
    return int(bands), int(rows)


def has_shingles(signatures: np.ndarray) -> np.ndarray:
    """Per row, False for the all-``2**32 - 1`` signature of a text without shingles; its
    band keys are equal for all such texts and must not be joined on."""
    return np.any(np.atleast_2d(_as_uint32(signatures)) != MAX_HASH, axis=1)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Per signature and band, a 64-bit hash of the band's ``rows`` values, shape (n, bands),
    int64 (Spark's LongType). Band ``i`` covers positions ``[i * rows, (i + 1) * rows)``.

    The hash starts from fmix64 of the band index and the band size and folds in each value
    with ``h = fmix64(h ^ value)``: every step is a bijection in the value, so equal bands give
    equal keys and different bands differ unless 64 bits collide; the same band of values at
    another band index gets another key. Rows without shingles: see :func:`has_shingles`.
    """
    values = np.atleast_2d(_as_uint32(signatures))
    if bands < 1 or rows < 1 or bands * rows > values.shape[1]:
        raise ValueError(f"{bands} bands of {rows} rows do not fit {values.shape[1]} values")
    banded = values[:, : bands * rows].reshape(len(values), bands, rows).astype(np.uint64)
    seeds = np.arange(bands, dtype=np.uint64) * np.uint64(BAND_SEED) ^ np.uint64(rows)
    keys = np.broadcast_to(_fmix(seeds, FMIX64), (len(values), bands)).copy()
    for position in range(rows):
        keys = _fmix(keys ^ banded[:, :, position], FMIX64)
    return keys.view(np.int64)


# --- the Spark stage's batch ----------------------------------------------------------------


def _list_array(values: np.ndarray, valid: np.ndarray, pa_type: pa.DataType) -> pa.ListArray:
    """Rows of ``values`` (one per valid row, in order) as a list array, null where invalid."""
    widths = np.where(valid, values.shape[1], 0)
    offsets = _exclusive_cumsum(widths)
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError("batch too large for 32-bit list offsets; use smaller Arrow batches")
    return pa.ListArray.from_arrays(
        pa.array(offsets.astype(np.int32)),
        pa.array(values.ravel(), type=pa_type),
        mask=pa.array(~valid),
    )


def minhash_batch(
    texts: pa.Array | pa.ChunkedArray, hasher: MinHasher, bands: int, rows: int
) -> pa.StructArray:
    """Per text: ``content_hash`` (:func:`exact_hash`), ``signature`` (int32 bit patterns of
    the uint32 values) and ``band_keys`` (:func:`band_keys`), of type :data:`MINHASH_TYPE`.

    Null texts and texts that normalise to nothing get three null fields (the struct itself
    is not null), so they never take part in a join on band keys.
    """
    normalised = ["" if text is None else normalise_for_dedup(text) for text in texts.to_pylist()]
    valid = np.fromiter((bool(text) for text in normalised), dtype=bool, count=len(normalised))
    signatures = hasher.signatures_of_normalised([text for text in normalised if text])
    keys = band_keys(signatures, bands, rows)
    content_hashes = pa.array([_content_hash(text) for text in normalised], type=pa.string())
    return pa.StructArray.from_arrays(
        [
            content_hashes,
            _list_array(to_int32(signatures), valid, pa.int32()),
            _list_array(keys, valid, pa.int64()),
        ],
        fields=list(MINHASH_TYPE),
    )
