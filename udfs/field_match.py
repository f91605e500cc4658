"""Field-aware verification of near-duplicate candidate pairs.

Whole-record MinHash over-merges QA records: many questions share one long passage, so two
records with different questions still look like near-duplicates. A candidate pair found by
LSH is therefore verified field by field: each record's ``dedup_text`` is split on
:data:`~udfs.records.FIELD_SEPARATOR`, and two records are duplicates only when every field of
each matches some field of the other (field names are not known here; pairing by content also
lets sources with different field names, or another field order, compare through what they
share).

Two fields match when

* either is SHORT (fewer tokens than the dedup shingle size: words, or characters for scripts
  written without spaces, as :mod:`udfs.shingles` decides): their normal forms are equal
  (a 64-bit blake2b digest is compared). A different short answer is a different record;
* otherwise: the Jaccard similarity of their CHARACTER n-gram sets (n = ``char_ngram``, 5;
  spaces included) reaches the threshold. Character grams tolerate a typo in a short
  question far better than word 5-grams, which one typo removes five of out of a handful.

Candidate pairs are few, but a record sits in many of them (one passage, many questions), so
each record is reduced once to a compact :func:`fingerprint` and every edge compares two
fingerprints (:func:`records_match`, :func:`fields_match_batch`). The Jaccard is estimated
from bottom-k sketches: the ``sketch_size`` smallest distinct 64-bit gram hashes; a field with
at most that many distinct grams keeps them all and its Jaccard is exact.

Fingerprint format (little-endian), version 1::

    u8  version (= 1)
    u32 number of fields
    per field:
        u8      flags: 1 = short, 2 = tokens are characters, 4 = sketch complete
        8 bytes blake2b(normal form, digest_size=8)
        u16     sketch length m (0 for short fields: they are compared by digest only)
        m * u64 sketch, sorted ascending, distinct

The gram hash is the project's shingle hash (:func:`udfs.shingles.shingle_hash`) before it
is cut to 32 bits: its low 32 bits equal ``shingle_hash`` of the gram's UTF-8 bytes.

Pure Python, numpy and pyarrow: Spark code calls this from Arrow UDFs; it never imports
pyspark.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from udfs.records import FIELD_SEPARATOR
from udfs.scripts import encode
from udfs.shingles import (
    CACHED_POWERS,
    SPACE,
    _char_ngram_texts,
    _code_point_offsets,
    _exclusive_cumsum,
    _utf8,
    normalise_for_dedup,
    span_hashes64,
)

SKETCH_SIZE = 128
VERSION = 1
SHORT = 1
CHAR_TOKENS = 2
COMPLETE = 4
_HEADER = struct.Struct("<BI")
_FIELD = struct.Struct("<B8sH")
_MAX_SKETCH = (1 << 16) - 1
# Records are fingerprinted in groups of about this many UTF-8 bytes: bounds the memory of one
# pass (a few dozen bytes per byte) and keeps within the cached hash power tables.
_GROUP_BYTES = CACHED_POWERS - 1


class FieldPrint(NamedTuple):
    """One field of a decoded fingerprint."""

    short: bool  # fewer tokens than the shingle size: compared by digest only
    char_tokens: bool  # tokens are characters (script written without spaces)
    complete: bool  # the sketch holds every distinct gram hash of the field
    digest: bytes  # blake2b(normal form, digest_size=8)
    sketch: np.ndarray  # uint64, sorted, distinct; empty for short fields


# --- fields ---------------------------------------------------------------------------------


def split_fields(dedup_text: str | None) -> list[str]:
    """The fields of a ``dedup_text``, each in the dedup normal form, empty ones dropped.

    Split before normalising: the normal form reads the separator as whitespace.
    """
    if not dedup_text:
        return []
    fields = (normalise_for_dedup(part) for part in dedup_text.split(FIELD_SEPARATOR))
    return [field for field in fields if field]


def _char_grams(text: str, n: int = 5) -> set[str]:
    """Character n-grams of a text; a non-empty text shorter than n is its only gram."""
    if len(text) < n:
        return {text} if text else set()
    return {text[k : k + n] for k in range(len(text) - n + 1)}


def field_jaccard(a: str, b: str) -> float:
    """Exact Jaccard of the character 5-gram sets of two fields (normalised here again, which
    changes nothing for normalised fields): the plain definition the sketches estimate.

    Two empty fields are identical (1.0).
    """
    grams_a = _char_grams(normalise_for_dedup(a))
    grams_b = _char_grams(normalise_for_dedup(b))
    union = len(grams_a | grams_b)
    return len(grams_a & grams_b) / union if union else 1.0


# --- fingerprints ---------------------------------------------------------------------------


def _bottom_k(
    hashes: np.ndarray, owners: np.ndarray, size: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per owner, the k smallest distinct hashes: (sketches concatenated in owner order,
    sketch length per owner, distinct hashes per owner)."""
    # By hash, then stably by owner: twice as fast as lexsort, and numpy radix-sorts owners
    # that fit 16 bits (a group rarely holds more fields).
    order = np.argsort(hashes)
    by_owner = owners[order].astype(np.uint16 if size <= 1 << 16 else np.int64)
    order = order[np.argsort(by_owner, kind="stable")]
    hashes, owners = hashes[order], owners[order]
    distinct = np.ones(len(hashes), dtype=bool)
    distinct[1:] = (hashes[1:] != hashes[:-1]) | (owners[1:] != owners[:-1])
    hashes, owners = hashes[distinct], owners[distinct]
    counts = np.bincount(owners, minlength=size)
    rank = np.arange(len(owners)) - _exclusive_cumsum(counts)[owners]
    keep = rank < k
    return hashes[keep], np.minimum(counts, k), counts


