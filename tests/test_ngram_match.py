"""N-gram decontamination (``udfs.ngram_match``) on real UD sentences of 24 languages,
checked against a plain-Python definition: normal form, tokens, n-gram strings, set lookups."""

from __future__ import annotations

import json
import pickle
import random
import re
import unicodedata
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from fontTools.unicodedata import script as script_of

from udfs import shingles as shingles_module
from udfs.ngram_hashes import ABUGIDA_SCRIPTS
from udfs.ngram_match import (
    ItemNgrams,
    Match,
    NgramIndex,
    NgramSettings,
    decontamination_form,
    decontamination_forms,
    item_ngrams,
    train_ngrams,
)
from udfs.scripts import letters_and_scripts
from udfs.shingles import (
    CHAR_NGRAM_SCRIPTS,
    normalise_for_dedup,
    span_hashes,
    span_hashes64,
    uses_char_ngrams,
)

UD = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud"
SETTINGS = NgramSettings()


@cache
def _ud() -> dict[str, tuple[str, ...]]:
    return {
        path.stem: tuple(json.loads(line)["text"] for line in path.open(encoding="utf-8"))
        for path in sorted(UD.glob("*.jsonl"))
    }


def ud() -> dict[str, tuple[str, ...]]:
    """UD sentences by language code; the test is skipped when the shared data is absent."""
    if not UD.is_dir():
        pytest.skip(f"UD sentences not found at {UD}")
    return _ud()


# --- the plain-Python definition ------------------------------------------------------------


def reference_form(text: str | None) -> str:
    folded = normalise_for_dedup(text or "")
    blanked = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in folded)
    return " ".join(blanked.split())


def dominant_script(form: str) -> str | None:
    return letters_and_scripts([form])[1][0]


def word_tokens(form: str) -> list[tuple[int, int]]:
    return [match.span() for match in re.finditer(r"[^ ]+", form)]


def char_tokens(form: str) -> list[tuple[int, int]]:
    return [(i, i + 1) for i in range(len(form))]


def reference_tokens(form: str) -> tuple[list[tuple[int, int]], int, int]:
    """(tokens, n, min_tokens) of a reference text, by its dominant script."""
    script = dominant_script(form)
    if not uses_char_ngrams(script):
        return word_tokens(form), SETTINGS.ngram, SETTINGS.min_tokens
    if script in ABUGIDA_SCRIPTS:
        return char_tokens(form), SETTINGS.abugida_char_ngram, SETTINGS.abugida_min_tokens
    return char_tokens(form), SETTINGS.char_ngram, SETTINGS.min_tokens


def reference_entries(text: str | None) -> set[tuple[int, str]]:
    """(0, n-gram) for each n-gram of a long text, {(m, text)} for a short one, else {}."""
    form = reference_form(text)
    tokens, n, minimum = reference_tokens(form)
    if len(tokens) < minimum:
        return set()
    if len(tokens) < n:
        # A short word text also needs min_tokens words between spaces (not "a@b.com").
        by_words = not uses_char_ngrams(dominant_script(form))
        if by_words and len(normalise_for_dedup(text or "").split(" ")) < minimum:
            return set()
        return {(len(tokens), form)}
    return {(0, form[tokens[k][0] : tokens[k + n - 1][1]]) for k in range(len(tokens) - n + 1)}


def reference_index(
    texts: list[str | None], items: list[int], max_item_frequency: int
) -> dict[tuple[int, str], int]:
    found: dict[tuple[int, str], set[int]] = {}
    for text, item in zip(texts, items, strict=True):
        for entry in reference_entries(text):
            found.setdefault(entry, set()).add(item)
    return {key: min(owners) for key, owners in found.items() if len(owners) <= max_item_frequency}


def has_spaceless_letters(form: str) -> bool:
    return any(
        unicodedata.category(c)[0] in "LM" and script_of(c) in CHAR_NGRAM_SCRIPTS for c in form
    )


