"""Field-aware verification of dedup candidate pairs, on QA-like records built from real UD
sentences of 24 languages (no Spark)."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from udfs import field_match
from udfs.field_match import (
    SKETCH_SIZE,
    decode,
    field_jaccard,
    fields_match_batch,
    fingerprint,
    fingerprints,
    records_match,
    sketch_jaccard,
    split_fields,
)
from udfs.records import FIELD_SEPARATOR
from udfs.shingles import MAX_HASH, normalise_for_dedup, shingle_hash

UD = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud"
CHAR_LANGUAGES = {"zh", "ja", "th"}
THRESHOLD = 0.7


@lru_cache(maxsize=1)
def _sentences() -> dict[str, list[str]]:
    if not UD.exists():
        pytest.skip(f"shared UD data not found at {UD}")
    result = {}
    for path in sorted(UD.glob("*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            result[path.stem] = [json.loads(line)["text"] for line in lines]
    return result


@pytest.fixture(scope="module")
def sentences() -> dict[str, list[str]]:
    return _sentences()


def _long_enough(language: str, sentence: str) -> bool:
    """A question long enough that one typo keeps its character Jaccard above THRESHOLD."""
    if language in CHAR_LANGUAGES:
        return len(sentence) >= 40
    return len(sentence) >= 60 and len(sentence.split()) >= 8


def _answer(language: str, sentence: str) -> str:
    """A few words (or characters) of a sentence: short for dedup (< 5 tokens)."""
    if language in CHAR_LANGUAGES:
        return sentence.replace(" ", "")[:3]
    return " ".join(sentence.split()[:3])


def _typo(sentence: str, rng: random.Random) -> str:
    """One letter in the middle of a middle word replaced by another letter of the text."""
    normal = normalise_for_dedup(sentence)
    letters = sorted({c for c in normal if c.isalpha()})
    words = normal.split(" ")
    candidates = [i for i, word in enumerate(words) if len(word) >= 3 and word.isalpha()]
    if len(words) == 1 or not candidates:  # a script without spaces: the text is one "word"
        candidates = [0]
    index = min(candidates, key=lambda i: abs(i - len(words) // 2))
    word = words[index]
    middle = len(word) // 2
    replacement = rng.choice([c for c in letters if c != word[middle]])
    words[index] = word[:middle] + replacement + word[middle + 1 :]
    return " ".join(words)


def _qa(language: str, seed: int) -> tuple[str, list[str], str, str]:
    """(passage, two distinct long questions, answer, another short answer) of one language."""
    rng = random.Random(f"{language}-{seed}")
    text = _sentences()[language]
    start = rng.randrange(len(text) - 30)
    passage = " ".join(text[start : start + rng.randint(4, 6)])
    rest = [s for s in text[start + 8 :] if _long_enough(language, s)]
    questions = rng.sample(rest, 2)
    answers = [_answer(language, s) for s in text[start : start + 6]]
    answer = answers[0]
    other = next(a for a in answers[1:] if normalise_for_dedup(a) != normalise_for_dedup(answer))
    return passage, questions, answer, other


def _record(*fields: str) -> bytes:
    return fingerprint(FIELD_SEPARATOR.join(fields))


LANGUAGES = sorted(p.stem for p in UD.glob("*.jsonl")) or ["en"]


# --- fields and fingerprints ----------------------------------------------------------------


def test_split_fields_normalises_and_drops_empty_fields() -> None:
    text = f"  Ｆｉｒｓｔ\u00a0FIELD \n{FIELD_SEPARATOR}{FIELD_SEPARATOR}  \t{FIELD_SEPARATOR}a\nb"
    assert split_fields(text) == ["first field", "a b"]
    assert split_fields(None) == []
    assert split_fields("") == []


def test_languages_present() -> None:
    assert {"zh", "ja", "th", "en"} <= set(LANGUAGES)
    assert len(LANGUAGES) == 24


def test_sketch_is_the_shingle_hash_of_every_char_gram(sentences: dict[str, list[str]]) -> None:
    """The vectorised gram hash keeps all 64 bits of the project's shingle hash."""
    for language in ("en", "zh", "hi", "ar"):
        for sentence in sentences[language][:20]:
            field = normalise_for_dedup(sentence)
            if len(field) < 20 or len(field) > 100:
                continue
            (printed,) = decode(fingerprint(sentence))
            assert printed.complete
            grams = {field[k : k + 5].encode() for k in range(len(field) - 4)}
            assert {int(h) & MAX_HASH for h in printed.sketch} == {shingle_hash(g) for g in grams}
            assert len(printed.sketch) == len(grams)
            assert (np.diff(printed.sketch.astype(object)) > 0).all()


