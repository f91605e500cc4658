"""N-gram decontamination: find train texts that contain a long-enough piece of a held-out
record or benchmark item, vectorised with numpy (no pyspark here: the Spark stage wraps it).

Both sides go through :func:`decontamination_form`, the dedup normal form with punctuation and
symbols turned into spaces, so that re-cased, re-spaced or re-punctuated copies still match.
A reference text is cut into tokens (words, or characters for scripts written without spaces,
as dedup's shingles are) and contributes the 64-bit hashes of its n-grams; a text too short to
have one n-gram, but long enough not to match by chance (``min_tokens``), contributes the hash
of its whole normal form instead, tagged with its token count m. A train text is contaminated
when one of its n-grams, or one of its runs of m tokens, hashes to an entry of the index.

The index is a few sorted numpy arrays (one group of hashes per tagged length), so it pickles
small and can be broadcast to executors; lookups are one ``np.searchsorted`` per length over
every n-gram of a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from udfs.ngram_hashes import (
    FULL_NGRAM,
    MAX_FILTER_BITS,
    ItemNgrams,
    NgramSettings,
    _distinct,
    _text_groups,
    _tokens,
    _train_spans,
    decontamination_form,
    decontamination_forms,
    item_ngrams,
    train_ngrams,
)
from udfs.shingles import span_hashes64

__all__ = [
    "FULL_NGRAM",
    "ItemNgrams",
    "Match",
    "NgramIndex",
    "NgramSettings",
    "decontamination_form",
    "decontamination_forms",
    "item_ngrams",
    "train_ngrams",
]


# --- the index ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """Why a train text is contaminated: the first n-gram of it found in the index."""

    item: int  # the item number given to the index
    ngram: str  # the matching n-gram (or short text) as it reads in the train text's normal form


class NgramIndex:
    """The reference n-grams, as sorted arrays grouped by length tag: compact and picklable.

    ``_lengths[g]`` is the tag of group g, whose rows are ``_bounds[g]:_bounds[g + 1]`` of
    ``_hashes`` (sorted within the group) and ``_items``.
    """

    settings: NgramSettings

    def __init__(
        self,
        settings: NgramSettings,
        lengths: np.ndarray,
        bounds: np.ndarray,
        hashes: np.ndarray,
        items: np.ndarray,
    ) -> None:
        """Use :meth:`from_arrays` or :meth:`build`; this takes the arrays as stored."""
        self.settings = settings
        self._lengths = lengths
        self._bounds = bounds
        self._hashes = hashes
        self._items = items
        self._filters: dict[int, tuple[np.ndarray, np.uint64]] = {}

    def __getstate__(self) -> dict[str, object]:
        """The arrays only: lookup filters are rebuilt where they are used (executors)."""
        return {**self.__dict__, "_filters": {}}

    @classmethod
    def from_arrays(
        cls,
        hashes: np.ndarray,
        lengths: np.ndarray,
        items: np.ndarray,
        settings: NgramSettings,
    ) -> NgramIndex:
        """An index of rows already aggregated (one per (hash, length), with the item to
        report and frequent n-grams removed), as a Spark aggregation produces them.

        Should a (hash, length) repeat anyway, the row with the smallest item is kept.
        """
        hashes = np.asarray(hashes, dtype=np.uint64)
        lengths = np.asarray(lengths, dtype=np.int32)
        items = np.asarray(items, dtype=np.int64)
        if not len(hashes) == len(lengths) == len(items):
            raise ValueError("hashes, lengths and items must have the same length")
        if len(lengths) and lengths.min() < 0:
            raise ValueError("lengths must be 0 (full n-gram) or a short text's token count")
        order = np.lexsort((items, hashes, lengths))
        lengths, hashes, items = lengths[order], hashes[order], items[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (lengths[1:] != lengths[:-1]) | (hashes[1:] != hashes[:-1])
        lengths, hashes, items = lengths[first], hashes[first], items[first]
        tags, starts = np.unique(lengths, return_index=True)
        bounds = np.append(starts, len(lengths)).astype(np.int64)
        return cls(settings, tags.astype(np.int32), bounds, hashes, items)

    @classmethod
    def build(
        cls,
        texts: Sequence[str | None],
        items: Sequence[int],
        settings: NgramSettings,
        max_item_frequency: int,
    ) -> NgramIndex:
        """An index of reference texts in one process (tests, small benchmarks).

        ``items[i]`` is the item of ``texts[i]`` (an item may have several texts). A (hash,
        length) found in more than ``max_item_frequency`` distinct items is boilerplate
        ("answer the following question ..."), not contamination, and is left out; each
        remaining one reports the smallest item it was found in.
        """
        if len(items) != len(texts):
            raise ValueError("texts and items must have the same length")
        ngrams = item_ngrams(texts, settings)
        owner_items = np.asarray(items, dtype=np.int64)[ngrams.owners]
        rows = _distinct(ngrams.lengths, ngrams.hashes, owner_items)
        lengths, hashes = ngrams.lengths[rows], ngrams.hashes[rows]
        owner_items = owner_items[rows]
        starts = np.ones(len(rows), dtype=bool)
        starts[1:] = (lengths[1:] != lengths[:-1]) | (hashes[1:] != hashes[:-1])
        first = np.flatnonzero(starts)
        frequency = np.diff(np.append(first, len(rows)))
        kept = first[frequency <= max_item_frequency]
        return cls.from_arrays(hashes[kept], lengths[kept], owner_items[kept], settings)

    def __len__(self) -> int:
        """Number of (hash, length) entries."""
        return len(self._hashes)

    def __repr__(self) -> str:
        return f"NgramIndex({len(self)} entries, lengths {self._lengths.tolist()}, {self.settings})"

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hashes, lengths, items) of every entry, sorted by length then hash."""
        lengths = np.repeat(self._lengths, np.diff(self._bounds))
        return self._hashes.copy(), lengths, self._items.copy()

    def _filter(self, group: int) -> tuple[np.ndarray, np.uint64]:
        """(table over the top bits of a hash, shift): whether any key of the group has them.

        Nearly every probe misses; one cached gather rejects most of them, ~4 times faster
        than ``np.searchsorted``, which then only sees the few left.
        """
        if group not in self._filters:
            size = int(self._bounds[group + 1] - self._bounds[group])
            bits = min(max(int(np.ceil(np.log2(8 * size))), 10), MAX_FILTER_BITS)
            shift = np.uint64(64 - bits)
            table = np.zeros(1 << bits, dtype=bool)
            table[self._hashes[self._bounds[group] : self._bounds[group + 1]] >> shift] = True
            self._filters[group] = (table, shift)
        return self._filters[group]

    def _lookup(self, group: int, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions of the hashes found in length group ``group``, their items)."""
        low, high = self._bounds[group], self._bounds[group + 1]
        keys = self._hashes[low:high]
        table, shift = self._filter(group)
        candidates = np.flatnonzero(table[hashes >> shift])
        position = np.minimum(np.searchsorted(keys, hashes[candidates]), len(keys) - 1)
        found = np.flatnonzero(keys[position] == hashes[candidates])
        return candidates[found], self._items[low + position[found]]

    def _matches_of_group(self, normalised: Sequence[str]) -> dict[int, Match]:
        """First match of each text of a group that has one, by index in the group."""
        tokens = _tokens(normalised, train=True)
        found: list[tuple[np.ndarray, ...]] = []
        for group, tag in enumerate(self._lengths.tolist()):
            if self._bounds[group] == self._bounds[group + 1]:
                continue
            starts, ends, owners = _train_spans(tokens, tag, self.settings)
            hits, items = self._lookup(group, span_hashes64(tokens.data, starts, ends))
            kind = np.full(len(hits), tag != FULL_NGRAM, dtype=np.int8)
            found.append((owners[hits], starts[hits], kind, items, ends[hits]))
        if not found:
            return {}
        columns = (np.concatenate(column) for column in zip(*found, strict=True))
        owners, starts, kinds, items, ends = columns
        # First by start, then full n-grams before short texts, then smallest item, shortest.
        order = np.lexsort((ends, items, kinds, starts, owners))
        first = order[np.flatnonzero(np.diff(owners[order], prepend=-1))]
        data = tokens.data
        return {
            owner: Match(item, bytes(data[start:end]).decode("utf-8", "surrogatepass"))
            for owner, item, start, end in zip(
                owners[first].tolist(),
                items[first].tolist(),
                starts[first].tolist(),
                ends[first].tolist(),
                strict=True,
            )
        }

    def first_matches(self, texts: Sequence[str | None]) -> list[Match | None]:
        """Per train text (None counts as empty): the match whose n-gram starts first in its
        normal form (ties: full n-grams before short texts, then the smallest item, then the
        shorter), or None when it is clean.

        Every n-gram of the batch (and every run of m tokens, for the tags m in the index) is
        hashed at once and looked up with ``np.searchsorted``; no Python loop per n-gram.
        """
        normalised = decontamination_forms(texts)
        result: list[Match | None] = [None] * len(normalised)
        if not len(self):
            return result
        for group in _text_groups(normalised):
            for index, match in self._matches_of_group(normalised[group]).items():
                result[group.start + index] = match
        return result
