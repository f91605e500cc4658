"""Hugging Face ``datasets`` folders, read without ``datasets``: which files hold a split, their
features, and the Arrow batches of ``save_to_disk`` files.

Layouts: ``Dataset.save_to_disk`` (``state.json`` lists Arrow IPC stream files in order),
``DatasetDict.save_to_disk`` (``dataset_dict.json`` and one such folder per split), and the
Hub's Parquet layouts: ``{config}/{split}/*.parquet`` (refs/convert/parquet) and
``data/{split}-*.parquet`` (``push_to_hub``). Resolution runs on the driver before Spark starts,
so a wrong path or split fails in a second with the choices, not in an executor. Pure pyarrow
and stdlib: the executors' batch reader is here too.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

MAX_BATCH_ROWS = 10_000
_MAX_BATCH_BYTES = 64 << 20  # long documents: fewer rows per batch keeps a worker's memory flat
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# datasets split names are \w+(\.\w+)*, so a split's shard files are "{split}-..." or "{split}."
_SPLIT_FILE = re.compile(r"^(?P<split>\w+(?:\.\w+)*?)(?:-\d+-of-\d+(?:-[0-9a-f]+)?)?\.parquet$")
_SHARD_FILE = re.compile(r"^\d+\.parquet$")  # refs/convert/parquet: {config}/{split}/0000.parquet
_LIST_TYPES = ("Sequence", "List", "LargeList")  # datasets < 4 wrote Sequence; 4+ List/LargeList
_SHOWN = 8


class HfLayoutError(ValueError):
    """The folder is not a readable Hugging Face datasets folder, or the split is not in it."""


@dataclass(frozen=True)
class HfLayout:
    folder: str  # as given
    kind: Literal["arrow", "parquet"]
    files: tuple[str, ...]  # in the dataset's row order, as the folder was spelled (path or URI)
    features: dict[str, Any] | None  # datasets' features JSON, None when the files carry none
    split: str | None  # None: a Dataset saved without a split name
    config: str | None = None  # the Parquet layout's config folder, when path was above it


@dataclass(frozen=True)
class LabelColumn:
    names: tuple[str, ...]
    is_list: bool  # Sequence(ClassLabel): a list of labels

    def name_column(self, column: str) -> str:
        return f"{column}_names" if self.is_list else f"{column}_name"


class _Folder:
    """A folder on the local filesystem or behind a URI pyarrow can open."""

    def __init__(self, spelled: str) -> None:
        self.spelled = spelled.rstrip("/") or "/"
        self.fs, self.base = filesystem(self.spelled)

    def _fs_path(self, relative: str) -> str:
        return f"{self.base.rstrip('/')}/{relative}" if relative else self.base

    def path(self, relative: str) -> str:
        return f"{self.spelled}/{relative}" if relative else self.spelled

    def kind(self, relative: str = "") -> pafs.FileType:
        return self.fs.get_file_info(self._fs_path(relative)).type

    def entries(self, relative: str = "") -> tuple[list[str], list[str]]:
        """(sub-folder names, non-empty file names) directly under it, sorted, hidden skipped."""
        found = self.fs.get_file_info(pafs.FileSelector(self._fs_path(relative)))
        visible = sorted((e for e in found if not e.base_name.startswith((".", "_"))),
                         key=lambda e: e.base_name)  # fmt: skip
        folders = [e.base_name for e in visible if e.type == pafs.FileType.Directory]
        files = [e.base_name for e in visible if e.type == pafs.FileType.File and e.size]
        return folders, files

    def json(self, relative: str) -> Any:
        with self.fs.open_input_stream(self._fs_path(relative)) as stream:
            text = stream.read().decode("utf-8")
        try:
            return json.loads(text)
        except ValueError as exc:
            raise HfLayoutError(f"{self.path(relative)} is not valid JSON: {exc}") from None


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem and path for a local path or a URI (Hadoop's s3a:// is s3://)."""
    if _URI.match(path):
        return pafs.FileSystem.from_uri(re.sub(r"^s3[an]://", "s3://", path))
    return pafs.LocalFileSystem(), str(PurePosixPath(path))


