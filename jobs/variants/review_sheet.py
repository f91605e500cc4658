"""The review sheet (Markdown) and the run record (JSON) of one folder's variants: each
accepted variant rendered on three sample records next to the original, then every rejected
answer with its reason."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jobs.variants.generate import Ask, Outcome, accepted

SHOWN_SAMPLES = 3
BACKTICKS = re.compile(r"`+")


def _block(text: str, language: str = "text") -> str:
    longest = max((len(run) for run in BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _render_lines(render: tuple[str, str]) -> str:
    instruction, response = render
    return _block(f"{instruction}\n----- response -----\n{response}")


def _outcome_section(outcome: Outcome, ask: Ask) -> list[str]:
    spec = outcome.original.spec
    language = f" into {outcome.language}" if outcome.language else ""
    good = accepted(outcome, ask)
    rejected = [verdict for verdict in outcome.verdicts if not verdict.accepted]
    lines = [
        f"## {spec.name} (`{spec.template_id}`): {ask.kind}{language}",
        "",
        f"From `{spec.origin}`; samples from {outcome.original.source or 'the --records file'}. "
        f"{len(good)} accepted, {len(rejected)} rejected.",
        "",
        "### Original",
        "",
        _block(spec.jinja, "jinja"),
        "",
    ]
    for render in outcome.original_renders[:SHOWN_SAMPLES]:
        lines += [_render_lines(render), ""]
    verdicts = [verdict for verdict in outcome.verdicts if verdict.accepted]
    for variant, verdict in zip(good, verdicts, strict=True):
        lines += [
            f"### {variant.name} (`{variant.template_id}`)",
            "",
            _block(variant.jinja, "jinja"),
        ]
        for render in verdict.renders[:SHOWN_SAMPLES]:
            lines += ["", _render_lines(render)]
        lines.append("")
    if outcome.problem is not None:
        reason, detail = outcome.problem
        lines += [f"**Request: {reason}.** {detail}", ""]
    if rejected:
        lines += ["### Rejected", "", "| # | reason | detail |", "| --- | --- | --- |"]
        for number, verdict in enumerate(rejected, start=1):
            detail = verdict.detail.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {number} | `{verdict.reason}` | {detail} |")
        lines.append("")
        for number, verdict in enumerate(rejected, start=1):
            lines += [f"Rejected {number}:", "", _block(verdict.jinja, "jinja"), ""]
    return lines


def review_sheet(folder: Path, outcomes: Sequence[Outcome], ask: Ask) -> str:
    lines = [
        f"# Template {ask.kind} variants for review: {folder.parent.name}",
        "",
        f"Model `{ask.model}`, prompt `templates/meta/{ask.meta.path.name}`, {ask.n} asked per "
        "template. A build uses a variant only once its entry in `templates.yaml` says "
        "`reviewed: true` (or its source says `unreviewed_templates: allow`). Delete an entry "
        "or leave it `reviewed: false` to keep it out; a rerun keeps the file's entries as "
        "they are.",
        "",
    ]
    for outcome in outcomes:
        lines += _outcome_section(outcome, ask)
    return "\n".join(lines).rstrip() + "\n"


def run_record(outcomes: Sequence[Outcome], ask: Ask) -> dict[str, Any]:
    """Per original: what was asked, accepted and rejected (with reasons)."""
    entries = []
    for outcome in outcomes:
        good = accepted(outcome, ask)
        entries.append(
            {
                "original_id": outcome.original.spec.template_id,
                "original_name": outcome.original.spec.name,
                "language": outcome.language,
                "prompt_hash": outcome.prompt_hash,
                "cached": bool(outcome.reply and outcome.reply.cached),
                "problem": None if outcome.problem is None else list(outcome.problem),
                "accepted": [variant.template_id for variant in good],
                "rejected": [
                    {"reason": v.reason, "detail": v.detail, "jinja": v.jinja}
                    for v in outcome.verdicts
                    if not v.accepted
                ],
            }
        )
    return {"kind": ask.kind, "model": ask.model, "n": ask.n, "originals": entries}


def run_record_text(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
