"""The mixture file of ``instructmill mix``: caps, group weights, language temperature, a
total; and the check that every column it names is an output column."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pyspark.sql import types as T

from jobs.config.loading import ConfigError
from jobs.config.models import COMPRESSIONS, Strict
from jobs.schema import OUTPUT_SCHEMA


class MixtureCaps(Strict):
    """At most this many rows per value of ``by`` (FLAN caps each task: 30k, 20k, 5k)."""

    by: str = "task"
    default: int | None = Field(default=None, ge=0)  # every value without its own cap
    values: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


class MixtureGroups(Strict):
    """Shares of the mixture per value of ``by`` (a source, a cluster, any output column)."""

    by: str = "source"
    # Relative weights, normalised over the groups present in the input. Without weights each
    # group's share follows its size after caps (examples-proportional mixing).
    weights: dict[str, Annotated[float, Field(ge=0)]] | None = None
    default_weight: float = Field(default=0.0, ge=0)  # for groups that weights do not list


class MixtureLanguages(Strict):
    """Temperature sampling inside each group: p_l proportional to n_l ** alpha (n_l: the group's
    rows in language l after caps); alpha 1 is proportional, 0 uniform over languages."""

    column: str = "language"
    alpha: float = Field(default=1.0, ge=0, le=1)


class MixtureConfig(Strict):
    seed: int = Field(default=0, ge=0)
    # The split the mixture draws from; held-out rows never enter a training mixture.
    split: Literal["train", "heldout"] | None = "train"
    # Rows wanted. Without it: the largest mixture whose every group and language meets its
    # share with the rows there are.
    total: int | None = Field(default=None, ge=1)
    caps: MixtureCaps | None = None
    groups: MixtureGroups = Field(default_factory=MixtureGroups)
    languages: MixtureLanguages | None = None
    rows_per_file: int = Field(default=500_000, ge=1)
    compression: COMPRESSIONS = "zstd"

    @field_validator("groups")
    @classmethod
    def _some_weight(cls, value: MixtureGroups) -> MixtureGroups:
        if (
            value.weights is not None
            and not any(value.weights.values())
            and not (value.default_weight)
        ):
            raise ValueError("every group weight is 0: nothing would be sampled")
        return value


def groupable_columns() -> list[str]:
    """Output columns a mixture can cap or group by: every scalar column (not ``messages``)."""
    return [
        field.name
        for field in OUTPUT_SCHEMA.fields
        if not isinstance(field.dataType, (T.ArrayType, T.MapType, T.StructType))
    ]


def check_columns(config: MixtureConfig) -> None:
    """Fail before Spark starts when a key names a column the output does not have."""
    allowed = groupable_columns()
    keys = [("groups.by", config.groups.by)]
    if config.caps is not None:
        keys.insert(0, ("caps.by", config.caps.by))
    if config.languages is not None:
        keys.append(("languages.column", config.languages.column))
    problems = [
        f"{key}: no output column {column!r}; allowed columns: {', '.join(allowed)}"
        for key, column in keys
        if column not in allowed
    ]
    if problems:
        raise ConfigError("\n".join(problems))
