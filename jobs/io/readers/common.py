"""What every reader shares: the error for a source that cannot be read, and the file column."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.config import ConfigError
from jobs.config.plan import SourcePlan
from udfs.render_batches import FILE_COLUMN, READER_COLUMNS

FILE_PATH = "_metadata.file_path"


class SourceReadError(ConfigError):
    """A source that cannot be read at all (not one bad record), naming the fix: exit code 2."""


def check_reserved(columns: list[str], source: SourcePlan) -> None:
    clash = sorted(set(columns) & {*READER_COLUMNS, "_metadata"})
    if clash:
        raise SourceReadError(
            f"source {source.name!r} ({source.registry_file}): columns {clash} are reserved "
            "for instructmill's readers; rename them in the data"
        )


def with_file(frame: DataFrame, source: SourcePlan) -> DataFrame:
    check_reserved(frame.columns, source)
    columns = [F.col(f"`{name}`") for name in frame.columns]
    return frame.select(*columns, F.col(FILE_PATH).alias(FILE_COLUMN))