def _token_counts(code_points: np.ndarray, lengths: np.ndarray, by_chars: np.ndarray) -> np.ndarray:
    """Tokens per normalised field: code points, or words (single spaces between them)."""
    field_starts = _exclusive_cumsum(lengths)
    spaces = np.flatnonzero(code_points == SPACE)
    owners = np.searchsorted(field_starts, spaces, side="right") - 1
    words = np.bincount(owners, minlength=len(lengths)) + 1
    return np.where(by_chars, lengths, words)


def _fingerprint_fields(
    fields: list[str], word_ngram: int, char_ngram: int, sketch_size: int
) -> list[bytes]:
    """The serialised fields (see the module docstring), vectorised over all of them."""
    if not fields:
        return []
    lengths, code_points, joined = encode(fields)
    by_chars = _char_ngram_texts(lengths, code_points)
    tokens = _token_counts(code_points, lengths, by_chars)
    short = tokens < np.where(by_chars, char_ngram, word_ngram)
    # Character n-grams of the fields that are not short (those have >= n code points).
    gram_counts = np.where(short, 0, np.maximum(lengths - char_ngram + 1, 0))
    owners = np.repeat(np.arange(len(fields)), gram_counts)
    rank = np.arange(len(owners)) - _exclusive_cumsum(gram_counts)[owners]
    first = _exclusive_cumsum(lengths)[owners] + rank
    byte_offsets = _code_point_offsets(code_points)
    data = np.frombuffer(_utf8(joined), dtype=np.uint8)
    hashes = span_hashes64(data, byte_offsets[first], byte_offsets[first + char_ngram])
    sketches, sketch_lengths, distinct = _bottom_k(hashes, owners, len(fields), sketch_size)
    sketch_bytes = sketches.astype("<u8").tobytes()
    sketch_offsets = _exclusive_cumsum(sketch_lengths) * 8
    flags = (
        short * SHORT + by_chars * CHAR_TOKENS + (sketch_lengths == distinct) * COMPLETE
    ).tolist()
    serialised = []
    for i, field in enumerate(fields):
        digest = hashlib.blake2b(_utf8(field), digest_size=8).digest()
        header = _FIELD.pack(flags[i], digest, int(sketch_lengths[i]))
        serialised.append(header + sketch_bytes[sketch_offsets[i] : sketch_offsets[i + 1]])
    return serialised


