"""Ask for variants of every original, check each answer and keep what passes: one request per
(original, language) asks for all ``n`` variants at once."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.variants.chat_client import ChatClient, ChatReply
from jobs.variants.checks import (
    Sample,
    VariantChecker,
    Verdict,
    joined,
    renders_of,
    split_template,
)
from jobs.variants.meta_prompts import MetaPrompt, jinja_tags, language_name, prompt_hash
from jobs.variants.variant_files import Generated
from udfs.langid import LanguageIdentifier
from udfs.templating import SEPARATOR, TemplateSpec, environment

FENCE = re.compile(r"^```[A-Za-z]*\s*|\s*```$")


class ReplyFormatError(ValueError):
    pass


@dataclass(frozen=True)
class Original:
    """A template to vary, the file it came from and sample records to render it on."""

    spec: TemplateSpec
    file: Path
    samples: tuple[Sample, ...]
    source: str | None = None  # the conf source the samples come from


@dataclass(frozen=True)
class Ask:
    kind: str  # paraphrase | translate
    n: int
    meta: MetaPrompt
    model: str
    with_response: bool = False
    languages: tuple[str | None, ...] = (None,)


@dataclass
class Outcome:
    """What came of asking for one original's variants in one language."""

    original: Original
    language: str | None
    messages: list[dict[str, str]] = field(default_factory=list)
    problem: tuple[str, str] | None = None  # a reason for the whole request
    verdicts: list[Verdict] = field(default_factory=list)
    original_renders: list[tuple[str, str]] = field(default_factory=list)
    usable: tuple[Sample, ...] = ()  # the samples the original renders on
    reply: ChatReply | None = None

    @property
    def prompt_hash(self) -> str:
        return prompt_hash(self.messages) if self.messages else ""


def parse_variants(content: str) -> list[Any]:
    """The strings of ``{"variants": [...]}`` (or a bare list), code fences and any words
    around the JSON tolerated."""
    text = FENCE.sub("", content.strip())
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    end = max(text.rfind("}"), text.rfind("]"))
    if start < 0 or end < start:
        raise ReplyFormatError(f"no JSON in the reply: {content[:120]!r}")
    try:
        data = json.loads(text[start : end + 1])
    except ValueError as exc:
        raise ReplyFormatError(f"the reply's JSON does not parse: {exc}") from None
    variants = data.get("variants") if isinstance(data, dict) else data
    if not isinstance(variants, list):
        raise ReplyFormatError('the reply has no "variants" list')
    return variants


def _prepare(original: Original, language: str | None, ask: Ask) -> Outcome:
    outcome = Outcome(original, language)
    spec = original.spec
    renders = renders_of(spec, original.samples)
    rendered = [r for r in renders if r is not None]
    outcome.original_renders = rendered
    outcome.usable = tuple(s for s, r in zip(original.samples, renders, strict=True) if r)
    if not rendered:
        outcome.problem = (
            "no_sample_renders",
            f"the original renders on none of its {len(original.samples)} sample records, "
            "so no variant can be checked; give records it renders on",
        )
        return outcome
    parts = split_template(spec.jinja)
    if parts is None and not ask.with_response:
        outcome.problem = (
            "separators",
            f"the template has {spec.jinja.count(SEPARATOR)} '{SEPARATOR}' in its text, so its "
            "instruction cannot be cut out; vary the whole template with --response",
        )
        return outcome
    text = spec.jinja if ask.with_response or parts is None else parts[0].strip()
    outcome.messages = ask.meta.messages(
        template=text,
        response=None if not ask.with_response else spec.jinja.split(SEPARATOR, 1)[1].strip(),
        answer_choices=spec.answer_choices,
        expressions=list(dict.fromkeys(jinja_tags(environment(), text))),
        n=ask.n,
        name=spec.name,
        language=language,
        language_name=language_name(language) if language else None,
    )
    return outcome


def _judge(outcome: Outcome, ask: Ask, identifier: LanguageIdentifier | None) -> None:
    reply = outcome.reply
    assert reply is not None
    if reply.content is None:
        outcome.problem = ("request_failed", reply.error or "no reply")
        return
    try:
        answers = parse_variants(reply.content)
    except ReplyFormatError as exc:
        outcome.problem = ("unparseable_reply", str(exc))
        return
    spec = outcome.original.spec
    checker = VariantChecker(spec, outcome.usable, outcome.language, identifier)
    parts = split_template(spec.jinja)
    for answer in answers[: ask.n]:
        if not isinstance(answer, str) or not answer.strip():
            outcome.verdicts.append(Verdict(str(answer), "empty", "not a non-empty string"))
        elif not ask.with_response and parts is not None and SEPARATOR in answer:
            outcome.verdicts.append(
                Verdict(answer, "separator_in_instruction", f"the instruction holds {SEPARATOR}")
            )
        else:
            text = answer if ask.with_response or parts is None else joined(answer, parts[1])
            outcome.verdicts.append(checker.check(text))
    if len(answers) < ask.n:
        outcome.problem = ("too_few_variants", f"asked for {ask.n}, the reply has {len(answers)}")


def vary(
    originals: Sequence[Original],
    ask: Ask,
    client: ChatClient,
    identifier: LanguageIdentifier | None = None,
) -> list[Outcome]:
    outcomes = [_prepare(o, language, ask) for o in originals for language in ask.languages]
    asking = [outcome for outcome in outcomes if outcome.problem is None]
    for outcome, reply in zip(asking, client.ask_all([o.messages for o in asking]), strict=True):
        outcome.reply = reply
        _judge(outcome, ask, identifier)
    return outcomes


def accepted(outcome: Outcome, ask: Ask) -> list[Generated]:
    good = [verdict for verdict in outcome.verdicts if verdict.accepted]
    return [
        Generated(
            original=outcome.original.spec,
            jinja=verdict.jinja,
            kind=ask.kind,
            language=outcome.language,
            model=ask.model,
            prompt_hash=outcome.prompt_hash,
            meta_prompt=ask.meta.path.name,
            number=number,
        )
        for number, verdict in enumerate(good, start=1)
    ]
