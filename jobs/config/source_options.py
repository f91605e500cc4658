"""A registry's options for the seed collections' formats: templates by file or by promptsource
dataset name, SuperNI demonstrations and FLAN's few-shot exemplars."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from jobs.config.strict import Strict

# Super-NaturalInstructions demonstration encodings (Wang et al. 2022, Tk-Instruct).
SUPERNI_ENCODINGS = ("definition", "definition_pos2", "definition_pos2_neg2_explanation", "pos2")
# FLAN's zero-/few-shot, with/without the answer options in the prompt.
FLAN_FORMATS = ("zsopt", "zsnoopt", "fsopt", "fsnoopt")
# dataset[/subset], as promptsource names them (gsarti/flores_101/all has three parts)
DATASET_NAME = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$"


class TemplateRef(Strict):
    """A template file (``path``) or a promptsource dataset's templates by name
    (``promptsource: super_glue/rte``, under the pipeline's promptsource_root), optionally
    filtered by template names, ``original_task`` and ``languages`` metadata."""

    path: str | None = None
    promptsource: str | None = Field(default=None, pattern=DATASET_NAME)
    names: list[str] | None = Field(default=None, min_length=1)
    original_task: bool | None = None
    languages: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_origin(self) -> TemplateRef:
        if (self.path is None) == (self.promptsource is None):
            raise ValueError("give exactly one of 'path' (a template file) or 'promptsource'")
        return self


class SuperniOptions(Strict):
    """Demonstrations of a SuperNI task: each record gets one encoding, chosen by hash among
    those its task file supports."""

    encodings: list[Literal[SUPERNI_ENCODINGS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["definition_pos2"], min_length=1
    )
    # An example longer than this (input + output + explanation) is not shown.
    max_demo_chars: int = Field(default=2000, ge=1)

    @field_validator("encodings")
    @classmethod
    def _distinct_encodings(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("an encoding is listed twice")
        return value


class FewShotOptions(Strict):
    """FLAN's few-shot formats: exemplars are other written train records of the source,
    rendered with the same template."""

    k: int = Field(default=3, ge=1, le=16)
    # An exemplar longer than this (instruction, options and response) is not used.
    max_exemplar_chars: int = Field(default=2000, ge=1)
    # Candidates per (source, template), chosen by hash; every few-shot row draws from them.
    pool: int = Field(default=1000, ge=2, le=100_000)
