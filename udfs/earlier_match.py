"""Whether a record of tonight's load is a near-duplicate of one an earlier load committed.

The earlier load's index keeps each record's text, not its signature (a 256-value signature
is wider than most texts): pairs that share an LSH band are few, so their signatures and field
fingerprints are made here, for those pairs only, with the same settings as the in-load
dedup, and judged by the same rule (``match: whole``: the signatures' agreement; ``fields``:
field by field, ``udfs.field_match``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from udfs.field_match import fields_match_batch, fingerprints
from udfs.minhash import MinHasher


def _strings(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def same_records(
    new_texts: pa.Array,
    old_texts: pa.Array,
    hasher: MinHasher,
    threshold: float,
    by_fields: bool,
) -> pa.Array:
    """Element-wise: the pair is one record by the dedup rule. A null or empty text on
    either side is never a match (two empty signatures agree everywhere)."""
    new, old = _strings(new_texts), _strings(old_texts)
    if len(new) != len(old):
        raise ValueError("same_records needs arrays of one length")
    new_values, old_values = new.to_pylist(), old.to_pylist()
    present = np.array(
        [bool(a) and bool(b) for a, b in zip(new_values, old_values, strict=True)], dtype=bool
    )
    agreement = (hasher.signatures(new_values) == hasher.signatures(old_values)).mean(axis=1)
    whole = present & (agreement >= threshold)
    if not by_fields:
        return pa.array(whole, type=pa.bool_())
    word, char = hasher.word_ngram, hasher.char_ngram
    verdict = fields_match_batch(
        fingerprints(new, word, char), fingerprints(old, word, char), pa.array(whole), threshold
    )
    return pa.array(present & np.asarray(verdict.to_numpy(zero_copy_only=False)), type=pa.bool_())