def test_shortness_counts_words_or_characters() -> None:
    english_short, english_long, chinese, answer = decode(
        _record(
            "the quick brown fox",
            "the quick brown fox jumps",
            "北京是中国的首都",
            "北京市",
        )
    )
    assert english_short.short and not english_short.char_tokens
    assert not english_long.short and not english_long.char_tokens
    # One "word" when split on spaces, but 8 characters: not short.
    assert not chinese.short and chinese.char_tokens and len(chinese.sketch) == 4
    assert answer.short and answer.char_tokens and len(answer.sketch) == 0


def test_char_scripts_use_char_tokens_for_real_sentences(sentences: dict[str, list[str]]) -> None:
    for language in ("zh", "ja", "th"):
        text = [s for s in sentences[language] if len(s) >= 10][:20]
        # Three letters of the script itself (a sentence may start with Latin letters).
        answers = ["".join(c for c in s if c.isalpha() and c >= "\u0e00")[:3] for s in text]
        printed = decode(_record(*text, *answers))
        assert all(f.char_tokens and not f.short for f in printed[: len(text)])
        assert all(f.char_tokens and f.short for f in printed[len(text) :])


def test_fingerprints_handles_nulls_and_empty_strings() -> None:
    texts = pa.array([None, "", f" {FIELD_SEPARATOR}\t", "a b\x1ec", None], type=pa.string())
    result = fingerprints(texts)
    assert result.type == pa.binary()
    assert result.is_null().to_pylist() == [True, False, False, False, True]
    values = result.to_pylist()
    assert decode(values[1]) == [] and decode(values[2]) == []
    assert len(decode(values[3])) == 2
    assert values[1:4] == [fingerprint(t) for t in ("", f" {FIELD_SEPARATOR}\t", "a b\x1ec")]
    assert fingerprint(None) == values[1]
    assert len(fingerprints(pa.array([], type=pa.string()))) == 0