def resolve_hf(folder: str, split: str | None = None) -> HfLayout:
    """The files of ``split`` (or of the only split) of a datasets folder, and its features."""
    root = _Folder(folder)
    try:
        kind = root.kind()
    except (OSError, pa.ArrowException) as exc:
        raise HfLayoutError(f"{folder}: cannot be listed: {exc}") from None
    if kind != pafs.FileType.Directory:
        state = "does not exist" if kind == pafs.FileType.NotFound else "is a file, not a folder"
        raise HfLayoutError(
            f"{folder} {state}: format hf reads a Hugging Face datasets folder (save_to_disk, "
            "or the Hub's Parquet layout)"
        )
    folders, files = root.entries()
    if "dataset_dict.json" in files:
        splits = root.json("dataset_dict.json").get("splits") or []
        chosen = _pick(folder, [str(name) for name in splits], split)
        return _saved_dataset(root, chosen, chosen)
    if "state.json" in files:
        return _saved_dataset(root, "", split)
    layout = _parquet_layout(root, folders, files, split)
    if layout is None:
        shown = [f"{name}/" for name in folders][:_SHOWN] + files[:_SHOWN]
        raise HfLayoutError(
            f"{folder} is not a Hugging Face datasets folder: it has no dataset_dict.json "
            "(DatasetDict.save_to_disk), no state.json (Dataset.save_to_disk) and no Parquet "
            "files as {config}/{split}/*.parquet or data/{split}-*.parquet; it holds "
            f"{', '.join(shown) or 'nothing'}"
        )
    return layout


def _pick(where: str, available: list[str], split: str | None) -> str:
    if split in available:
        return split
    if not available:
        raise HfLayoutError(f"{where} lists no splits")
    if split is None:
        if len(available) == 1:
            return available[0]
        raise HfLayoutError(
            f"{where} has the splits {', '.join(available)}: set split: to one of them"
        )
    nearest = difflib.get_close_matches(split, available, n=len(available), cutoff=0)
    raise HfLayoutError(
        f"{where} has no split {split!r}; its splits (nearest first): {', '.join(nearest)}"
    )


def _saved_dataset(root: _Folder, relative: str, split: str | None) -> HfLayout:
    """One ``Dataset.save_to_disk`` folder (``relative`` to ``root``, "" for root itself)."""
    where = root.path(relative)
    prefix = f"{relative}/" if relative else ""
    if root.kind(f"{prefix}state.json") != pafs.FileType.File:
        raise HfLayoutError(f"{where}: state.json is missing: not a Dataset.save_to_disk folder")
    state = root.json(f"{prefix}state.json")
    names = [str(entry.get("filename")) for entry in state.get("_data_files") or []]
    if not names:
        raise HfLayoutError(f"{where}/state.json lists no data files (_data_files)")
    missing = [name for name in names if root.kind(prefix + name) != pafs.FileType.File]
    if missing:
        raise HfLayoutError(
            f"{where}: data files listed in state.json are missing: {', '.join(missing[:_SHOWN])}"
        )
    saved_split = state.get("_split")
    if split is not None and saved_split not in (None, split):
        raise HfLayoutError(
            f"{where} holds one Dataset, of split {saved_split!r}, not {split!r}: "
            f"set split: {saved_split} or remove split:"
        )
    files = tuple(root.path(prefix + name) for name in names)
    features = None
    if root.kind(f"{prefix}dataset_info.json") == pafs.FileType.File:
        features = root.json(f"{prefix}dataset_info.json").get("features")
    if features is None:
        features = _schema_features(stream_schema(files[0]))
    return HfLayout(root.spelled, "arrow", files, features, split or saved_split)


