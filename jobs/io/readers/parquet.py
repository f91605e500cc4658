"""Parquet sources.

Parquet files of one source may disagree on a column's type (``label`` int64 one day, string
the next), which fails Spark's schema merge naming no file or column. So the driver reads the
footers first (pyarrow, never records): integers of any width are read as bigint, float and
double as double, other differing scalars (int/float/decimal/bool/string/date/timestamp) as a
string in which each record keeps its own file's value as that type spells it (1 is "1", not
"1.0"; a bool "True" as a template shows it; a float as Spark casts it, NaN "NaN"; a declared
``fields`` type still turns "1" into 1); an all-null (Parquet null type) column is null. Nested
types that differ beyond Spark's merge (a struct that gained a field is fine), or binary against
anything, raise SourceReadError (exit 2) before any Spark work, naming the source, the column,
each type and a few of its files. Drifting files are read in groups of one type pattern, unioned
by name. Without drift, or where footers cannot be read on the driver (a scheme or credentials
pyarrow lacks, a glob in a URI, over MAX_FOOTERS files), it is one Spark read as before.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import reduce

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from py4j.protocol import Py4JJavaError
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config.plan import SourcePlan
from jobs.config.sources import is_uri
from jobs.failures import explain
from jobs.io.readers.common import FILE_PATH, SourceReadError, check_reserved, with_file
from udfs.render_batches import FILE_COLUMN

log = logging.getLogger("instructmill")
MAX_FOOTERS = 20_000  # beyond this many files the driver leaves the schema merge to Spark
_FOOTER_THREADS = 16  # footers are small reads: latency, not bandwidth, on object stores
_SHOWN_FILES = 3
_URI_GLOB = re.compile(r"[{}\[\]*?]")
_LOCAL = pafs.LocalFileSystem()
_PLAIN = {pa.large_string(): pa.string(), pa.string_view(): pa.string(),
          pa.large_binary(): pa.binary(), pa.binary_view(): pa.binary()}  # fmt: skip
_TEXTUAL = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_boolean,
            pa.types.is_string, pa.types.is_date, pa.types.is_timestamp)  # fmt: skip


class _NotOnDriver(Exception):
    """The footers cannot be read on the driver: Spark reads the source as it always did."""


@dataclass(frozen=True)
class _File:
    root: str | None  # the folder a file was found in (Spark's basePath), None for a named file
    path: str  # as Spark is given it
    columns: dict[str, pa.DataType]


def _listed(path: str) -> list[tuple[str | None, str, pafs.FileSystem, str]]:
    """(root, Spark's path, filesystem, its path) of each non-empty file ``path`` names, as
    Spark lists them: files and folders named .x or _x (but not _x=y) are skipped."""
    try:
        if _URI_GLOB.search(path) and is_uri(path):
            raise _NotOnDriver(path)
        uri = re.sub(r"^s3[an]:", "s3:", path)  # Hadoop's s3a:// is pyarrow's s3://
        fs, fs_path = pafs.FileSystem.from_uri(uri) if is_uri(path) else (_LOCAL, path)
        info = fs.get_file_info(fs_path)
        if info.type == pafs.FileType.File:
            return [(None, path, fs, fs_path)] if info.size else []
        if info.type != pafs.FileType.Directory:
            raise _NotOnDriver(path)  # Spark names the missing path in its own error
        base = fs_path.rstrip("/")
        found = sorted(
            fs.get_file_info(pafs.FileSelector(base, recursive=True)), key=lambda child: child.path
        )
    except (pa.ArrowException, OSError) as exc:
        raise _NotOnDriver(path) from exc
    hidden = re.compile(r"(^|/)(\.|_(?![^/]*=))")
    return [
        (path, f"{path.rstrip('/')}/{relative}", fs, child.path)
        for child in found
        if child.type == pafs.FileType.File and child.size
        if not hidden.search(relative := child.path[len(base) :].lstrip("/"))
    ]


def _normal(kind: pa.DataType) -> pa.DataType:
    """The type as Spark sees it: no dictionary encoding, large_ or view variants, or names
    and nullability of nested fields."""
    types = pa.types
    if types.is_dictionary(kind):
        return _normal(kind.value_type)
    if types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind):
        return pa.list_(_normal(kind.value_type))
    if types.is_map(kind):
        return pa.map_(_normal(kind.key_type), _normal(kind.item_type))
    if types.is_struct(kind):
        return pa.struct([pa.field(f.name, _normal(f.type)) for f in kind])
    return _PLAIN.get(kind, kind)


def _footer(source: SourcePlan, listed: tuple[str | None, str, pafs.FileSystem, str]) -> _File:
    root, path, fs, fs_path = listed
    try:
        schema = pq.read_schema(fs_path, filesystem=fs)
    except pa.ArrowInvalid as exc:
        raise SourceReadError(
            f"source {source.name!r} ({source.registry_file}): {path} is not a readable "
            f"Parquet file: {exc}"
        ) from None
    except OSError as exc:
        raise _NotOnDriver(path) from exc
    return _File(root, path, {f.name: _normal(f.type) for f in schema})


def _footers(source: SourcePlan) -> list[_File]:
    listed = [entry for path in source.paths for entry in _listed(path)]
    if len(listed) > MAX_FOOTERS:
        raise _NotOnDriver(f"{len(listed)} files")
    with ThreadPoolExecutor(_FOOTER_THREADS) as pool:
        return list(pool.map(lambda entry: _footer(source, entry), listed))


def _merged(a: pa.DataType | None, b: pa.DataType) -> pa.DataType | None:
    """The type Spark's schema merge gives two files' types of one column, None if it fails."""
    if a is None or a == b:
        return a
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        fields: dict[str, pa.DataType | None] = {f.name: f.type for f in a}
        for f in b:
            fields[f.name] = _merged(fields[f.name], f.type) if f.name in fields else f.type
        merged = [pa.field(name, kind) for name, kind in fields.items() if kind is not None]
        return pa.struct(merged) if len(merged) == len(fields) else None
    if pa.types.is_list(a) and pa.types.is_list(b):
        item = _merged(a.value_type, b.value_type)
        return None if item is None else pa.list_(item)
    if pa.types.is_map(a) and pa.types.is_map(b):
        key, item = _merged(a.key_type, b.key_type), _merged(a.item_type, b.item_type)
        return None if key is None or item is None else pa.map_(key, item)
    return None


def _target(kinds: set[pa.DataType]) -> str | None:
    """What a column of several types is read as: "keep" (Spark merges them), bigint, double
    or string; None when their values have no common type."""
    if reduce(_merged, kinds, next(iter(kinds))) is not None:
        return "keep"
    # uint64 is a decimal to Spark, not a bigint.
    if all(pa.types.is_signed_integer(k) or pa.types.is_uint32(k) or pa.types.is_uint16(k)
           or pa.types.is_uint8(k) for k in kinds):  # fmt: skip
        return "bigint"
    if all(pa.types.is_floating(kind) for kind in kinds):
        return "double"
    return "string" if all(any(is_(kind) for is_ in _TEXTUAL) for kind in kinds) else None


def _drifts(source: SourcePlan, files: list[_File]) -> dict[str, str]:
    """Each column whose type differs across the files, and what it is read as."""
    by_column: dict[str, dict[pa.DataType, list[str]]] = {}
    for file in files:
        for name, kind in file.columns.items():
            by_column.setdefault(name, {}).setdefault(kind, []).append(file.path)
    drifts: dict[str, str] = {}
    for name, by_type in by_column.items():
        kinds = {kind for kind in by_type if not pa.types.is_null(kind)}
        target = _target(kinds) if len(by_type) > 1 else "keep"
        if target is None:
            shown = [f"{kind} in {', '.join(paths[:_SHOWN_FILES])}"
                     + (f" (+{len(paths) - _SHOWN_FILES} more)" if paths[_SHOWN_FILES:] else "")
                     for kind, paths in by_type.items()]  # fmt: skip
            raise SourceReadError(
                f"source {source.name!r} ({source.registry_file}): column {name!r} has types "
                f"that cannot be read as one across its Parquet files: {'; '.join(shown)}. "
                f"Rewrite those files with one type for {name!r}, or register them as two sources"
            )
        if target != "keep" or len(kinds) < len(by_type):  # Spark cannot merge a null type
            drifts[name] = target
            seen = ", ".join(f"{k} ({len(v)} of {len(files)} files)" for k, v in by_type.items())
            log.info("read: source %r column %r is %s: read as %s", source.name, name, seen, target)
    return drifts


def _group_key(file: _File, drifts: dict[str, str]) -> tuple[str | None, ...]:
    """The file's root and drifting columns' types: files of one key are read together."""
    kinds = [(file.columns.get(name), target) for name, target in drifts.items()]
    return (
        file.root,
        *(None if k is None or pa.types.is_null(k) else "kept" if t == "keep" else str(k)
          for k, t in kinds),
    )  # fmt: skip


def _read_group(
    spark: SparkSession, source: SourcePlan, files: list[_File], drifts: dict[str, str]
) -> DataFrame:
    reader = spark.read.option("mergeSchema", "true")
    if files[0].root is not None:  # partition folders under it stay columns, as before
        reader = reader.option("basePath", files[0].root)
    frame = reader.parquet(*[file.path for file in files])
    check_reserved(frame.columns, source)
    columns: list[Column] = []
    for name in frame.columns:
        kind, target, column = files[0].columns.get(name), drifts.get(name), F.col(f"`{name}`")
        if target is not None and (kind is None or pa.types.is_null(kind)):
            continue  # all null here: the union gives it the other files' type, as null
        if target in (None, "keep"):
            columns.append(column)
        elif target == "string" and pa.types.is_boolean(kind):
            # The text a template shows for a Python bool, not Spark's "true".
            columns.append(F.when(column, "True").when(~column, "False").alias(name))
        else:
            columns.append(column.cast(target).alias(name))
    return frame.select(*columns, F.col(FILE_PATH).alias(FILE_COLUMN))


def _read_parquet_with_spark(spark: SparkSession, source: SourcePlan) -> DataFrame:
    # Merge the files' schemas: otherwise one file's schema wins and a column that only other
    # files have silently disappears from their records.
    try:
        frame = spark.read.option("mergeSchema", "true").parquet(*source.paths)
    except Py4JJavaError as exc:
        if "CANNOT_MERGE" not in (reason := explain(exc)):
            raise
        raise SourceReadError(
            f"source {source.name!r} ({source.registry_file}): its Parquet files disagree on "
            f"a column's type ({reason}); they could not be compared on the driver to read "
            "each with its own type"
        ) from exc
    return with_file(frame, source)


def read_parquet(spark: SparkSession, source: SourcePlan) -> DataFrame:
    if spark.conf.get("spark.sql.files.ignoreCorruptFiles", "false") == "true":
        return _read_parquet_with_spark(spark, source)  # Spark alone knows what it skips
    try:
        files = _footers(source)
    except _NotOnDriver:
        return _read_parquet_with_spark(spark, source)
    drifts = _drifts(source, files)
    if not drifts:
        return _read_parquet_with_spark(spark, source)
    groups: dict[tuple[str | None, ...], list[_File]] = {}
    for file in files:
        groups.setdefault(_group_key(file, drifts), []).append(file)
    frames = [_read_group(spark, source, group, drifts) for group in groups.values()]
    return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