def _check_sizes(word_ngram: int, char_ngram: int, sketch_size: int) -> None:
    if word_ngram < 1 or char_ngram < 1:
        raise ValueError(f"n-gram sizes must be positive, got {word_ngram}, {char_ngram}")
    if not 1 <= sketch_size <= _MAX_SKETCH:
        raise ValueError(f"sketch_size must be in [1, {_MAX_SKETCH}], got {sketch_size}")


def _groups(records: list[list[str]]) -> list[list[int]]:
    """Record indices in groups of at most _GROUP_BYTES UTF-8 bytes (4 per code point at
    most), so hashing uses the cached power tables; a larger record is a group of its own."""
    groups: list[list[int]] = [[]]
    size = 0
    for i, fields in enumerate(records):
        record_size = sum(len(field) for field in fields)  # code points: at most the bytes
        if groups[-1] and size + record_size > _GROUP_BYTES // 4:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += record_size
    return groups


def _fingerprint_many(
    texts: Sequence[str | None], word_ngram: int, char_ngram: int, sketch_size: int
) -> list[bytes | None]:
    """Fingerprints of many texts (None for None), hashing whole groups at once."""
    _check_sizes(word_ngram, char_ngram, sketch_size)
    records = [split_fields(text) for text in texts]
    result: list[bytes | None] = [None] * len(texts)
    for group in _groups(records):
        fields = [field for i in group for field in records[i]]
        serialised = iter(_fingerprint_fields(fields, word_ngram, char_ngram, sketch_size))
        for i in group:
            if texts[i] is None:
                continue
            parts = [next(serialised) for _ in records[i]]
            result[i] = _HEADER.pack(VERSION, len(parts)) + b"".join(parts)
    return result


def fingerprint(
    dedup_text: str | None,
    word_ngram: int = 5,
    char_ngram: int = 5,
    sketch_size: int = SKETCH_SIZE,
) -> bytes:
    """The compact fingerprint of one record (format in the module docstring). A None or
    empty text has no fields (and is still a fingerprint: see :func:`records_match`)."""
    result = _fingerprint_many([dedup_text], word_ngram, char_ngram, sketch_size)[0]
    return result if result is not None else _HEADER.pack(VERSION, 0)