def reference_first_match(text: str | None, index: dict[tuple[int, str], int]) -> Match | None:
    """Every run of tokens of every size the index can hold, looked up as a string."""
    form = reference_form(text)
    short = sorted({length for length, _ in index if length})
    sizes = [(word_tokens(form), [(0, SETTINGS.ngram)] + [(m, m) for m in short])]
    if uses_char_ngrams(dominant_script(form)) or has_spaceless_letters(form):
        full = [(0, SETTINGS.char_ngram), (0, SETTINGS.abugida_char_ngram)]
        sizes.append((char_tokens(form), full + [(m, m) for m in short]))
    candidates = []
    for tokens, lengths in sizes:
        for tag, n in lengths:
            for k in range(len(tokens) - n + 1):
                start, end = tokens[k][0], tokens[k + n - 1][1]
                item = index.get((tag, form[start:end]))
                if item is not None:
                    candidates.append((start, tag != 0, item, end))
    if not candidates:
        return None
    start, _, item, end = min(candidates)
    return Match(item, form[start:end])


# --- the normal form and the 64-bit hash -----------------------------------------------------


def test_decontamination_form_drops_case_spacing_punctuation_and_symbols() -> None:
    assert decontamination_form("  «Hello», WORLD!!  — it's 3+4=7 ©2024\t\n") == (
        "hello world it s 3 4 7 2024"
    )
    assert decontamination_form("Ｆｕｌｌ－ｗｉｄｔｈ，ＴＥＸＴ。") == "full width text"
    assert decontamination_form("你好，世界！「测试」") == "你好 世界 测试"
    assert decontamination_form("...!?") == ""


def test_decontamination_forms_equal_the_definition_on_real_text() -> None:
    texts = [text for sentences in ud().values() for text in sentences[:60]]
    texts += [None, "", " \u3000 ", "a\u00a0b", "emoji 🙂🙂 and \x00 control"]
    expected = [reference_form(text) for text in texts]
    assert decontamination_forms(texts) == expected
    assert [decontamination_form(text or "") for text in texts] == expected
    assert [decontamination_form(form) for form in expected] == expected  # idempotent


def test_span_hashes64_keeps_the_high_bits_of_span_hashes() -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, 5000, dtype=np.uint8)
    starts = rng.integers(0, 4000, 300)
    ends = starts + rng.integers(0, 1000, 300)
    full = span_hashes64(data, starts, ends)
    assert full.dtype == np.uint64
    assert (full & np.uint64(0xFFFFFFFF)).astype(np.uint32).tolist() == (
        span_hashes(data, starts, ends).tolist()
    )
    assert (full >> np.uint64(32)).any()

    def hash64(chunk: bytes) -> int:
        polynomial = 0
        for byte in reversed(chunk):
            polynomial = (polynomial * shingles_module.HASH_BASE + byte) % (1 << 64)
        polynomial += len(chunk) * shingles_module.HASH_LENGTH_FACTOR
        return shingles_module._fmix64_int(polynomial % (1 << 64))

    raw = data.tobytes()
    assert full.tolist() == [hash64(raw[s:e]) for s, e in zip(starts, ends, strict=True)]


# --- the reference side ----------------------------------------------------------------------


def test_item_ngrams_lists_each_distinct_ngram_of_a_text_once() -> None:
    sentence = ud()["en"][5]
    words = reference_form(sentence).split()
    assert len(words) >= 13
    repeated = f"{sentence} {sentence}"
    ngrams = item_ngrams([sentence, repeated, None], SETTINGS)
    assert isinstance(ngrams, ItemNgrams)
    assert ngrams.hashes.dtype == np.uint64 and ngrams.lengths.dtype == np.int32
    assert ngrams.owners.dtype == np.int64
    counts = np.bincount(ngrams.owners, minlength=3)
    assert counts[0] == len(words) - 12
    assert counts[1] == len(reference_entries(repeated)) < 2 * len(words) - 12
    assert counts[2] == 0
    assert not ngrams.lengths.any()


def test_an_address_or_number_is_one_word_however_many_tokens_it_has() -> None:
    """'kevin.a.boone@accenture.com' is five tokens once punctuation is blanked, but one
    word: as a short text it is not checked (train text holds such lines by chance)."""
    index = NgramIndex.build(["kevin.a.boone@accenture.com", "call 203-961-7523 or 203-674-7723"],
                             [0, 1], SETTINGS, 10)  # fmt: skip
    assert len(index) == 0
    sentence = "Mail kevin.a.boone@accenture.com or call 203-961-7523 or 203-674-7723 today."
    assert index.first_matches([sentence]) == [None]


