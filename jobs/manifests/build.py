"""The build's manifest, typed: per source ``rows = written + rejected + duplicates`` (with
``rows = read x templates per record``), checked here and nowhere else."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from jobs.config import RunPlan, SourcePlan
from jobs.manifests.table import format_table
from udfs.language_codes import UNDETERMINED
from udfs.taxonomy import UNASSIGNED

Counts = dict[tuple[Any, ...], int]
CONTAMINATION_REASONS = ("contaminates_heldout", "contaminates_benchmark")


@dataclass(frozen=True)
class BuildRun:
    """What identifies a build: recorded in its manifest and on every row it writes."""

    run_id: str
    started: str
    run_date: date | None  # a scheduled load's date (--run-date)
    load_date: date  # the run date, else the run's UTC start date

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "started": self.started,
            "run_date": self.run_date.isoformat() if self.run_date else None,
            "load_date": self.load_date.isoformat(),
        }


@dataclass(frozen=True)
class SourceCounts:
    read: int
    templates_per_record: int
    written: int
    rejected: int
    rejected_by_reason: dict[str, int]
    duplicates: int
    shared_ids: int
    task_clusters: dict[str, int]
    splits: dict[str, int]
    langid: dict[str, Any]
    templates: dict[str, dict[str, int]]
    # Written rows per FLAN format or SuperNI encoding, and the SuperNI records whose hashed
    # encoding their task file could not support ("wanted -> used": rows).
    formats: dict[str, int] = field(default_factory=dict)
    format_fallbacks: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.read * self.templates_per_record

    @property
    def unassigned(self) -> int:
        return self.task_clusters.get(UNASSIGNED, 0)

    @property
    def reconciled(self) -> bool:
        return self.rows == self.written + self.rejected + self.duplicates

    @property
    def contaminated(self) -> int:
        """Rows removed for held-out or benchmark contamination (they are rejects)."""
        reasons = self.rejected_by_reason
        return sum(reasons.get(reason, 0) for reason in CONTAMINATION_REASONS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "templates_per_record": self.templates_per_record,
            "rows": self.rows,
            "written": self.written,
            "rejected": self.rejected,
            "rejected_by_reason": self.rejected_by_reason,
            "duplicates": self.duplicates,
            "contaminated": self.contaminated,
            "shared_ids": self.shared_ids,
            "task_clusters": self.task_clusters,
            "unassigned": self.unassigned,
            "splits": self.splits,
            "langid": self.langid,
            "reconciled": self.reconciled,
            "templates": self.templates,
            "template_formats": self.formats,
            "format_fallbacks": self.format_fallbacks,
        }


def _by_count(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _language_summary(name: str, languages: Counts) -> dict[str, Any]:
    detected: dict[str, int] = defaultdict(int)
    mismatched = judged = 0
    for (source, code, mismatch), count in languages.items():
        if source != name or code is None:
            continue
        detected[code] += count
        mismatched += count if mismatch else 0
        judged += count if code != UNDETERMINED else 0
    return {
        "detected": _by_count(detected),
        "mismatched": mismatched,
        "mismatch_rate": round(mismatched / judged, 4) if judged else 0.0,
    }


def _template_counts(templates: dict[str, dict[str, int]], template_id: str) -> dict[str, int]:
    """A template's counts, listed (in first-seen order) when it is new."""
    return templates.setdefault(template_id, {"applied": 0, "rejected": 0})


@dataclass(frozen=True)
class BuildCounts:
    """The aggregates a build collects: read per source; written (source, template,
    cluster, split) and rejected (source, template, reason) on disk; the rest per source."""

    read: dict[str, int]
    written: Counts
    rejected: Counts
    duplicates: dict[str, int]
    shared_ids: dict[str, int]
    languages: Counts  # (source, detected content language, mismatch)
    fallbacks: Counts = field(default_factory=dict)  # (source, wanted, used)

    def of_source(self, source: SourcePlan) -> SourceCounts:
        name = source.name
        templates: dict[str, dict[str, int]] = {}
        for spec in source.render.templates:
            _template_counts(templates, spec.template_id)
        by_reason: dict[str, int] = defaultdict(int)
        task_clusters: dict[str, int] = defaultdict(int)
        splits: dict[str, int] = defaultdict(int)
        formats: dict[str, int] = defaultdict(int)
        for (owner, template_id, cluster, split, fmt), count in self.written.items():
            if owner == name:
                _template_counts(templates, template_id)["applied"] += count
                task_clusters[cluster] += count
                splits[split] += count
                formats[str(fmt)] += count
        for (owner, template_id, reason), count in self.rejected.items():
            if owner == name:
                _template_counts(templates, template_id)["rejected"] += count
                by_reason[reason] += count
        return SourceCounts(
            read=self.read[name],
            templates_per_record=source.render.rows_per_record,
            written=sum(t["applied"] for t in templates.values()),
            rejected=sum(by_reason.values()),
            rejected_by_reason=dict(sorted(by_reason.items())),
            duplicates=self.duplicates.get(name, 0),
            shared_ids=self.shared_ids.get(name, 0),
            task_clusters=_by_count(task_clusters),
            splits=dict(sorted(splits.items())),
            langid=_language_summary(name, self.languages),
            templates=templates,
            formats=dict(sorted(formats.items())),
            format_fallbacks={
                f"{wanted} -> {used}": count
                for (owner, wanted, used), count in sorted(self.fallbacks.items())
                if owner == name
            },
        )