def _parquet_splits(
    root: _Folder, relative: str, folders: list[str], files: list[str]
) -> dict[str, list[str]]:
    """{split: [relative file, ...]} of one config folder: split-named files in it, or split
    sub-folders of shard files; a folder of shard files alone is the split of its name."""
    prefix = f"{relative}/" if relative else ""
    parquet = [name for name in files if name.endswith(".parquet")]
    if parquet and all(_SHARD_FILE.match(name) for name in parquet):
        return {PurePosixPath(root.path(relative)).name: [prefix + name for name in parquet]}
    splits: dict[str, list[str]] = {}
    for name in parquet:
        if match := _SPLIT_FILE.match(name):
            splits.setdefault(match["split"], []).append(prefix + name)
    for sub in folders:
        inner = [name for name in root.entries(prefix + sub)[1] if name.endswith(".parquet")]
        if inner and not any(_SPLIT_FILE.match(name) and not _SHARD_FILE.match(name)
                             for name in inner):  # fmt: skip
            splits.setdefault(sub, []).extend(f"{prefix}{sub}/{name}" for name in inner)
    return splits


def _parquet_layout(
    root: _Folder, folders: list[str], files: list[str], split: str | None
) -> HfLayout | None:
    config = None
    splits = _parquet_splits(root, "", folders, files)
    if not splits:
        configs = {}
        for sub in folders:
            inner_folders, inner_files = root.entries(sub)
            if found := _parquet_splits(root, sub, inner_folders, inner_files):
                configs[sub] = found
        if len(configs) > 1:
            raise HfLayoutError(
                f"{root.spelled} holds several configs ({', '.join(configs)}): point path at "
                f"one of them, e.g. {root.path(next(iter(configs)))}"
            )
        if not configs:
            return None
        config, splits = next(iter(configs.items()))
    where = root.path(config) if config else root.spelled
    chosen = _pick(where, sorted(splits), split)
    paths = tuple(root.path(name) for name in sorted(splits[chosen]))
    fs, first = filesystem(paths[0])
    try:
        schema = pq.read_schema(first, filesystem=fs)
    except pa.ArrowInvalid as exc:
        raise HfLayoutError(f"{paths[0]} is not a readable Parquet file: {exc}") from None
    return HfLayout(root.spelled, "parquet", paths, _schema_features(schema), chosen, config)


def _schema_features(schema: pa.Schema) -> dict[str, Any] | None:
    """The features datasets writes into a file's schema metadata (key b"huggingface")."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if raw is None:
        return None
    try:
        features = json.loads(raw).get("info", {}).get("features")
    except ValueError:
        return None
    return features if isinstance(features, dict) else None


def _class_label(feature: Any) -> tuple[str, ...] | None:
    if not isinstance(feature, dict) or feature.get("_type") != "ClassLabel":
        return None
    names = feature.get("names")
    if names is None:  # ClassLabel(num_classes=n) names its classes "0".."n-1"
        names = [str(index) for index in range(int(feature.get("num_classes") or 0))]
    return tuple(str(name) for name in names)


def _list_item(feature: Any) -> Any:
    if isinstance(feature, list) and len(feature) == 1:  # datasets' [feature] shorthand
        return feature[0]
    if isinstance(feature, dict) and feature.get("_type") in _LIST_TYPES:
        return feature.get("feature")
    return None


def label_columns(features: dict[str, Any] | None) -> dict[str, LabelColumn]:
    """The top-level ClassLabel columns, and lists of ClassLabel, with their class names."""
    found: dict[str, LabelColumn] = {}
    for column, feature in (features or {}).items():
        if (names := _class_label(feature)) is not None:
            found[column] = LabelColumn(names, is_list=False)
        elif (names := _class_label(_list_item(feature))) is not None:
            found[column] = LabelColumn(names, is_list=True)
    return found


def label_names(features: dict[str, Any] | None) -> dict[str, list[str]]:
    """{column: class names} of each ClassLabel column (a list of labels or one)."""
    return {column: list(label.names) for column, label in label_columns(features).items()}


def _spark_type(kind: pa.DataType) -> pa.DataType:
    """The type Spark's Arrow reader takes for ``kind``: no large_/view variants, dictionary
    or extension wrappers, unsigned integers, half floats, or non-microsecond times."""
    types = pa.types
    if isinstance(kind, pa.ExtensionType):
        return _spark_type(kind.storage_type)
    if types.is_dictionary(kind):
        return _spark_type(kind.value_type)
    if types.is_large_string(kind) or _is(kind, "string_view"):
        return pa.string()
    if types.is_large_binary(kind) or _is(kind, "binary_view"):
        return pa.binary()
    if types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind):
        return pa.list_(_spark_type(kind.value_type))
    if _is(kind, "list_view") or _is(kind, "large_list_view"):
        return pa.list_(_spark_type(kind.value_type))
    if types.is_struct(kind):
        return pa.struct([pa.field(f.name, _spark_type(f.type)) for f in kind])
    if types.is_map(kind):
        return pa.map_(_spark_type(kind.key_type), _spark_type(kind.item_type))
    return _SCALARS.get(kind.id, lambda k: k)(kind)


_SCALARS = {
    pa.uint8().id: lambda _: pa.int16(),
    pa.uint16().id: lambda _: pa.int32(),
    pa.uint32().id: lambda _: pa.int64(),
    pa.uint64().id: lambda _: pa.decimal128(20, 0),
    pa.float16().id: lambda _: pa.float32(),
    pa.date64().id: lambda _: pa.date32(),
    pa.time32("s").id: lambda _: pa.time64("us"),
    pa.time64("us").id: lambda _: pa.time64("us"),
    pa.timestamp("us").id: lambda k: pa.timestamp("us", k.tz),
    pa.duration("us").id: lambda _: pa.duration("us"),
}


def _is(kind: pa.DataType, name: str) -> bool:
    """pyarrow's is_<name>, False where this pyarrow predates the type (views: pyarrow 16)."""
    return bool(getattr(pa.types, f"is_{name}", lambda _: False)(kind))


