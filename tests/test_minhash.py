"""MinHash signatures equal datasketch's bit for bit; shingles, hashes and band keys behave."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash, MinHashLSH
from datasketch.lsh import _optimal_param

import udfs.minhash as minhash_module
import udfs.shingles as shingles_module
from tests.conftest import ROOT
from tests.dedup_texts import ENGLISH, ODD, documents, ud_texts
from udfs.minhash import (
    MAX_HASH,
    MINHASH_TYPE,
    MinHasher,
    band_keys,
    estimated_jaccard,
    exact_hash,
    has_shingles,
    lsh_params,
    minhash_batch,
    minhasher,
    to_datasketch,
    to_int32,
)
from udfs.shingles import (
    shingle_hash,
    shingles,
)


def reference(text: str | None, hasher: MinHasher) -> np.ndarray:
    """datasketch's MinHash of the text's shingles, built the documented way."""
    sketch = MinHash(
        num_perm=hasher.num_perm, seed=hasher.seed, hashfunc=shingle_hash, scheme=hasher.scheme
    )
    sketch.update_batch(shingles(text, hasher.word_ngram, hasher.char_ngram))
    return sketch.hashvalues


def assert_matches_datasketch(texts: list[str | None], hasher: MinHasher) -> None:
    signatures = hasher.signatures(texts)
    assert signatures.shape == (len(texts), hasher.num_perm)
    assert signatures.dtype == np.uint32
    for text, row in zip(texts, signatures, strict=True):
        np.testing.assert_array_equal(row, reference(text, hasher), err_msg=repr(text))


# --- signatures equal datasketch's --------------------------------------------------------


@pytest.mark.parametrize(
    ("num_perm", "seed", "scheme"),
    [
        (128, 1, "affine32"),
        (256, 42, "affine32"),
        (16, 0, "affine32"),
        (128, 1, "legacy"),
        (64, 7, "legacy"),
    ],
)
def test_signatures_equal_datasketch(num_perm: int, seed: int, scheme: str) -> None:
    assert_matches_datasketch(ENGLISH + ODD, MinHasher(num_perm, seed, scheme=scheme))


def test_default_datasketch_minhash_is_what_we_match() -> None:
    # No scheme given, as a user would write it: datasketch's default scheme is ours.
    text = ENGLISH[0]
    sketch = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash)
    sketch.update_batch(shingles(text))
    np.testing.assert_array_equal(sketch.hashvalues, minhasher().signatures([text])[0])


@pytest.mark.parametrize(("word_ngram", "char_ngram"), [(5, 5), (3, 2), (1, 1), (8, 10)])
def test_ngram_sizes_match_datasketch(word_ngram: int, char_ngram: int) -> None:
    texts = ENGLISH + ODD + [text for texts in ud_texts(5).values() for text in texts]
    assert_matches_datasketch(texts, MinHasher(64, 3, word_ngram, char_ngram))


def test_multilingual_sentences_match_datasketch() -> None:
    texts = ud_texts(30)
    assert len(texts) == 24
    for scheme in ("affine32", "legacy"):
        hasher = minhasher(128, 1, scheme=scheme)
        for language, sentences in texts.items():
            batch = sentences + documents(sentences, 10, seed=len(language))
            assert_matches_datasketch(batch, hasher)


def test_a_large_mixed_batch_matches_datasketch() -> None:
    sentences = [text for texts in ud_texts().values() for text in texts]
    batch: list[str | None] = documents(sentences, 1990, seed=7) + ODD[:10]
    random.Random(1).shuffle(batch)
    hasher = minhasher(128, 1)
    assert_matches_datasketch(batch, hasher)
    np.testing.assert_array_equal(
        hasher.signatures(batch[:100]), hasher.signatures(batch)[:100], "batch-independent"
    )


def test_chunk_and_group_boundaries_do_not_change_signatures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sentences = [text for texts in ud_texts(40).values() for text in texts]
    batch = [*ODD, *documents(sentences, 300, seed=3), "x " * 2000, *ODD]
    hasher = MinHasher(32, 5)
    expected = hasher.signatures(batch)
    # Texts now straddle permutation chunks and the batch is cut into many groups.
    monkeypatch.setattr(minhash_module, "CHUNK_SHINGLES", 7)
    monkeypatch.setattr(minhash_module, "GROUP_CODE_POINTS", 50)
    np.testing.assert_array_equal(hasher.signatures(batch), expected)


def test_texts_without_shingles_get_the_empty_signature() -> None:
    signatures = minhasher().signatures([None, "", " \n\t\u3000 ", "x"])
    empty = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash).hashvalues
    for row in signatures[:3]:
        np.testing.assert_array_equal(row, empty)
    assert (signatures[:3] == MAX_HASH).all()
    assert has_shingles(signatures).tolist() == [False, False, False, True]
    assert minhasher().signatures([]).shape == (0, 128)


def test_variants_of_one_text_share_a_signature() -> None:
    signatures = minhasher().signatures(
        ["Hello World, this is FINE text", "ｈｅｌｌｏ  world,\nthis is ﬁne   TEXT "]
    )
    np.testing.assert_array_equal(signatures[0], signatures[1])


def test_exact_hash() -> None:
    hashes = exact_hash(
        [
            "Hello world",
            "  HELLO\n\tWorld ",
            "ｈｅｌｌｏ　ｗｏｒｌｄ",
            "Hello, world",
            "Hello world!",
            None,
            "",
            " \n ",
        ]
    )
    assert hashes[0] == hashes[1] == hashes[2]
    assert len({hashes[0], hashes[3], hashes[4]}) == 3
    assert hashes[5:] == [None, None, None]
    assert len(hashes[0]) == 32 and int(hashes[0], 16) >= 0


# --- LSH ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "num_perm", "weights"),
    [(0.7, 128, (0.5, 0.5)), (0.8, 256, (0.5, 0.5)), (0.5, 64, (0.3, 0.7))],
)
def test_lsh_params_are_datasketchs(
    threshold: float, num_perm: int, weights: tuple[float, float]
) -> None:
    params = lsh_params(threshold, num_perm, *weights)
    assert params == _optimal_param(threshold, num_perm, *weights)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    assert params == (lsh.b, lsh.r)


def test_band_keys() -> None:
    bands, rows = lsh_params(0.7, 128)
    signatures = minhasher().signatures([*ENGLISH, ENGLISH[0], None])
    keys = band_keys(signatures, bands, rows)
    assert keys.shape == (len(signatures), bands) and keys.dtype == np.int64
    np.testing.assert_array_equal(keys, band_keys(signatures.copy(), bands, rows))
    np.testing.assert_array_equal(keys, band_keys(to_int32(signatures), bands, rows))
    np.testing.assert_array_equal(keys[0], keys[-2])  # the same text
    for i in range(len(ENGLISH)):
        for j in range(len(ENGLISH)):
            for band in range(bands):
                same = np.array_equal(
                    signatures[i, band * rows : (band + 1) * rows],
                    signatures[j, band * rows : (band + 1) * rows],
                )
                assert (keys[i, band] == keys[j, band]) == same
    assert (keys[0] != keys[2]).all()
    # The same values in another band index give another key.
    repeated = np.tile(np.arange(rows, dtype=np.uint32), (1, bands))
    assert len(set(band_keys(repeated, bands, rows)[0].tolist())) == bands
    assert not has_shingles(signatures)[-1]
    with pytest.raises(ValueError):
        band_keys(signatures, bands + 1, rows + 1)


def test_near_duplicates_share_a_band_and_others_do_not() -> None:
    base = " ".join(ud_texts()["en"][:8])
    edited = base.replace(" the ", " a ", 1)
    other = " ".join(ud_texts()["en"][20:28])
    signatures = minhasher().signatures([base, edited, other])
    keys = band_keys(signatures, *lsh_params(0.7, 128))
    assert (keys[0] == keys[1]).any()
    assert not (keys[0] == keys[2]).any()
    assert estimated_jaccard(signatures[0], signatures[1]) > 0.7


# --- datasketch and Spark forms -----------------------------------------------------------


def test_int32_round_trip_into_datasketch_lsh() -> None:
    texts = [" ".join(ud_texts()["en"][k : k + 8]) for k in range(0, 200, 8)]
    texts.append(texts[3].replace(" the ", " a ", 1))
    signatures = minhasher().signatures(texts)
    stored = to_int32(signatures)
    assert stored.dtype == np.int32
    spark_row = [-1, -(1 << 31), 5]  # what Spark's array<int> holds for these uint32 values
    assert to_int32(np.array([MAX_HASH, 1 << 31, 5], dtype=np.uint32)).tolist() == spark_row
    assert to_datasketch(spark_row).hashvalues.tolist() == [MAX_HASH, 1 << 31, 5]
    np.testing.assert_array_equal(stored.view(np.uint32), signatures)

    lsh = MinHashLSH(threshold=0.7, num_perm=128)
    for key, row in enumerate(stored[:-1]):
        lsh.insert(key, to_datasketch(row.tolist(), seed=1))
    query = to_datasketch(stored[-1], seed=1)
    assert 3 in lsh.query(query)
    np.testing.assert_array_equal(query.hashvalues, reference(texts[-1], minhasher()))
    assert query.jaccard(to_datasketch(stored[3])) == estimated_jaccard(stored[3], signatures[-1])

    # Loaded sketches keep working with the same hash function.
    sketch = minhasher().to_datasketch(stored[0])
    sketch.update(b"one more shingle")
    assert estimated_jaccard(sketch.hashvalues, signatures[0]) > 0.9


def test_legacy_signatures_load_into_datasketch() -> None:
    hasher = minhasher(64, 9, scheme="legacy")
    signature = hasher.signatures([ENGLISH[1]])[0]
    sketch = hasher.to_datasketch(to_int32(signature))
    assert sketch.scheme == "legacy" and sketch.hashvalues.dtype == np.uint64
    np.testing.assert_array_equal(sketch.hashvalues, reference(ENGLISH[1], hasher))


def test_estimated_jaccard() -> None:
    a = np.array([1, 2, 3, 4], dtype=np.uint32)
    assert estimated_jaccard(a, np.array([1, 2, 0, 0], dtype=np.uint32)) == 0.5
    big = np.array([MAX_HASH, 5], dtype=np.uint64)
    assert estimated_jaccard(big, to_int32(big)) == 1.0
    with pytest.raises(ValueError):
        estimated_jaccard(a, a[:2])


def test_minhash_batch() -> None:
    texts = [ENGLISH[0], None, "", " ", ENGLISH[3], "ＨＥＬＬＯ"]
    hasher = minhasher()
    bands, rows = lsh_params(0.7, 128)
    batch = minhash_batch(pa.array(texts, type=pa.string()), hasher, bands, rows)
    assert batch.type == MINHASH_TYPE
    assert len(batch) == len(texts) and batch.null_count == 0
    records = batch.to_pylist()
    assert [r["content_hash"] for r in records] == exact_hash(texts)
    signatures = hasher.signatures(texts)
    keys = band_keys(signatures, bands, rows)
    for i, record in enumerate(records):
        if i in (1, 2, 3):
            assert record == {"content_hash": None, "signature": None, "band_keys": None}
        else:
            assert record["signature"] == to_int32(signatures[i]).tolist()
            assert record["band_keys"] == keys[i].tolist()
    chunked = pa.chunked_array([texts[:2], texts[2:]], type=pa.large_string())
    assert minhash_batch(chunked, hasher, bands, rows).equals(batch)
    empty = minhash_batch(pa.array([None, None], type=pa.string()), hasher, bands, rows)
    assert empty.to_pylist()[0]["signature"] is None and empty.type == MINHASH_TYPE


def test_minhasher_is_cached_and_frozen() -> None:
    assert minhasher(128, 1) is minhasher(128, 1)
    assert minhasher(128, 1) == MinHasher(128, 1)
    with pytest.raises(ValueError):
        MinHasher(0)
    with pytest.raises(ValueError):
        MinHasher(scheme="affine64")  # type: ignore[arg-type]


def test_module_never_imports_pyspark() -> None:
    code = "import sys, udfs.minhash; assert 'pyspark' not in sys.modules, 'pyspark imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    for module in (minhash_module, shingles_module):
        source = Path(module.__file__).read_text(encoding="utf-8")
        assert "pyspark" not in source
