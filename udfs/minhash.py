"""MinHash signatures and LSH band keys for near-duplicate detection, vectorised with numpy.

Texts are normalised and cut into shingles by ``udfs.shingles`` (word 5-grams, or character
5-grams for scripts written without spaces); :class:`MinHasher` permutes the shingle hashes
of a whole batch at once.

Signatures are identical to datasketch's, bit for bit::

    from datasketch import MinHash
    from udfs.shingles import shingle_hash, shingles
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa

from udfs.shingles import (
    FMIX64,
    GROUP_CODE_POINTS,
    MAX_HASH,
    _exclusive_cumsum,
    _fmix,
    _utf8,
    normalise_for_dedup,
    shingle_hash,
    shingle_spans,
    text_groups,
)

if TYPE_CHECKING:
    # Imported where used: datasketch pulls in scipy, which workers need not load.
    from datasketch import MinHash

Scheme = Literal["affine32", "legacy"]

MERSENNE_PRIME = (1 << 61) - 1  # datasketch's _mersenne_prime (legacy scheme)
FMIX32 = (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)
BAND_SEED = 0x9E3779B97F4A7C15

# Shingles per permute-and-min step: num_perm * CHUNK_SHINGLES values in flight.
CHUNK_SHINGLES = 1 << 14

MINHASH_TYPE = pa.struct(
    [
        pa.field("content_hash", pa.string()),
        pa.field("signature", pa.list_(pa.int32())),
        pa.field("band_keys", pa.list_(pa.int64())),
    ]
)


# --- exact duplicates -----------------------------------------------------------------------


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
        for group in text_groups(normalised, GROUP_CODE_POINTS):
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


def to_datasketch(
    signature: np.ndarray | Sequence[int], seed: int = 1, scheme: Scheme = "affine32"
) -> MinHash:
    """A ``datasketch.MinHash`` holding a signature (uint32, or int32 bit patterns from Spark),
    with :func:`shingle_hash` as its hash function so it can be updated further."""
    from datasketch import MinHash

    values = _as_uint32(signature)
    if scheme == "legacy":
        values = values.astype(np.uint64)
    return MinHash(seed=seed, hashfunc=shingle_hash, hashvalues=values, scheme=scheme)


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
