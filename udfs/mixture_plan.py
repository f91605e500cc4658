"""Mixture planning, pure: from one count of rows per (group, language) cell after caps to a
target and a sampling probability per cell, and the report tables of achieved against target.

Group shares ``w_g`` are the configured weights (``default_weight`` for groups not listed)
normalised over the groups present, or each group's row count when no weights are given;
language shares inside a group are ``p_l ∝ n_{g,l} ** alpha``; the requested share of a cell
is ``w_g * p_{l|g}``. The total T is ``total``, else the largest total every cell with a
positive share meets exactly: ``min(a_c / s_c)``. T is then water-filled down the hierarchy
(groups, then the languages of each group): every unit gets T's share of the still-open
units, a unit that would get more than it has is filled to its availability and left out,
and the rest is shared again until nothing is over. So no cell is asked for more rows than it
has and the leftover of a small group goes to the others in proportion to their shares. Each
cell gets a target ``t_c`` (a float) and a sampling probability ``p_c = t_c / a_c``.

Everything here is plain Python over one small table of counts (groups x languages), so it is
unit-tested exactly without a JVM.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

K = TypeVar("K")
Cell = tuple[str, str]


class MixturePlanError(ValueError):
    """The counts and the weights admit no mixture (every present group weighs 0)."""


def saturated(available: int, target: float) -> bool:
    """Every row the unit has is a target row."""
    return available > 0 and target >= available * (1 - 1e-12)


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
        raise MixturePlanError(
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
        return saturated(self.available, self.target_rows)


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
        "saturated": saturated(available, target),
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
