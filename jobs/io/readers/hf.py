"""Hugging Face ``datasets`` folders (format hf), read without ``datasets`` or the Hub.

The driver resolves the folder (udfs.hf_layout: which files hold the split, and their
features) and reads one schema; the executors read the records. Parquet layouts are Spark
Parquet reads. ``save_to_disk`` files are Arrow IPC streams, which Spark has no reader for:
a frame of their paths, one file a partition, is turned into records by ``mapInArrow``. Each
ClassLabel column ``c`` gets its class name in ``c_name`` (``c_names`` for a list of labels),
so templates can show "entailment" where the data holds 0.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from jobs.config.plan import SourcePlan
from jobs.config.sources import is_uri
from jobs.io.readers.common import SourceReadError, check_reserved
from jobs.io.readers.parquet import read_parquet
from udfs.hf_layout import (
    HfLayout,
    HfLayoutError,
    LabelColumn,
    label_columns,
    read_arrow_files,
    resolve_hf,
    spark_schema,
    stream_schema,
)
from udfs.render_batches import FILE_COLUMN

log = logging.getLogger("instructmill")
_PATH = "path"
_SHOWN = "shown"
_INDEX = "file_index"
_SCHEMA_THREADS = 16  # one small read per file: latency, not bandwidth


def _error(source: SourcePlan, message: str) -> SourceReadError:
    return SourceReadError(f"source {source.name!r} ({source.registry_file}): {message}")


def resolve_source(source: SourcePlan) -> HfLayout:
    """The source's layout, with a wrong folder or split as a SourceReadError (exit 2)."""
    if len(source.paths) != 1:
        raise _error(source, f"format hf reads one dataset folder; path names {len(source.paths)}")
    try:
        return resolve_hf(source.paths[0], source.registry.split)
    except HfLayoutError as exc:
        raise _error(source, str(exc)) from None


def _shown(path: str) -> str:
    """The file column's value: as Spark's ``_metadata.file_path`` spells a Parquet file
    (``file:/a/b`` for a local path), so rejects name files alike in every format."""
    if is_uri(path):
        return path
    return "file:" + Path(path).absolute().as_uri().removeprefix("file://")


def _one_schema(source: SourcePlan, layout: HfLayout) -> pa.Schema:
    """The files' one schema, read on the driver (each file's first message, no records): a
    shard that differs would fail its task after work has started, so it fails here."""
    try:
        with ThreadPoolExecutor(_SCHEMA_THREADS) as pool:
            schemas = list(pool.map(stream_schema, layout.files))
    except HfLayoutError as exc:
        raise _error(source, str(exc)) from None
    first = spark_schema(schemas[0])
    for path, schema in zip(layout.files[1:], schemas[1:], strict=True):
        if not spark_schema(schema).equals(first):
            raise _error(
                source,
                f"{path} has the schema {spark_schema(schema)}, but {layout.files[0]} has "
                f"{first}; the shards of one split must agree",
            )
    return schemas[0]


def _read_arrow(spark: SparkSession, source: SourcePlan, layout: HfLayout) -> DataFrame:
    schema = _one_schema(source, layout)
    check_reserved(schema.names, source)
    data = spark_schema(schema)
    target = data.append(pa.field(FILE_COLUMN, pa.string()))
    files = [(index, path, _shown(path)) for index, path in enumerate(layout.files)]
    paths = spark.createDataFrame(files, f"{_INDEX} int, {_PATH} string, {_SHOWN} string")
    # One file a partition: a file is read by one task, files by parallel tasks.
    return paths.repartitionByRange(len(files), _INDEX).mapInArrow(
        partial(
            read_arrow_files,
            schema=target,
            path_column=_PATH,
            shown_column=_SHOWN,
            file_column=FILE_COLUMN,
        ),
        from_arrow_schema(target),
    )


def _class_name(value: Column, names: list[str]) -> Column:
    """The class name of label ``value``; null for -1 (no label) or a value out of range."""
    if not names:
        return F.lit(None).cast("string")
    array = F.array(*[F.lit(name) for name in names])
    in_range = (value >= 0) & (value < len(names))
    return F.when(in_range, F.element_at(array, (value + 1).cast("int")))


def _names_of(value: Column, label: LabelColumn) -> Column:
    names = list(label.names)
    if label.is_list:
        return F.transform(value, lambda item: _class_name(item, names))
    return _class_name(value, names)


def _with_label_names(
    frame: DataFrame, source: SourcePlan, labels: dict[str, LabelColumn]
) -> DataFrame:
    present = {name.lower() for name in frame.columns}
    added: list[Column] = []
    for column, label in labels.items():
        target = label.name_column(column)
        if column.lower() not in present:
            continue
        if target.lower() in present:
            log.warning(
                "read: source %r already has a column %r: ClassLabel %r's names are not added",
                source.name, target, column,
            )  # fmt: skip
            continue
        added.append(_names_of(F.col(f"`{column}`"), label).alias(target))
    if not added:
        return frame
    data = [F.col(f"`{name}`") for name in frame.columns if name != FILE_COLUMN]
    return frame.select(*data, *added, F.col(FILE_COLUMN))


def read_hf(spark: SparkSession, source: SourcePlan) -> DataFrame:
    """One split of a Hugging Face datasets folder: its columns (ClassLabels as their ints,
    nested features as structs), a ``{c}_name`` column per ClassLabel ``c``, and the file."""
    layout = resolve_source(source)
    if layout.kind == "parquet":
        frame = read_parquet(spark, replace(source, paths=layout.files))
    else:
        frame = _read_arrow(spark, source, layout)
    log.info(
        "read: source %r is split %r of %s (%d %s files)",
        source.name, layout.split, layout.folder, len(layout.files), layout.kind,
    )  # fmt: skip
    return _with_label_names(frame, source, label_columns(layout.features))
