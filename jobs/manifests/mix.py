"""The mix command's manifest, typed: ``read = written + other_split + capped +
not_sampled``, checked here and nowhere else; and its share tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jobs.manifests.table import format_table
from udfs.mixture_plan import Cell, MixturePlan, report_tables


@dataclass(frozen=True)
class MixCounts:
    read: int  # rows of the input
    other_split: int  # not of the config's split
    capped: int  # removed by caps
    not_sampled: int  # removed by sampling
    written: int  # on disk after the write

    @property
    def reconciled(self) -> bool:
        return self.read == self.written + self.other_split + self.capped + self.not_sampled

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "other_split": self.other_split,
            "capped": self.capped,
            "not_sampled": self.not_sampled,
            "written": self.written,
            "reconciled": self.reconciled,
        }


@dataclass(frozen=True)
class MixManifest:
    run_id: str
    started: str
    finished: str
    input: str
    output: dict[str, Any]
    config: dict[str, Any]
    plan: MixturePlan
    counts: MixCounts
    written: dict[Cell, int]  # rows on disk per (group, language) cell

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": "mix",
            "run_id": self.run_id,
            "started": self.started,
            "finished": self.finished,
            "input": self.input,
            "output": self.output,
            "config": self.config,
            "total": {
                "requested": self.plan.total_requested,
                "planned": round(self.plan.total, 2),
                "target_rows": round(self.plan.target_rows, 2),
            },
            "counts": self.counts.to_dict(),
            **report_tables(self.plan, self.written),
        }

    def summary(self) -> str:
        tables = report_tables(self.plan, self.written)
        counts = self.counts
        verdict = "reconciled" if counts.reconciled else "DOES NOT RECONCILE"
        return "\n\n".join(
            [
                share_table(tables["groups"], "group"),
                share_table(tables["languages"], "language"),
                f"read {counts.read:,} = written {counts.written:,} + other split "
                f"{counts.other_split:,} + capped {counts.capped:,} + not sampled "
                f"{counts.not_sampled:,}: {verdict}",
            ]
        )


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
    return format_table(headers, body)