def test_texts_shorter_than_min_tokens_are_never_indexed() -> None:
    short = ["one two three four", "Hi!", "", None, "東京都庁", "ภาษาไทย", "a, b, c; d."]
    assert len(item_ngrams(short, SETTINGS).hashes) == 0
    index = NgramIndex.build(short, list(range(len(short))), SETTINGS, 10)
    assert len(index) == 0
    assert index.first_matches(["one two three four five", "東京都庁です", None]) == [None] * 3
    # The same texts one token longer are indexed, whole.
    longer = ["one two three four five", "東京都庁です"]
    assert item_ngrams(longer, SETTINGS).lengths.tolist() == [5, 6]


# --- matching --------------------------------------------------------------------------------


def _long_sentences(lang: str, count: int) -> list[str]:
    """Distinct sentences (UD repeats a few) with a few n-grams each."""
    found: dict[str, str] = {}
    for text in ud()[lang]:
        form = reference_form(text)
        tokens, n, _ = reference_tokens(form)
        if len(tokens) >= n + 3:
            found.setdefault(form, text)
    return list(found.values())[:count]


@pytest.mark.parametrize("lang", ["en", "de", "ru", "ar", "hi", "ko", "zh", "ja", "th"])
def test_a_planted_copy_is_found_with_a_real_ngram(lang: str) -> None:
    references = _long_sentences(lang, 20)
    others = list(ud()[lang][-60:])
    index = NgramIndex.build(references, [100 + i for i in range(20)], SETTINGS, 5)
    train = [f"{others[2 * i]} {ref} {others[2 * i + 1]}" for i, ref in enumerate(references)]
    matches = index.first_matches(train)
    for i, (reference, match) in enumerate(zip(references, matches, strict=True)):
        assert match is not None, reference
        assert match.item == 100 + i
        assert (0, match.ngram) in reference_entries(reference)
        assert match.ngram in reference_form(train[i])


def _mangle(text: str, rng: random.Random) -> str:
    """Re-cased, re-spaced and re-punctuated: a copy the normal form should see through."""
    words = text.replace(",", " ").replace(".", "").split()
    result = []
    for word in words:
        word = word.upper() if rng.random() < 0.5 else word.lower()
        result.append(word + rng.choice(["", "", ",", ";", " -", "!", "…", "»"]))
    return "«" + rng.choice([" ", "  ", "\n", "\t"]).join(result) + "»?!"


def test_recased_respaced_and_repunctuated_copies_are_found() -> None:
    rng = random.Random(7)
    references = [text for lang in ["en", "fr", "es", "el", "tr", "vi"] for text in
                  _long_sentences(lang, 10)]  # fmt: skip
    index = NgramIndex.build(references, list(range(len(references))), SETTINGS, 5)
    copies = [_mangle(text, rng) for text in references]
    assert all(copy != text for copy, text in zip(copies, references, strict=True))
    matches = index.first_matches([f"Question: {copy} Answer:" for copy in copies])
    assert [match.item if match else None for match in matches] == list(range(len(references)))


