"""The dedup command's manifest, typed: per source ``read = written + duplicates +
contaminates_heldout``, checked here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_COUNTED = ("read", "written", "duplicates", "contaminates_heldout")


@dataclass(frozen=True)
class DedupSourceCounts:
    read: int
    written: int
    duplicates: int
    contaminates_heldout: int

    @property
    def reconciled(self) -> bool:
        return self.read == self.written + self.duplicates + self.contaminates_heldout

    def to_dict(self) -> dict[str, Any]:
        return {**{key: getattr(self, key) for key in _COUNTED}, "reconciled": self.reconciled}


@dataclass(frozen=True)
class DedupManifest:
    started: str
    finished: str
    input: str
    output: dict[str, Any]
    dedup: dict[str, Any]  # the settings, with the bands and rows they give
    sources: dict[str, DedupSourceCounts]
    clusters: dict[str, Any]

    @classmethod
    def counted(
        cls, read: dict[str, int], written: dict[str, int], duplicates: dict[str, int],
        contaminated: dict[str, int], **fields: Any,
    ) -> DedupManifest:  # fmt: skip
        sources = {
            name: DedupSourceCounts(
                read[name],
                written.get(name, 0),
                duplicates.get(name, 0),
                contaminated.get(name, 0),
            )
            for name in sorted(read)
        }
        return cls(sources=sources, **fields)

    @property
    def reconciled(self) -> bool:
        return all(entry.reconciled for entry in self.sources.values())

    def to_dict(self) -> dict[str, Any]:
        totals = {key: sum(getattr(e, key) for e in self.sources.values()) for key in _COUNTED}
        return {
            "job": "dedup",
            "started": self.started,
            "finished": self.finished,
            "input": self.input,
            "output": self.output,
            "dedup": self.dedup,
            "sources": {name: entry.to_dict() for name, entry in self.sources.items()},
            "totals": {**totals, "reconciled": self.reconciled},
            "dedup_clusters": self.clusters,
        }

    def summary(self) -> str:
        return "\n".join(
            f"{name}: read {entry.read:,} = written {entry.written:,} + duplicates "
            f"{entry.duplicates:,}{'' if entry.reconciled else '  DOES NOT RECONCILE'}"
            for name, entry in self.sources.items()
        )
