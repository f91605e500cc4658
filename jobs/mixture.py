"""Mixtures over a build output: per-value caps, group weights, language temperature, a total.

The stages are plain ``DataFrame -> DataFrame`` functions; the planning between them is pure
Python over one small table of counts, so it is unit-tested exactly without a JVM.

1. **Split.** Only rows whose ``split`` equals the config's ``split`` are kept (``None``: all).
   A row with a null ``split`` (an output written before the column existed) is never in a
   ``train`` or ``heldout`` mixture: it counts as ``other_split``.
2. **Caps.** For each value v of ``caps.by`` the cap is ``caps.values.get(v, caps.default)``
   (None: no cap). A capped value keeps exactly ``min(n_v, cap)`` rows: those with the smallest
   ``(xxhash64(seed, "cap", id), id, instruction, response)``, ranked by ``row_number()`` over a
   window partitioned by the value. Only rows of capped values go through the window; the rest
   is unioned back unsorted. The filter is ``rank <= max_cap AND rank <= cap``: the literal
   ``max_cap`` is what lets Spark's optimizer infer a ``WindowGroupLimit`` (a partial top-k in
   each input partition before the shuffle, so a 10M-row task ships at most ``max_cap`` rows per
   partition), the per-row ``cap`` makes it exact. Spark only infers the limit up to
   ``spark.sql.optimizer.windowGroupLimitThreshold`` (1000 by default), so the job raises that
   setting to the largest cap for its own run (:func:`group_limit_threshold`).
3. **Planning** (:func:`plan_mixture`, from one count per (group, language) cell after caps):
   group shares ``w_g`` are the configured weights (``default_weight`` for groups not listed)
   normalised over the groups present, or each group's row count when no weights are given;
   language shares inside a group are ``p_l ∝ n_{g,l} ** alpha``; the requested share of a cell
   is ``w_g * p_{l|g}``. The total T is ``total``, else the largest total every cell with a
   positive share meets exactly: ``min(a_c / s_c)``. T is then water-filled down the hierarchy
   (groups, then the languages of each group): every unit gets T's share of the still-open
   units, a unit that would get more than it has is filled to its availability and left out,
   and the rest is shared again until nothing is over. So no cell is asked for more rows than it
   has and the leftover of a small group goes to the others in proportion to their shares. Each
   cell gets a target ``t_c`` (a float) and a sampling probability ``p_c = t_c / a_c``.
4. **Sampling.** A row is kept iff ``u < p_c``, where ``u`` is the top 53 bits of
   ``xxhash64(seed, "sample", id)`` (taken unsigned) divided by 2**53: uniform in [0, 1),
   exactly representable as a double (a 63-bit value divided by 2**63 can round to 1.0), and
   independent of the cap hash (a different salt), so capping does not bias sampling. The
   probabilities reach the rows through a broadcast join with a small (group, language, p)
   frame. Achieved counts are binomial around the targets (variance ``t_c (1 - p_c)``), so
   shares are met to within a few ``sqrt(t)/T``, not exactly.

Null values of the cap, group or language column are a value of their own, :data:`NULL_VALUE`
(name it in ``caps.values`` or ``groups.weights`` to address it). Everything is a function of
ids, content and the seed: the same input and config give the same rows whatever the
partitioning or the number of input files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from jobs.config import ConfigError, MixtureCaps, MixtureConfig
from jobs.schema import OUTPUT_SCHEMA

NULL_VALUE = "__null__"
DEFAULT_LANGUAGE_COLUMN = "language"

GROUP = "_mix_group"
LANGUAGE = "_mix_language"
PROBABILITY = "_mix_p"
KEEP = "_mix_keep"
_CAP_KEY = "_mix_cap_key"
_CAP = "_mix_cap"
_RANK = "_mix_rank"
_U_BITS = 53

K = TypeVar("K")
Cell = tuple[str, str]


# ---- config checks -----------------------------------------------------------------------------


def groupable_columns() -> list[str]:
    """Output columns a mixture can cap or group by: every scalar column (not ``messages``)."""
    return [
        field.name
        for field in OUTPUT_SCHEMA.fields
        if not isinstance(field.dataType, (T.ArrayType, T.MapType, T.StructType))
    ]


def language_column(config: MixtureConfig) -> str:
    return config.languages.column if config.languages else DEFAULT_LANGUAGE_COLUMN


def language_alpha(config: MixtureConfig) -> float:
    return config.languages.alpha if config.languages else 1.0


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


# ---- the stages --------------------------------------------------------------------------------


def value_of(column: str) -> Column:
    """The column as a grouping value: a string, null as :data:`NULL_VALUE`."""
    return F.coalesce(F.col(column).cast("string"), F.lit(NULL_VALUE))


def in_split(split: str | None) -> Column:
    return F.lit(True) if split is None else F.coalesce(F.col("split") == split, F.lit(False))


def split_stage(split: str | None) -> Callable[[DataFrame], DataFrame]:
    def stage(frame: DataFrame) -> DataFrame:
        return frame if split is None else frame.where(in_split(split))

    return stage


def has_caps(caps: MixtureCaps | None) -> bool:
    return caps is not None and (caps.default is not None or bool(caps.values))


def largest_cap(caps: MixtureCaps) -> int:
    return max([*caps.values.values(), *([caps.default] if caps.default is not None else [])])


def _cap_values(spark: SparkSession, caps: MixtureCaps) -> DataFrame:
    schema = T.StructType(
        [T.StructField(_CAP_KEY, T.StringType(), False), T.StructField(_CAP, T.LongType(), False)]
    )
    return spark.createDataFrame(sorted(caps.values.items()), schema)


def cap_order(seed: int) -> list[Column]:
    """A total order inside a capped value that depends on ids and content, never on layout."""
    return [
        F.xxhash64(F.lit(seed), F.lit("cap"), F.col("id")),
        F.col("id"),
        F.col("instruction"),
        F.col("response"),
    ]


def cap_stage(caps: MixtureCaps | None, seed: int) -> Callable[[DataFrame], DataFrame]:
    """At most ``cap`` rows per value of ``caps.by``, exactly ``min(n_v, cap)``."""

    def stage(frame: DataFrame) -> DataFrame:
        if caps is None or not has_caps(caps):
            return frame
        columns = frame.columns
        keyed = frame.select("*", value_of(caps.by).alias(_CAP_KEY))
        cap = F.col(_CAP)
        if caps.values:
            keyed = keyed.join(F.broadcast(_cap_values(frame.sparkSession, caps)), _CAP_KEY, "left")
        else:
            cap = F.lit(None).cast("long")
        if caps.default is not None:
            cap = F.coalesce(cap, F.lit(caps.default).cast("long"))
        keyed = keyed.select(*columns, _CAP_KEY, cap.alias(_CAP))
        ranked = keyed.where(F.col(_CAP).isNotNull()).select(
            "*",
            F.row_number()
            .over(Window.partitionBy(_CAP_KEY).orderBy(*cap_order(seed)))
            .alias(_RANK),
        )
        kept = ranked.where(
            (F.col(_RANK) <= F.lit(largest_cap(caps))) & (F.col(_RANK) <= F.col(_CAP))
        ).select(*columns)
        uncapped = keyed.where(F.col(_CAP).isNull()).select(*columns)
        return kept.unionByName(uncapped)

    return stage


def cell_stage(group_by: str, language_by: str) -> Callable[[DataFrame], DataFrame]:
    """The (group, language) cell of every row, as grouping values."""

    def stage(frame: DataFrame) -> DataFrame:
        return frame.select(
            "*", value_of(group_by).alias(GROUP), value_of(language_by).alias(LANGUAGE)
        )

    return stage


def sample_uniform(seed: int) -> Column:
    """Uniform in [0, 1): the top 53 bits of an id hash over 2**53 (exact in a double)."""
    bits = F.shiftrightunsigned(F.xxhash64(F.lit(seed), F.lit("sample"), F.col("id")), 64 - _U_BITS)
    return bits.cast("double") / F.lit(float(2**_U_BITS))


def probability_frame(spark: SparkSession, probabilities: Mapping[Cell, float]) -> DataFrame:
    """One row per cell: small (groups x languages), so it is broadcast to the rows."""
    schema = T.StructType(
        [
            T.StructField(GROUP, T.StringType(), False),
            T.StructField(LANGUAGE, T.StringType(), False),
            T.StructField(PROBABILITY, T.DoubleType(), False),
        ]
    )
    rows = [(group, language, float(p)) for (group, language), p in sorted(probabilities.items())]
    return spark.createDataFrame(rows, schema)


def decide_stage(probabilities: DataFrame, seed: int) -> Callable[[DataFrame], DataFrame]:
    """Marks each row of a celled frame ``_mix_keep``; a cell without a probability keeps none."""

    def stage(frame: DataFrame) -> DataFrame:
        joined = frame.join(F.broadcast(probabilities), [GROUP, LANGUAGE], "left")
        p = F.coalesce(F.col(PROBABILITY), F.lit(0.0))
        return joined.select(*frame.columns, (sample_uniform(seed) < p).alias(KEEP))

    return stage


def sampled_rows(frame: DataFrame) -> DataFrame:
    return frame.where(F.col(KEEP))


# ---- planning (pure) ---------------------------------------------------------------------------


def normalised(weights: Mapping[K, float]) -> dict[K, float]:
    total = math.fsum(weights.values())
    return {key: (value / total if total > 0 else 0.0) for key, value in weights.items()}


def group_shares(
    available: Mapping[str, int], weights: Mapping[str, float] | None, default_weight: float
) -> dict[str, float]:
    """Shares of the groups present: configured weights, or their sizes when there are none."""
    if weights is None:
        raw = {group: float(n) for group, n in available.items()}
    else:
        raw = {group: float(weights.get(group, default_weight)) for group in available}
    if available and not math.fsum(raw.values()) > 0:
        raise ConfigError(
            "groups.weights: no group present in the input has a weight above 0 "
            f"(groups present: {', '.join(sorted(available))})"
        )
    return normalised(raw)


def language_shares(available: Mapping[str, int], alpha: float) -> dict[str, float]:
    """Temperature sampling: p_l ∝ n_l ** alpha (alpha 0: uniform, 1: proportional)."""
    return normalised({language: float(n) ** alpha for language, n in available.items() if n > 0})


def largest_exact_total(shares: Mapping[K, float], available: Mapping[K, float]) -> float:
    """The largest T for which every unit with a positive share gets ``share * T`` rows."""
    bounds = [available[key] / share for key, share in shares.items() if share > 0]
    return min(bounds) if bounds else 0.0


def water_fill(
    total: float, shares: Mapping[K, float], available: Mapping[K, float]
) -> dict[K, float]:
    """Split ``total`` by ``shares`` without giving any unit more than it has: units whose share
    exceeds their availability are filled to it, and the rest is shared again among the others
    in proportion to their shares, until no unit is over."""
    targets = {key: 0.0 for key in shares}
    open_units = {key for key, share in shares.items() if share > 0 and available[key] > 0}
    remaining = float(total)
    while open_units and remaining > 0:
        weight = math.fsum(shares[key] for key in open_units)
        full = {key for key in open_units if remaining * shares[key] / weight >= available[key]}
        if not full:
            for key in open_units:
                targets[key] = remaining * shares[key] / weight
            break
        for key in full:
            targets[key] = float(available[key])
        remaining = max(0.0, remaining - math.fsum(available[key] for key in full))
        open_units -= full
    return targets


@dataclass(frozen=True)
class CellPlan:
    group: str
    language: str
    available: int  # rows after caps
    requested_share: float  # w_g * p_{l|g}
    target_rows: float

    @property
    def probability(self) -> float:
        return min(1.0, self.target_rows / self.available) if self.available else 0.0

    @property
    def saturated(self) -> bool:
        return self.available > 0 and self.target_rows >= self.available * (1 - 1e-12)


@dataclass(frozen=True)
class MixturePlan:
    total_requested: float | None  # ``total`` as configured, None: the largest exact total
    total: float  # T used for water-filling (the requested total or the largest exact one)
    cells: tuple[CellPlan, ...]

    @property
    def target_rows(self) -> float:
        return math.fsum(cell.target_rows for cell in self.cells)

    @property
    def available(self) -> int:
        return sum(cell.available for cell in self.cells)

    def probabilities(self) -> dict[Cell, float]:
        return {(cell.group, cell.language): cell.probability for cell in self.cells}


def _by(cells: Mapping[Cell, int], index: int) -> dict[str, int]:
    totals: dict[str, int] = {}
    for cell, n in cells.items():
        totals[cell[index]] = totals.get(cell[index], 0) + n
    return totals


def plan_mixture(
    counts: Mapping[Cell, int],
    weights: Mapping[str, float] | None = None,
    default_weight: float = 0.0,
    alpha: float = 1.0,
    total: int | None = None,
) -> MixturePlan:
    """Targets per (group, language) cell from the rows each has after caps."""
    counts = {cell: int(n) for cell, n in counts.items() if n > 0}
    by_group = _by(counts, 0)
    w = group_shares(by_group, weights, default_weight)
    within = {
        group: language_shares({lang: n for (g, lang), n in counts.items() if g == group}, alpha)
        for group in by_group
    }
    requested = {cell: w[cell[0]] * within[cell[0]][cell[1]] for cell in counts}
    t = float(total) if total is not None else largest_exact_total(requested, counts)
    group_targets = water_fill(t, w, by_group)
    targets: dict[Cell, float] = {}
    for group, target in group_targets.items():
        languages = {lang: n for (g, lang), n in counts.items() if g == group}
        for lang, rows in water_fill(target, within[group], languages).items():
            targets[(group, lang)] = rows
    cells = tuple(
        CellPlan(
            group, lang, counts[(group, lang)], requested[(group, lang)], targets[(group, lang)]
        )
        for group, lang in sorted(counts)
    )
    return MixturePlan(total_requested=total, total=t, cells=cells)


def plan_for(config: MixtureConfig, counts: Mapping[Cell, int]) -> MixturePlan:
    return plan_mixture(
        counts,
        config.groups.weights,
        config.groups.default_weight,
        language_alpha(config),
        config.total,
    )


# ---- the report --------------------------------------------------------------------------------


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def _entry(
    available: int, requested: float, target: float, achieved: int, totals: tuple[float, int]
) -> dict[str, Any]:
    target_total, achieved_total = totals
    return {
        "available": available,
        "requested_share": round(requested, 6),
        "target_share": round(_share(target, target_total), 6),
        "target_rows": round(target, 2),
        "achieved_rows": achieved,
        "achieved_share": round(_share(achieved, achieved_total), 6),
        "saturated": available > 0 and target >= available * (1 - 1e-12),
    }


def _marginal(
    plan: MixturePlan, achieved: Mapping[Cell, int], index: int, name: str
) -> list[dict[str, Any]]:
    totals = (plan.target_rows, sum(achieved.values()))
    values = sorted({(cell.group, cell.language)[index] for cell in plan.cells})
    rows = []
    for value in values:
        cells = [cell for cell in plan.cells if (cell.group, cell.language)[index] == value]
        rows.append(
            {
                name: value,
                **_entry(
                    sum(cell.available for cell in cells),
                    math.fsum(cell.requested_share for cell in cells),
                    math.fsum(cell.target_rows for cell in cells),
                    sum(achieved.get((cell.group, cell.language), 0) for cell in cells),
                    totals,
                ),
            }
        )
    return rows


def report_tables(
    plan: MixturePlan, achieved: Mapping[Cell, int]
) -> dict[str, list[dict[str, Any]]]:
    """The ``groups``, ``languages`` and ``cells`` tables of ``_mixture.json``. Marginals sum
    their cells; a marginal is saturated when every row it has is a target row."""
    totals = (plan.target_rows, sum(achieved.values()))
    return {
        "groups": _marginal(plan, achieved, 0, "group"),
        "languages": _marginal(plan, achieved, 1, "language"),
        "cells": [
            {
                "group": cell.group,
                "language": cell.language,
                **_entry(
                    cell.available,
                    cell.requested_share,
                    cell.target_rows,
                    achieved.get((cell.group, cell.language), 0),
                    totals,
                ),
            }
            for cell in plan.cells
        ],
    }


def share_table(rows: Iterable[Mapping[str, Any]], key: str) -> str:
    """Target vs achieved shares, in percent with two decimals."""
    headers = (
        key, "available", "target rows", "written", "target %", "achieved %", "diff pp",
        "saturated",
    )  # fmt: skip
    body = [
        (
            str(row[key]),
            f"{row['available']:,}",
            f"{row['target_rows']:,.0f}",
            f"{row['achieved_rows']:,}",
            f"{100 * row['target_share']:.2f}",
            f"{100 * row['achieved_share']:.2f}",
            f"{100 * (row['achieved_share'] - row['target_share']):+.2f}",
            "yes" if row["saturated"] else "",
        )
        for row in rows
    ]
    cells = [headers, *body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(width) if i in (0, len(row) - 1) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, body)])