_SUMMED = ("read", "rows", "written", "rejected", "duplicates", "contaminated", "shared_ids",
           "unassigned")  # fmt: skip


@dataclass(frozen=True)
class BuildManifest:
    run: BuildRun
    finished: str
    seconds: float
    spark: dict[str, str]
    output: dict[str, Any]
    config: dict[str, Any]
    sources: dict[str, SourceCounts]
    clusters: dict[str, Any] | None = None  # dedup's cluster sizes, when dedup ran
    # What the n-gram check found: per reference set, and the source x set matrix.
    decontamination: dict[str, Any] | None = None
    # Sources whose record keys repeat: how often, and the first keys.
    repeated_ids: dict[str, Any] | None = None
    # Sections of the run rather than of its counts: the committed files, the stages' times.
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, plan: RunPlan, counts: BuildCounts, **run: Any) -> BuildManifest:
        sources = {source.name: counts.of_source(source) for source in plan.sources}
        return cls(config=plan.describe(), sources=sources, **run)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def reconciled(self) -> bool:
        return all(entry.reconciled for entry in self.sources.values())

    def totals(self) -> dict[str, Any]:
        entries = list(self.sources.values())
        totals: dict[str, Any] = {key: sum(getattr(e, key) for e in entries) for key in _SUMMED}
        splits = sorted({split for entry in entries for split in entry.splits})
        totals["splits"] = {s: sum(e.splits.get(s, 0) for e in entries) for s in splits}
        totals["reconciled"] = self.reconciled
        return totals

    def unreconciled(self) -> list[str]:
        return [
            f"{name}: rows {entry.rows} != written {entry.written} + rejected "
            f"{entry.rejected} + duplicates {entry.duplicates}"
            for name, entry in self.sources.items()
            if not entry.reconciled
        ]

    def to_dict(self) -> dict[str, Any]:
        document = {
            **self.run.to_dict(),
            "finished": self.finished,
            "seconds": self.seconds,
            "spark": self.spark,
            "output": self.output,
            "config": self.config,
            "sources": {name: entry.to_dict() for name, entry in self.sources.items()},
            "totals": self.totals(),
            # Rows written with no cluster from the taxonomy, by source: never silently dropped.
            "unassigned": {
                name: entry.unassigned for name, entry in self.sources.items() if entry.unassigned
            },
        }
        if self.clusters is not None:
            document["dedup_clusters"] = self.clusters
        if self.decontamination is not None:
            document["decontamination"] = self.decontamination
        document["repeated_ids"] = self.repeated_ids or {}
        document.update(self.extra)
        return document

    def summary_table(self) -> str:
        headers = (
            "source", "read", "rows", "written", "rejected", "duplicates", "contaminated", "ok",
            "heldout",
            "unassigned", "lang mismatch", "top reject",
        )  # fmt: skip
        body = [_summary_row(name, entry) for name, entry in self.sources.items()]
        totals = self.totals()
        footer = (
            "TOTAL", *[totals[key] for key in _SUMMED[:6]],
            "yes" if totals["reconciled"] else "NO", totals["splits"].get("heldout", 0),
            totals["unassigned"],
            sum(entry.langid["mismatched"] for entry in self.sources.values()), "",
        )  # fmt: skip
        return format_table(headers, body, footer)


def _summary_row(name: str, entry: SourceCounts) -> tuple[Any, ...]:
    reasons = entry.rejected_by_reason
    top = max(reasons.items(), key=lambda kv: kv[1]) if reasons else None
    return (
        name, entry.read, entry.rows, entry.written, entry.rejected, entry.duplicates,
        entry.contaminated, "yes" if entry.reconciled else "NO", entry.splits.get("heldout", 0),
        entry.unassigned,
        entry.langid["mismatched"], f"{top[0]} ({top[1]})" if top else "",
    )  # fmt: skip
