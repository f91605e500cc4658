"""Language ID without Spark: the real lid.176 model, label mapping, scripts, judgement."""

from __future__ import annotations

import pyarrow as pa
import pytest
from iso639 import Lang

from jobs.config import DEFAULT_LID_MODEL
from udfs.langid import (
    LANGID_RESULT,
    LangIdSettings,
    LanguageIdentifier,
    detect_arrays,
    identifier,
    judge,
)
from udfs.language_codes import UnknownLanguageLabel, iso_code, parse_label
from udfs.normal_form import normalise
from udfs.scripts import letter_counts, letters_and_scripts

SENTENCES = {
    "en": "The library stays open late on Thursdays during the exam period.",
    "fr": "La boulangerie du quartier ferme ses portes à midi le dimanche.",
    "de": "Der Zug nach Hamburg hatte heute Morgen fast eine Stunde Verspätung.",
    "es": "Mañana vamos a visitar a mis abuelos que viven cerca del mar.",
    "pt": "A reunião foi adiada porque o diretor estava doente esta semana.",
    "ru": "Вчера вечером мы долго гуляли по набережной и разговаривали.",
    "uk": "Сьогодні ввечері ми підемо до театру разом із друзями.",
    "ar": "ذهبنا إلى السوق صباح الجمعة واشترينا الكثير من الفاكهة الطازجة.",
    "hi": "कल शाम हम सब दोस्तों के साथ पुराने शहर में घूमने गए थे।",
    "zh": "我们明天早上八点在图书馆门口见面，然后一起去吃早饭。",
    "ja": "昨日は雨が降っていたので、一日中家で本を読んでいました。",
    "ko": "우리는 주말마다 공원에서 함께 자전거를 타곤 했습니다.",
    "el": "Το καλοκαίρι πηγαίνουμε πάντα διακοπές σε ένα μικρό νησί.",
    "he": "אנחנו נפגשים כל יום שלישי בבית הקפה שליד התחנה.",
    "th": "เมื่อวานนี้ฉันไปตลาดกับแม่และซื้อผลไม้มาหลายอย่าง",
    "ka": "ხვალ დილით ჩვენ ერთად წავალთ მთაში სასეირნოდ.",
    "hy": "Երեկ երեկոյան մենք ընկերների հետ զբոսնում էինք այգում։",
}
SCRIPTS = {
    "en": "Latn", "fr": "Latn", "de": "Latn", "es": "Latn", "pt": "Latn", "ru": "Cyrl",
    "uk": "Cyrl", "ar": "Arab", "hi": "Deva", "zh": "Hani", "ja": "Jpan", "ko": "Kore",
    "el": "Grek", "he": "Hebr", "th": "Thai", "ka": "Geor", "hy": "Armn",
}  # fmt: skip


@pytest.fixture(scope="module")
def lid() -> LanguageIdentifier:
    if not DEFAULT_LID_MODEL.is_file():
        pytest.fail(f"{DEFAULT_LID_MODEL} is missing: `make models` puts it there")
    return identifier(str(DEFAULT_LID_MODEL))


def test_known_sentences_in_many_scripts(lid: LanguageIdentifier) -> None:
    detection = lid.detect(list(SENTENCES.values()), min_letters=20)
    assert dict(zip(SENTENCES, detection.codes, strict=True)) == {code: code for code in SENTENCES}
    assert all(score is not None and 0.5 < score <= 1 for score in detection.scores)
    _, scripts = letters_and_scripts(list(SENTENCES.values()))
    assert dict(zip(SENTENCES, scripts, strict=True)) == SCRIPTS


def test_newlines_are_accepted_and_predict_like_the_raw_model(lid: LanguageIdentifier) -> None:
    text = "Der Zug hatte Verspätung.\nWir haben\n\ndeshalb den Anschluss verpasst."
    with pytest.raises(ValueError, match="one line"):
        lid.raw_predict([text])
    detection = lid.detect([text], min_letters=20)
    raw_labels, raw_scores = lid.raw_predict([text.replace("\n", " ")])
    assert detection.codes == ["de"] and lid.labels[raw_labels[0]][0] == "de"
    assert detection.scores[0] == pytest.approx(float(raw_scores[0]), abs=1e-4)
    assert normalise("a\nb\tc\u00a0d  e ") == "a b c d e"
    assert normalise("cafe\u0301") == "caf\u00e9"  # decomposed accents are composed


