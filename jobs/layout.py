"""Where an output's parts live and how they are partitioned: one object shared by build,
dedup and mix, instead of paths joined by hand in each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

LOAD_DATE = "load_date"
MANIFEST_NAME = "_manifest.json"
MIXTURE_NAME = "_mixture.json"
INDEX_NAME = "_index"
# A build's default partitioning, for an output whose manifest does not say.
DEFAULT_PARTITION_BY = ("language", "task_cluster")
REJECT_PARTITION_BY = ("source",)


@dataclass(frozen=True)
class OutputLayout:
    root: str
    data_partitions: tuple[str, ...] = DEFAULT_PARTITION_BY
    reject_partitions: tuple[str, ...] = REJECT_PARTITION_BY
    # A scheduled load: every part is partitioned by load_date first, and a rerun of the date
    # replaces exactly that date's folders.
    load_date: date | None = None

    @classmethod
    def for_run(
        cls, root: str, partition_by: tuple[str, ...] | list[str], load_date: date | None
    ) -> OutputLayout:
        """A build's layout: ``partition_by`` of the conf, led by the date for a dated load."""
        dated = (LOAD_DATE,) if load_date is not None else ()
        return cls(
            root,
            (*dated, *partition_by),
            (*dated, *REJECT_PARTITION_BY),
            load_date,
        )

    def _part(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    @property
    def data(self) -> str:
        return self._part("data")

    @property
    def rejects(self) -> str:
        return self._part("rejects")

    @property
    def duplicates(self) -> str:
        return self._part("duplicates")

    @property
    def manifest(self) -> str:
        return self._part(MANIFEST_NAME)

    @property
    def mixture_manifest(self) -> str:
        return self._part(MIXTURE_NAME)

    @property
    def index(self) -> str:
        """A dated output's index of committed records (``jobs.stages.earlier_loads``)."""
        return self._part(INDEX_NAME)

    @property
    def parts(self) -> tuple[str, ...]:
        """The folders a run commits (``jobs.io.commit``)."""
        return ("data", "rejects", "duplicates", *((INDEX_NAME,) if self.dated else ()))

    @property
    def staging_root(self) -> str:
        return self._part("_staging")

    def staging(self, run_id: str) -> str:
        """The run's intermediate datasets (``jobs.io.staging``) and its outputs before the
        commit (``jobs.io.commit``), removed when it commits."""
        return f"{self.staging_root}/{run_id}"

    def load_manifest(self, load_date: str) -> str:
        """The manifest of the run that committed ``load_date`` (a dated output)."""
        return self._part(f"_loads/{load_date}.json")

    @property
    def loads(self) -> str:
        return self._part("_loads")

    def manifest_history(self, run_id: str) -> str:
        return self._part(f"_manifests/{run_id}.json")

    @property
    def dated(self) -> bool:
        return self.load_date is not None

    @property
    def date_folder(self) -> str | None:
        """This load's folder under each part, for a dated load."""
        return f"{LOAD_DATE}={self.load_date.isoformat()}" if self.load_date else None
