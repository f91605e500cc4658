"""Readers: one source's files -> a source frame (the record's own columns, or its JSON text)."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession

from jobs.config.plan import SourcePlan
from jobs.io.readers.common import SourceReadError
from jobs.io.readers.conllu import read_conllu
from jobs.io.readers.hf import read_hf
from jobs.io.readers.parquet import read_parquet
from jobs.io.readers.superni import read_superni
from jobs.io.readers.text import read_csv, read_jsonl

__all__ = ["SourceReadError", "read_source"]

_READERS: dict[str, Callable[[SparkSession, SourcePlan], DataFrame]] = {
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "csv": read_csv,
    "superni": read_superni,
    "conllu": read_conllu,
    "hf": read_hf,
}


def read_source(spark: SparkSession, source: SourcePlan) -> DataFrame:
    try:
        return _READERS[source.format](spark, source)
    except AnalysisException as exc:
        first_line = (str(exc).splitlines() or [""])[0]
        raise SourceReadError(
            f"source {source.name!r} ({source.registry_file}): cannot read "
            f"{source.format} from {list(source.paths)[:3]}: {first_line}"
        ) from exc