def spark_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` as Spark takes it from ``mapInArrow``, without datasets' metadata."""
    return pa.schema([pa.field(f.name, _spark_type(f.type)) for f in schema])


def _open(path: str) -> pa.NativeFile:
    if _URI.match(path) and not path.startswith("file://"):
        fs, fs_path = filesystem(path)
        return fs.open_input_file(fs_path)
    return pa.memory_map(path.removeprefix("file://"))  # no copy: pages come from the OS cache


def stream_schema(path: str) -> pa.Schema:
    """The schema of an Arrow IPC stream file (its first message only, no records)."""
    try:
        with _open(path) as source:
            return pa.ipc.open_stream(source).schema
    except (OSError, pa.ArrowInvalid) as exc:
        raise HfLayoutError(f"{path} is not a readable Arrow stream file: {exc}") from None


def _rows_per_batch(batch: pa.RecordBatch, max_rows: int) -> int:
    if batch.num_rows == 0 or batch.nbytes <= _MAX_BATCH_BYTES:
        return max_rows
    return max(1, min(max_rows, batch.num_rows * _MAX_BATCH_BYTES // batch.nbytes))


def arrow_batches(
    files: Iterable[tuple[str, str]],
    schema: pa.Schema,
    file_column: str,
    max_rows: int = MAX_BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """The records of Arrow stream files, given as (path to open, name shown), in ``schema``:
    the data columns, then ``file_column`` holding the name; at most ``max_rows`` a batch."""
    data = pa.schema([f for f in schema if f.name != file_column])
    for path, shown in files:
        with _open(path) as source:
            reader = pa.ipc.open_stream(source)
            missing = sorted(set(data.names) - set(reader.schema.names))
            if missing:
                raise ValueError(f"{path}: columns {missing} of the first file are missing")
            for batch in reader:
                table = pa.Table.from_batches([batch]).select(data.names).cast(data)
                named = table.append_column(
                    pa.field(file_column, pa.string()), pa.array([shown] * table.num_rows)
                )
                yield from named.to_batches(max_chunksize=_rows_per_batch(batch, max_rows))


def read_arrow_files(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    path_column: str,
    shown_column: str,
    file_column: str,
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: batches of file paths (and their shown names) in, records out."""
    for batch in batches:
        paths = batch.column(path_column).to_pylist()
        shown = batch.column(shown_column).to_pylist()
        yield from arrow_batches(zip(paths, shown, strict=True), schema, file_column)