def test_short_and_missing_texts_are_not_guessed(lid: LanguageIdentifier) -> None:
    detection = lid.detect(["positive", "Oui.", "", None, "12345 67890 12345 67890"], 20)
    assert detection.codes == ["und", "und", None, None, "und"]
    assert detection.scores == [None] * 5
    assert lid.detect(["positive"], min_letters=5).codes[0] != "und"


def test_every_model_label_maps_to_an_iso_639_code(lid: LanguageIdentifier) -> None:
    assert len(lid.labels) == 176
    codes = {code for code, _ in lid.labels.values()}
    for code in codes:
        # ISO 639-1 where the language has a code there, else ISO 639-3.
        language = Lang(pt1=code) if len(code) == 2 else Lang(pt3=code)
        assert code == (language.pt1 or language.pt3), code
    # The Wikipedia codes that ISO reads differently.
    assert lid.labels["__label__als"][0] == "gsw"
    assert lid.labels["__label__bh"][0] == "bho"
    assert lid.labels["__label__en"][0] == "en"


def test_glotlid_style_labels() -> None:
    assert parse_label("__label__eng_Latn") == ("en", "Latn")
    assert parse_label("__label__cmn_Hani") == ("cmn", "Hani")
    assert parse_label("__label__und_Zzzz") == ("und", "Zzzz")
    assert iso_code("deu") == "de" and iso_code("ger") == "de"  # 639-2/B, in old datasets
    assert iso_code("sh") == "hbs"  # withdrawn from ISO 639-1; lid.176 still says it
    with pytest.raises(UnknownLanguageLabel):
        parse_label("__label__xx_Latn")


def test_letters_are_counted_per_script() -> None:
    counts = letter_counts(["abc 123 !!", "नमस्ते", "", "日本"])
    assert counts.tolist() == [3, 6, 0, 2]
    _, scripts = letters_and_scripts(
        [
            "Our guide, Kim (김민준), knew every street.",
            "我们明天在图书馆门口见面，带上你的の字笔记本。",
            "日本の本",
            "한국 漢字",
        ]
    )
    assert scripts == ["Latn", "Hani", "Jpan", "Kore"]


SETTINGS = LangIdSettings(model_file="lid.176.ftz", thresholds=(("de", 0.9),))


def test_judge_compares_content_with_declared_and_target() -> None:
    assert judge(SETTINGS, "fr", None, ("de", 0.95), (None, None)) == (True, None)
    assert judge(SETTINGS, "fr", None, ("fr", 0.95), (None, None)) == (False, None)
    # Below the per-language threshold, German is not confident enough to call a mismatch.
    assert judge(SETTINGS, "fr", None, ("de", 0.8), (None, None)) == (False, None)
    assert judge(SETTINGS, "nb", None, ("no", 0.9), (None, None)) == (False, None)
    assert judge(SETTINGS, "zh", None, ("cmn", 0.9), (None, None)) == (False, None)
    # Any individual language and its ISO 639-3 macrolanguage are one language to compare:
    # Egyptian Arabic text declared Arabic, Cantonese declared Chinese, Bosnian declared
    # Croatian (all Serbo-Croatian, which lid.176 also labels `sh`).
    assert judge(SETTINGS, "ar", None, ("arz", 0.9), (None, None)) == (False, None)
    assert judge(SETTINGS, "yue", None, ("zh", 0.9), (None, None)) == (False, None)
    assert judge(SETTINGS, "hr", None, ("bs", 0.9), (None, None)) == (False, None)
    assert judge(SETTINGS, "sr", None, (iso_code("sh"), 0.9), (None, None)) == (False, None)
    assert judge(SETTINGS, "fil", None, ("tl", 0.9), (None, None)) == (False, None)
    assert judge(SETTINGS, "ar", None, ("fa", 0.9), (None, None)) == (True, None)
    assert judge(SETTINGS, None, None, ("de", 0.99), (None, None)) == (False, None)
    assert judge(SETTINGS, "en", "ru", ("en", 0.9), ("ru", 0.9)) == (False, None)
    assert judge(SETTINGS, "en", "ru", ("en", 0.9), ("uk", 0.9)) == (True, None)
    drop = LangIdSettings(model_file="x", action="drop")
    assert judge(drop, "fr", None, ("de", 0.95), (None, None)) == (True, "language_mismatch")
    assert judge(drop, "fr", None, ("fr", 0.3), (None, None)) == (False, "low_language_score")
    assert judge(drop, "fr", None, ("und", None), (None, None)) == (False, None)


