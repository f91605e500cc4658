"""FLAN's four prompt formats (Wei et al. 2021; Longpre et al. 2023): zero- or few-shot, with
or without the answer options listed in the prompt. A row's format is chosen from the source's
``formats`` by a hash of (seed, source, record key, template id), so reruns agree.

Zero-shot rows are complete when rendered. Few-shot rows get their exemplars later, from other
written records of the same source and template (``jobs.stages.few_shot``): whether a record is
written is only known after dedup and the held-out split."""

from __future__ import annotations

from collections.abc import Sequence

from udfs.records import hash64

ZERO_SHOT = ("zsopt", "zsnoopt")
FEW_SHOT = ("fsopt", "fsnoopt")
WITH_OPTIONS = ("zsopt", "fsopt")
DEFAULT_FORMATS = ("zsnoopt",)
OPTIONS_HEADER = "OPTIONS:"
# Between the instruction and its options, and between few-shot exemplars, as FLAN's templates.
BLOCK_SEPARATOR = "\n\n"


def options_block(choices: Sequence[str] | None) -> str | None:
    """FLAN's option list: ``OPTIONS:`` and one ``- choice`` a line; None without choices."""
    options = [choice for choice in choices or () if choice]
    if not options:
        return None
    return OPTIONS_HEADER + "".join(f"\n- {choice}" for choice in options)


def without_options(fmt: str) -> str:
    return fmt.replace("opt", "noopt") if fmt in WITH_OPTIONS else fmt


def with_options(fmt: str) -> str:
    return fmt.replace("noopt", "opt")


def choose_format(
    seed: int,
    source: str,
    key: str,
    template_id: str,
    formats: Sequence[str],
    has_choices: bool,
    choices_in_prompt: bool = False,
) -> str:
    """One of ``formats`` for this row. A template without answer choices has no options to
    list: its *opt formats are their *noopt counterparts. A template whose prompt already
    lists its choices (promptsource's ``choices_in_prompt``) cannot hide them: its *noopt
    formats are their *opt counterparts, and no second list is added."""
    if not has_choices:
        usable = [without_options(f) for f in formats]
    elif choices_in_prompt:
        usable = [with_options(f) for f in formats]
    else:
        usable = list(formats)
    usable = list(dict.fromkeys(usable))
    if len(usable) == 1:
        return usable[0]
    return usable[hash64(str(seed), source, key, template_id, "format") % len(usable)]


def formatted_instruction(instruction: str, fmt: str, block: str | None) -> str:
    """The instruction of a row of format ``fmt`` (its exemplars aside)."""
    if fmt in WITH_OPTIONS and block:
        return instruction + BLOCK_SEPARATOR + block
    return instruction
