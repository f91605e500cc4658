"""Benchmarks to decontaminate against, resolved and opened on the driver before Spark starts:
a missing or unreadable file is a config error naming the file, never a failed job."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jobs.config.loading import ConfigError
from jobs.config.models import BenchmarkRef, CsvOptions
from jobs.config.sources import expand_local, is_uri, resolve_path


@dataclass(frozen=True)
class BenchmarkPlan:
    """One benchmark, read with the source readers (hence ``registry_file`` and ``csv``)."""

    ref: BenchmarkRef
    registry_file: str  # the file that names it
    paths: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def format(self) -> str:
        return self.ref.format

    @property
    def csv(self) -> CsvOptions:
        return self.ref.csv or CsvOptions()


def _check_readable(file: Path, key: str, path: str, format: str) -> None:
    if is_uri(path):
        return  # checked by Spark
    try:
        if format == "parquet":
            import pyarrow.parquet as pq

            pq.read_metadata(path)
        else:
            with open(path, "rb") as handle:
                handle.read(1)
    except IsADirectoryError:
        if format != "parquet":
            raise ConfigError(f"{file}: {key}: {path!r} is a folder; name the files") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{file}: {key}: cannot read {path!r} as {format}: {exc}") from None


def benchmark_plans(file: Path, refs: list[BenchmarkRef]) -> tuple[BenchmarkPlan, ...]:
    plans = []
    for index, ref in enumerate(refs):
        key = f"decontamination.benchmarks[{index}] ({ref.name}).path"
        patterns = [ref.path] if isinstance(ref.path, str) else ref.path
        paths: list[str] = []
        for pattern in patterns:
            paths.extend(expand_local(file, key, resolve_path(file.parent, pattern)))
        if ref.csv is not None and ref.format != "csv":
            raise ConfigError(f"{file}: {key}: 'csv' options apply only to format: csv")
        for path in paths:
            if not is_uri(path) and Path(path).is_dir() and ref.format != "parquet":
                raise ConfigError(f"{file}: {key}: {path!r} is a folder; name the files")
            _check_readable(file, key, path, ref.format)
        plans.append(BenchmarkPlan(ref, str(file), tuple(dict.fromkeys(paths))))
    return tuple(plans)