def detect_rows(
    lid: LanguageIdentifier, settings: LangIdSettings, rows: list[dict[str, object]]
) -> list[dict[str, object]]:
    names = ("instruction", "response", "content", "target_content", "language", "target_language")
    arrays = [pa.array([row.get(name) for row in rows], type=pa.string()) for name in names]
    result = detect_arrays(lid, settings, *arrays)
    assert result.type == LANGID_RESULT
    return result.to_pylist()


def test_detect_flags_a_french_record_whose_text_is_german(lid: LanguageIdentifier) -> None:
    german = SENTENCES["de"]
    out = detect_rows(
        lid,
        SETTINGS,
        [
            {"instruction": f"Résumez : {german}", "response": "Un train en retard.",
             "content": german, "language": "fr"},
            {"instruction": f"Résumez : {SENTENCES['fr']}", "response": "Fermé.",
             "content": SENTENCES["fr"], "language": "fr"},
            {"instruction": SENTENCES["ru"], "response": "да", "content": SENTENCES["ru"],
             "language": "und"},
            {"instruction": "Write any sentence.", "response": SENTENCES["ru"], "content": None,
             "language": "und"},
            {"language": None},  # a reject: nothing to detect
        ],
    )  # fmt: skip
    assert [row["lang_mismatch"] for row in out] == [True, False, False, False, None]
    assert out[0]["detected_language"] == "de" and out[0]["drop_reason"] is None
    assert out[1]["instruction_lang"] == "fr" and out[1]["response_lang"] == "und"
    assert out[2]["inferred_language"] == "ru" and out[2]["script"] == "Cyrl"
    # No text of its own: the template's English words must not decide the record's language.
    assert out[3]["detected_language"] is None and out[3]["inferred_language"] == "und"
    assert out[4]["instruction_lang"] is None and out[4]["lang_mismatch"] is None


def test_detect_in_drop_mode_gives_the_reason(lid: LanguageIdentifier) -> None:
    drop = LangIdSettings(model_file="x", action="drop")
    rows = [{"instruction": SENTENCES["de"], "response": "ok", "content": SENTENCES["de"],
             "language": "fr"}]  # fmt: skip
    (row,) = detect_rows(lid, drop, rows)
    assert row["drop_reason"] == "language_mismatch" and "detected as de" in row["drop_detail"]


def test_a_batch_is_read_from_its_arrow_buffers_whatever_their_layout(
    lid: LanguageIdentifier,
) -> None:
    """Spark hands over sliced arrays and, for data read as raw bytes, invalid UTF-8 that
    Arrow does not check: neither may shift a text onto its neighbour or stop the batch."""
    texts = [SENTENCES["ru"], None, SENTENCES["fr"], "", SENTENCES["ja"], SENTENCES["de"]]
    whole = lid.detect(texts, min_letters=20)
    sliced = lid.predict(pa.array(["x", *texts, "y"], pa.string()).slice(1, len(texts)), 20)[0]
    assert (
        lid.code_column(sliced.index).to_pylist()
        == whole.codes
        == ["ru", None, "fr", None, "ja", "de"]
    )
    raw = [SENTENCES["fr"].encode(), b"\xff\xfe " + SENTENCES["de"].encode(), b"ok"]
    invalid = pa.array(raw, pa.binary()).view(pa.string())
    predictions, _ = lid.predict(invalid, min_letters=20)
    assert lid.code_column(predictions.index).to_pylist() == ["fr", "de", "und"]
    large = pa.array(texts, pa.large_string())
    assert lid.code_column(lid.predict(large, 20)[0].index).to_pylist() == whole.codes