def test_clean_sentences_of_the_same_languages_are_not_flagged() -> None:
    references = [text for texts in ud().values() for text in texts[: len(texts) // 2]]
    train = [text for texts in ud().values() for text in texts[len(texts) // 2 :]]
    assert len(train) > 4000
    index = NgramIndex.build(references, list(range(len(references))), SETTINGS, 10)
    flagged = [
        (text, match)
        for text, match in zip(train, index.first_matches(train), strict=True)
        if match
    ]
    # UD has a few genuine overlaps (repeated sentences, census boilerplate); nothing else.
    assert len(flagged) <= 5, flagged


def test_a_short_reference_text_matches_only_whole() -> None:
    short = "Hello there, my good friend!"  # 5 words: one whole-text entry, tagged 5
    chinese = "我们今天去北京"  # 7 characters
    index = NgramIndex.build([short, chinese], [1, 2], SETTINGS, 5)
    assert sorted(index.entries()[1].tolist()) == [5, 7]
    matches = index.first_matches(
        [
            "So I said: HELLO there my good friend. And he left.",
            "hello there my good",
            "there my good friend",
            "hello there my good friends",
            "ahello there my good friend",
            "他说我们今天去北京吧",
            "我们今天去北",
        ]
    )
    assert matches[0] == Match(1, "hello there my good friend")
    assert matches[1:5] == [None] * 4
    assert matches[5] == Match(2, chinese)
    assert matches[6] is None


def test_ngrams_shared_by_more_than_max_item_frequency_items_are_ignored() -> None:
    boilerplate = "Read the passage below carefully and then answer the question that follows it"
    sentences = _long_sentences("en", 4)
    references = [f"{boilerplate}: {text}" for text in sentences]
    train = [f"{boilerplate}. Something else entirely.", f"Quoted: {sentences[2]}"]
    strict = NgramIndex.build(references, [7, 3, 5, 9], SETTINGS, 3)
    assert strict.first_matches(train)[0] is None
    assert strict.first_matches(train)[1] is not None and strict.first_matches(train)[1].item == 5
    lenient = NgramIndex.build(references, [7, 3, 5, 9], SETTINGS, 4)
    assert lenient.first_matches(train)[0] == Match(3, reference_form(boilerplate))
    assert len(lenient) > len(strict)
    # Frequency counts distinct items: four texts of one item are one.
    same_item = NgramIndex.build(references, [4, 4, 4, 4], SETTINGS, 1)
    assert same_item.first_matches(train)[0] is not None


def test_chinese_and_japanese_use_character_ngrams() -> None:
    for lang in ["zh", "ja"]:
        reference = _long_sentences(lang, 1)[0]
        form = reference_form(reference)
        ngrams = item_ngrams([reference], SETTINGS)
        assert len(ngrams.hashes) == len(set(form[k : k + 13] for k in range(len(form) - 12)))
        ngram_set = reference_entries(reference)
        index = NgramIndex.build([reference], [0], SETTINGS, 5)
        piece = form[3:16]  # 13 characters, not at a word boundary
        assert index.first_matches([f"前{piece}后"]) == [Match(0, piece)]
        assert index.first_matches([f"前{form[3:15]}后"]) == [None]
        # Quoted in an English prompt (dominant script Latin), still found by characters.
        prompt = f"Translate the following text into English, please, and explain it: {piece}"
        assert dominant_script(reference_form(prompt)) == "Latn"
        [match] = index.first_matches([prompt])
        assert match is not None and match.item == 0 and (0, match.ngram) in ngram_set
        assert match.ngram.strip() in piece  # may start at the space before the piece


def test_thai_needs_longer_character_ngrams() -> None:
    reference = _long_sentences("th", 1)[0]
    form = reference_form(reference)
    index = NgramIndex.build([reference], [0], SETTINGS, 5)
    n = SETTINGS.abugida_char_ngram
    assert index.first_matches([form[2 : 2 + n], form[2 : 2 + n - 1]]) == [
        Match(0, form[2 : 2 + n]),
        None,
    ]


def test_first_matches_equal_the_plain_python_definition() -> None:
    rng = random.Random(11)
    # References from the first half of each language, clean train text from the second.
    first = {lang: list(texts[: len(texts) // 2]) for lang, texts in ud().items()}
    second = {lang: list(texts[len(texts) // 2 :]) for lang, texts in ud().items()}
    langs = sorted(first)
    references: list[str | None] = []
    for lang in langs:
        references += rng.sample(first[lang], 6)
        form = reference_form(first[lang][0])
        tokens, n, minimum = reference_tokens(form)
        cut = rng.randint(minimum, n - 1)
        if len(tokens) > cut:
            references.append(form[: tokens[cut - 1][1]])  # a short text, cut at a token
    boilerplate = "please answer the following question with a single word or a short phrase"
    references += [f"{boilerplate} {text}" for text in first["en"][:4]] + [None, ""]
    items = [rng.randrange(60) for _ in references]

    def piece(text: str) -> str:
        form = reference_form(text)
        tokens = word_tokens(form) if " " in form and rng.random() < 0.7 else char_tokens(form)
        size = rng.randint(3, 40)
        start = rng.randrange(max(1, len(tokens) - size))
        chosen = tokens[start : start + size]
        return form[chosen[0][0] : chosen[-1][1]] if chosen else ""

    train: list[str | None] = [None, ""]
    while len(train) < 300:
        parts = [rng.choice(second[rng.choice(langs)]) for _ in range(rng.randint(0, 3))]
        for _ in range(rng.randint(0, 2)):
            text = rng.choice([r for r in references if r])
            parts.insert(rng.randint(0, len(parts)), piece(text) if rng.random() < 0.7 else text)
        train.append(_mangle(" ".join(parts), rng) if rng.random() < 0.2 else " ".join(parts))

    index = NgramIndex.build(references, items, SETTINGS, 2)
    expected_index = reference_index(references, items, 2)
    assert len(index) == len(expected_index)
    expected = [reference_first_match(text, expected_index) for text in train]
    assert index.first_matches(train) == expected
    found = [match for match in expected if match]
    assert 60 <= len(found) <= 240
    assert any(" " not in match.ngram for match in found)  # character n-grams
    assert any((len(match.ngram.split()), match.ngram) in expected_index for match in found)


def test_from_arrays_equals_build_and_keeps_the_smallest_item() -> None:
    texts = [text for lang in ["en", "zh", "th"] for text in ud()[lang][:30]]
    items = list(range(len(texts)))
    built = NgramIndex.build(texts, items, SETTINGS, 1000)
    ngrams = item_ngrams(texts, SETTINGS)
    twice = NgramIndex.from_arrays(
        np.concatenate([ngrams.hashes, ngrams.hashes]),
        np.concatenate([ngrams.lengths, ngrams.lengths]),
        np.concatenate([ngrams.owners + 1000, ngrams.owners]),  # the duplicate rows lose
        SETTINGS,
    )
    assert len(twice) == len(built)
    for mine, theirs in zip(twice.entries(), built.entries(), strict=True):
        assert mine.tolist() == theirs.tolist()
    with pytest.raises(ValueError, match="same length"):
        NgramIndex.from_arrays(ngrams.hashes, ngrams.lengths[:-1], ngrams.owners, SETTINGS)


def test_the_index_pickles_compactly_and_round_trips() -> None:
    references = [text for texts in ud().values() for text in texts[:50]]
    index = NgramIndex.build(references, list(range(len(references))), SETTINGS, 10)
    copy = pickle.loads(pickle.dumps(index))
    assert copy.settings == index.settings and len(copy) == len(index) > 5000
    assert len(pickle.dumps(index)) < 24 * len(index) + 2000  # arrays only: 8 + 8 per entry
    planted = [text for text in references[::7] if reference_entries(text)]
    train = [f"x {text} y" for text in planted] + list(ud()["en"][300:330])
    assert copy.first_matches(train) == index.first_matches(train)
    assert sum(match is not None for match in copy.first_matches(train)) == len(planted)


def test_batches_split_into_groups_give_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    import udfs.ngram_hashes as ngram_hashes

    references = [text for lang in ["en", "ja", "th", "ru"] for text in ud()[lang][:40]]
    train = [f"{a} {b}" for a, b in zip(references[::2], references[1::2], strict=True)]
    train += list(ud()["en"][200:240])
    index = NgramIndex.build(references, list(range(len(references))), SETTINGS, 10)
    whole, matches = item_ngrams(references, SETTINGS), index.first_matches(train)
    monkeypatch.setattr(ngram_hashes, "GROUP_CODE_POINTS", 300)
    assert len(ngram_hashes._text_groups(decontamination_forms(train))) > 20
    grouped = item_ngrams(references, SETTINGS)
    assert grouped.owners.tolist() == whole.owners.tolist()
    assert grouped.hashes.tolist() == whole.hashes.tolist()
    assert index.first_matches(train) == matches
    assert sum(match is not None for match in matches) >= 75


def test_the_module_never_imports_pyspark() -> None:
    import subprocess
    import sys

    code = "import sys, udfs.ngram_match; assert 'pyspark' not in sys.modules"
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_train_ngrams_joined_with_the_reference_side_flag_the_same_texts() -> None:
    references = [text for lang in ["en", "zh", "th", "de"] for text in ud()[lang][:30]]
    references += ["Hello there, my good friend!", "我们今天去北京"]
    items = list(range(len(references)))
    index = NgramIndex.build(references, items, SETTINGS, 1000)
    train = [f"Q: {text} A:" for text in references[::3]] + list(ud()["en"][300:340])
    train += ["he said hello there my good friend", "好的 我们今天去北京吧"]
    hashes, lengths, _ = index.entries()
    found = train_ngrams(train, SETTINGS, sorted(set(lengths.tolist()) - {0}))
    entries = set(zip(hashes.tolist(), lengths.tolist(), strict=True))
    rows = zip(found.hashes.tolist(), found.lengths.tolist(), found.owners.tolist(), strict=True)
    joined = {owner for hash_, length, owner in rows if (hash_, length) in entries}
    flagged = {i for i, match in enumerate(index.first_matches(train)) if match}
    assert joined == flagged
    indexed = [text for text in references[::3] if reference_entries(text)]
    assert len(flagged) >= len(indexed) + 2 > 30