def fingerprints(
    texts: pa.Array,
    word_ngram: int = 5,
    char_ngram: int = 5,
    sketch_size: int = SKETCH_SIZE,
) -> pa.Array:
    """:func:`fingerprint` of a string array, as a binary array; null in, null out."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    values = texts.to_pylist()
    return pa.array(
        _fingerprint_many(values, word_ngram, char_ngram, sketch_size), type=pa.binary()
    )


def decode(fingerprint_bytes: bytes) -> list[FieldPrint]:
    """The fields of a fingerprint; ValueError when it is not one this version wrote."""
    view = memoryview(fingerprint_bytes)
    if len(view) < _HEADER.size:
        raise ValueError("fingerprint too short")
    version, count = _HEADER.unpack_from(view)
    if version != VERSION:
        raise ValueError(f"unknown fingerprint version {version}")
    offset = _HEADER.size
    fields = []
    for _ in range(count):
        if offset + _FIELD.size > len(view):
            raise ValueError("truncated fingerprint")
        flags, digest, length = _FIELD.unpack_from(view, offset)
        offset += _FIELD.size
        if offset + 8 * length > len(view):
            raise ValueError("truncated fingerprint")
        sketch = np.frombuffer(view, dtype="<u8", count=length, offset=offset)
        offset += 8 * length
        fields.append(
            FieldPrint(
                bool(flags & SHORT),
                bool(flags & CHAR_TOKENS),
                bool(flags & COMPLETE),
                digest,
                sketch,
            )
        )
    if offset != len(view):
        raise ValueError("trailing bytes after the fingerprint")
    return fields


# --- matching -------------------------------------------------------------------------------


def sketch_jaccard(a: FieldPrint, b: FieldPrint) -> float:
    """Jaccard of two fields' gram sets from their sketches: exact when both are complete,
    otherwise the bottom-k estimate.

    With k the shortest incomplete sketch, the k smallest of the union of the sketches are
    the k smallest of the union of the sets, and each of them is in both sets exactly when it
    is in both sketches; the estimate is the share of those k that are.
    """
    # Both sketches are sorted and distinct: one sort of both puts each common hash twice,
    # side by side (cheaper than intersect1d plus union1d for a few hundred values).
    merged = np.concatenate([a.sketch, b.sketch])
    merged.sort()
    repeated = merged[1:] == merged[:-1]
    common = merged[1:][repeated]
    if a.complete and b.complete:
        union = len(merged) - len(common)
        return len(common) / union if union else 1.0
    k = len(a.sketch) if not a.complete else len(b.sketch)
    if not a.complete and not b.complete:
        k = min(len(a.sketch), len(b.sketch))
    union = merged[np.concatenate([[True], ~repeated])][:k]
    if not len(union):
        return 0.0
    return int(np.searchsorted(common, union[-1], side="right")) / len(union)


def _fields_match(a: FieldPrint, b: FieldPrint, threshold: float) -> bool:
    if a.digest == b.digest:
        return True
    if a.short or b.short:
        return False
    if a.complete and b.complete:
        smaller, larger = sorted((len(a.sketch), len(b.sketch)))
        if smaller < threshold * larger:  # the Jaccard is at most smaller / larger
            return False
    return sketch_jaccard(a, b) >= threshold


def _decoded_match(a: list[FieldPrint], b: list[FieldPrint], whole: bool, threshold: float) -> bool:
    """Record match of decoded fingerprints (see :func:`records_match`)."""
    if len(a) <= 1 and len(b) <= 1:
        return whole
    if not a or not b:
        return False
    matched: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) not in matched:
            matched[i, j] = _fields_match(a[i], b[j], threshold)
        return matched[i, j]

    return all(any(match(i, j) for j in range(len(b))) for i in range(len(a))) and all(
        any(match(i, j) for i in range(len(a))) for j in range(len(b))
    )


def records_match(a: bytes | None, b: bytes | None, whole: bool, threshold: float) -> bool:
    """Whether a candidate pair is a duplicate, field by field.

    Two records of at most one field each keep the whole-record verdict ``whole`` (a one-field
    record is judged as before). Otherwise every field of each must match some field of the
    other; a record without fields then matches nothing. A missing fingerprint (None: a null
    text, or an edge whose record was not fingerprinted) is never verified: False.
    """
    if a is None or b is None:
        return False
    return _decoded_match(decode(a), decode(b), bool(whole), threshold)


def fields_match_batch(a: pa.Array, b: pa.Array, whole: pa.Array, threshold: float) -> pa.Array:
    """:func:`records_match` element-wise over binary, binary and bool arrays; any null gives
    False. A record's fingerprint is decoded once per batch, however many edges it is in."""
    arrays = [x.combine_chunks() if isinstance(x, pa.ChunkedArray) else x for x in (a, b, whole)]
    if not len(arrays[0]) == len(arrays[1]) == len(arrays[2]):
        raise ValueError("fields_match_batch needs arrays of one length")
    decoded: dict[bytes, list[FieldPrint]] = {}

    def fields_of(value: bytes) -> list[FieldPrint]:
        if value not in decoded:
            decoded[value] = decode(value)
        return decoded[value]

    result = [
        left is not None
        and right is not None
        and verdict is not None
        and _decoded_match(fields_of(left), fields_of(right), verdict, threshold)
        for left, right, verdict in zip(*(x.to_pylist() for x in arrays), strict=True)
    ]
    return pa.array(result, type=pa.bool_())