def test_fingerprints_equal_one_at_a_time_across_groups(
    sentences: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [_qa(language, 0)[0] + FIELD_SEPARATOR + "x" for language in LANGUAGES]
    texts += [None, "", *sentences["zh"][:5]]
    together = fingerprints(pa.array(texts)).to_pylist()
    monkeypatch.setattr(field_match, "_GROUP_BYTES", 2000)  # about one record a group
    assert len(field_match._groups([split_fields(t) for t in texts])) > 10
    grouped = fingerprints(pa.array(texts)).to_pylist()
    single = [None if t is None else fingerprint(t) for t in texts]
    assert together == grouped == single


def test_decode_rejects_what_it_did_not_write() -> None:
    good = _record("a passage of some length", "question here")
    for bad in (b"", b"\x02" + good[1:], good[:-3], good + b"\x00"):
        with pytest.raises(ValueError):
            decode(bad)


def test_lone_surrogates_are_hashed_not_rejected() -> None:
    (printed,) = decode(fingerprint("text with a \ud800 lone surrogate"))
    assert not printed.short and len(printed.sketch) > 0


# --- the Jaccard estimate -------------------------------------------------------------------


def test_sketch_jaccard_is_exact_for_small_fields(sentences: dict[str, list[str]]) -> None:
    rng = random.Random(1)
    checked = 0
    for language in LANGUAGES:
        small = [s for s in sentences[language] if 30 <= len(normalise_for_dedup(s)) <= 130]
        for sentence in small[:8]:
            for other in (_typo(sentence, rng), sentence[: len(sentence) // 2], rng.choice(small)):
                a, b = (decode(fingerprint(t))[0] for t in (sentence, other))
                if a.short or b.short:
                    continue
                assert a.complete and b.complete
                exact = field_jaccard(sentence, other)
                assert sketch_jaccard(a, b) == exact
                checked += 1
    assert checked > 300


def _edited(passage: list[str], rng: random.Random, pool: list[str]) -> str:
    """The passage with a random number of sentences replaced: Jaccards across the range."""
    result = list(passage)
    for index in rng.sample(range(len(result)), rng.randint(0, len(result) - 1)):
        result[index] = rng.choice(pool)
    return " ".join(result)


def test_bottom_k_estimate_is_close_for_long_fields(sentences: dict[str, list[str]]) -> None:
    """The bottom-k estimate has a standard error of sqrt(J(1 - J) / k), 0.044 at J = 0.5
    with k = 128: 0.1 is 2.3 standard errors, so a few pairs in a hundred may miss it."""
    rng = random.Random(2)
    errors = []
    for language in LANGUAGES:
        text = sentences[language]
        for _ in range(12):
            start = rng.randrange(len(text) - 8)
            passage = text[start : start + rng.randint(5, 8)]
            a_text, b_text = " ".join(passage), _edited(passage, rng, text)
            a, b = (decode(fingerprint(t))[0] for t in (a_text, b_text))
            if a.complete or b.complete:
                continue
            assert len(a.sketch) == len(b.sketch) == SKETCH_SIZE
            errors.append(sketch_jaccard(a, b) - field_jaccard(a_text, b_text))
    assert len(errors) > 200
    misses = sum(abs(error) > 0.1 for error in errors)
    assert misses <= 0.02 * len(errors)
    assert max(map(abs, errors)) <= 0.15
    assert statistics.mean(map(abs, errors)) < 0.03
    assert abs(statistics.mean(errors)) < 0.01  # unbiased


def test_field_jaccard_reference() -> None:
    assert field_jaccard("abcdef", "abcdef") == 1.0
    assert field_jaccard("abcdef", "ABCDEF  ") == 1.0  # normalised
    assert field_jaccard("abcdef", "bcdefg") == pytest.approx(1 / 3)
    assert field_jaccard("abcde", "fghij") == 0.0
    assert field_jaccard("", "") == 1.0


# --- record matching ------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_qa_records(language: str) -> None:
    passage, (question, other_question), answer, other_answer = _qa(language, 0)
    record = _record(passage, question, answer)
    typo = _typo(question, random.Random(language))
    assert normalise_for_dedup(typo) != normalise_for_dedup(question)
    assert field_jaccard(question, typo) >= THRESHOLD
    # Same passage, another question: not a duplicate, whatever the whole-record verdict.
    assert not records_match(record, _record(passage, other_question, answer), True, THRESHOLD)
    # One typo in the question: still a duplicate.
    assert records_match(record, _record(passage, typo, answer), False, THRESHOLD)
    # A different short answer: not a duplicate.
    assert not records_match(record, _record(passage, question, other_answer), True, THRESHOLD)
    # Another source's field order: a duplicate.
    assert records_match(record, _record(answer, passage, typo), False, THRESHOLD)
    assert records_match(record, record, False, 1.0)


def test_char_tokens_let_a_chinese_question_with_a_typo_match() -> None:
    """Split on spaces, a Chinese question is one word (short) and a typo would break it."""
    passage, (question, _), answer, _ = _qa("zh", 3)
    typo = _typo(question, random.Random(3))
    a, b = _record(passage, question, answer), _record(passage, typo, answer)
    assert not decode(a)[1].short
    assert records_match(a, b, False, THRESHOLD)


def test_every_field_must_match_both_ways() -> None:
    passage, (question, other_question), answer, _ = _qa("en", 5)
    three = _record(passage, question, answer)
    # An extra field on one side matches nothing on the other.
    assert not records_match(three, _record(passage, question, answer, other_question), True, 0.7)
    assert not records_match(_record(passage, question), three, True, 0.7)
    # A repeated field is still covered by the other record's one copy.
    assert records_match(three, _record(passage, question, answer, answer), False, 0.7)


def test_one_field_records_keep_the_whole_verdict() -> None:
    passage, (question, _), answer, _ = _qa("de", 1)
    one, other, empty = _record(passage), _record(question), fingerprint("")
    for whole in (True, False):
        assert records_match(one, other, whole, THRESHOLD) is whole
        assert records_match(one, one, whole, THRESHOLD) is whole
        assert records_match(one, empty, whole, THRESHOLD) is whole
        assert records_match(empty, empty, whole, THRESHOLD) is whole
    # No fields against several: never a duplicate; a missing fingerprint is never verified.
    assert not records_match(empty, _record(passage, question, answer), True, THRESHOLD)
    assert not records_match(None, one, True, THRESHOLD)
    assert not records_match(one, None, True, THRESHOLD)


def test_threshold_is_reached_not_exceeded() -> None:
    question = "what is the capital city of the country"
    typo = "what is the capitol city of the country"
    jaccard = field_jaccard(question, typo)
    a, b = _record("a b", question), _record("a b", typo)
    assert records_match(a, b, False, jaccard)
    assert not records_match(a, b, True, jaccard + 1e-9)


def test_fields_match_batch_agrees_with_records_match() -> None:
    rng = random.Random(4)
    prints: list[bytes | None] = [None, fingerprint(""), fingerprint("one field only here")]
    for language in ("en", "zh", "ru", "th"):
        passage, (question, other_question), answer, other_answer = _qa(language, 2)
        typo = _typo(question, rng)
        prints += [
            _record(passage, question, answer),
            _record(passage, typo, answer),
            _record(answer, typo, passage),
            _record(passage, other_question, answer),
            _record(passage, question, other_answer),
            _record(passage),
        ]
    pairs = [(a, b) for a in prints for b in prints]
    wholes = [rng.choice([True, False, None]) for _ in pairs]
    left, right = zip(*pairs, strict=True)
    result = fields_match_batch(
        pa.array(left, type=pa.binary()),
        pa.array(right, type=pa.binary()),
        pa.array(wholes, type=pa.bool_()),
        THRESHOLD,
    )
    assert result.type == pa.bool_() and result.null_count == 0
    expected = [
        w is not None and records_match(a, b, w, THRESHOLD)
        for (a, b), w in zip(pairs, wholes, strict=True)
    ]
    assert result.to_pylist() == expected
    assert 20 < sum(expected) < len(expected) - 20  # both verdicts are exercised


def test_sketches_of_different_sizes_compare(sentences: dict[str, list[str]]) -> None:
    """The estimate uses the shorter incomplete sketch: fingerprints made with another
    sketch_size (an older run, another source's settings) still verify."""
    passage = " ".join(sentences["fr"][10:16])
    edited = " ".join(sentences["fr"][10:15])
    small = decode(fingerprint(passage, sketch_size=32))[0]
    large = decode(fingerprint(edited))[0]
    assert len(small.sketch) == 32 and len(large.sketch) == SKETCH_SIZE
    assert not small.complete and not large.complete
    assert abs(sketch_jaccard(small, large) - field_jaccard(passage, edited)) < 0.2
    # The small sketch is a prefix of the large one of the same field.
    full = decode(fingerprint(passage))[0]
    assert (full.sketch[:32] == small.sketch).all()
    assert sketch_jaccard(small, full) == 1.0


def test_module_never_imports_pyspark() -> None:
    code = "import sys, udfs.field_match; assert 'pyspark' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
