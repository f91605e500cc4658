"""The rules a variant must pass before it is offered for review, each failure a reason code:
it parses in our sandbox, keeps the original's variables and expressions (on the AST), renders
on the sample records the original renders on, is no copy, and (translations) is in the target
language by our fastText model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from udfs.langid import LanguageIdentifier
from udfs.language_codes import UnknownLanguageLabel, comparable, declared_code
from udfs.template_shape import TemplateShape, shape_difference, template_shape
from udfs.templating import (
    SEPARATOR,
    RenderError,
    TemplateCompileError,
    TemplateSpec,
    compile_template,
    environment,
    render,
)


@dataclass(frozen=True)
class Sample:
    key: str
    record: Mapping[str, Any]


@dataclass(frozen=True)
class Verdict:
    jinja: str
    reason: str | None = None  # None: accepted
    detail: str = ""
    renders: tuple[tuple[str, str], ...] = ()  # (instruction, response) per sample shown
    language: str | None = None  # what fastText said of the variant's own words

    @property
    def accepted(self) -> bool:
        return self.reason is None


def normal_text(text: str) -> str:
    return " ".join(text.casefold().split())


def renders_of(spec: TemplateSpec, samples: tuple[Sample, ...]) -> list[tuple[str, str] | None]:
    """Each sample's render, None where the template rejects the record."""
    template = compile_template(spec)
    out: list[tuple[str, str] | None] = []
    for sample in samples:
        try:
            out.append(render(template, sample.record, choice_salt=sample.key))
        except RenderError:
            out.append(None)
    return out


@dataclass
class VariantChecker:
    """Checks the variants of one original, in order: a later copy of an earlier variant is a
    ``duplicate_variant``."""

    original: TemplateSpec
    samples: tuple[Sample, ...]  # the records the original renders on
    language: str | None = None  # translate: the target language
    identifier: LanguageIdentifier | None = None

    def __post_init__(self) -> None:
        self._shape: TemplateShape = template_shape(environment(), self.original.jinja)
        self._seen = {normal_text(self.original.jinja): "copy_of_original"}

    def check(self, jinja: str) -> Verdict:
        verdict = self._check(jinja)
        if verdict.accepted:
            self._seen[normal_text(jinja)] = "duplicate_variant"
        return verdict

    def _check(self, jinja: str) -> Verdict:
        spec = TemplateSpec("candidate", self.original.name, jinja, self.original.answer_choices)
        try:
            compile_template(spec)
            shape = template_shape(environment(), jinja)
        except TemplateCompileError as exc:
            return Verdict(jinja, "invalid_jinja", str(exc).split(": ", 1)[-1])
        difference = shape_difference(self._shape, shape)
        if difference is not None:
            return Verdict(jinja, *difference)
        copied = self._seen.get(normal_text(jinja))
        if copied is not None:
            return Verdict(jinja, copied, "the same text, ignoring case and spacing")
        renders: list[tuple[str, str]] = []
        template = compile_template(spec)
        for sample in self.samples:
            try:
                renders.append(render(template, sample.record, sample.key))
            except RenderError as exc:
                return Verdict(jinja, "render_failed", f"record {sample.key}: {exc}")
        return self._language_verdict(Verdict(jinja, renders=tuple(renders)), shape.words)

    def _language_verdict(self, verdict: Verdict, words: str) -> Verdict:
        if self.language is None or self.identifier is None:
            return verdict
        # The variant's own words: the rendered instruction minus the record's text, which is
        # in the source's language whatever the template's is.
        detection = self.identifier.detect([words], min_letters=1)
        found = detection.codes[0]
        try:
            wanted = comparable(declared_code(self.language))
            same = found is not None and comparable(found) == wanted
        except UnknownLanguageLabel:
            same = False
        if same:
            return Verdict(verdict.jinja, renders=verdict.renders, language=found)
        score = detection.scores[0]
        return Verdict(
            verdict.jinja,
            "wrong_language",
            f"fastText says {found or 'nothing'}"
            + (f" (p={score:.2f})" if score is not None else "")
            + f" of {words[:80]!r}, not {self.language}",
            language=found,
        )


def split_template(jinja: str) -> tuple[str, str] | None:
    """``(instruction, "|||" + response)`` of a template written with one separator."""
    if jinja.count(SEPARATOR) != 1:
        return None
    instruction, response = jinja.split(SEPARATOR)
    return instruction, SEPARATOR + response


def joined(instruction: str, response_part: str) -> str:
    """A reworded instruction with the original's response part, byte for byte."""
    return f"{instruction.strip()} {response_part}"
