"""Reading what an earlier run wrote: its manifest, its layout, and its Parquet parts with
the output schema (partition values stay strings)."""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from jobs.io import hadoop_fs
from jobs.layout import DEFAULT_PARTITION_BY, LOAD_DATE, OutputLayout
from jobs.schema import OUTPUT_SCHEMA


def read_manifest(spark: SparkSession, layout: OutputLayout) -> dict[str, Any]:
    """The output's ``_manifest.json``, or {} when it has none."""
    if hadoop_fs.exists(spark, layout.manifest):
        return json.loads(hadoop_fs.read_text(spark, layout.manifest))  # type: ignore[no-any-return]
    return {}


def write_json(spark: SparkSession, path: str, document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    hadoop_fs.write_text(spark, path, text)


def existing_layout(spark: SparkSession, root: str) -> tuple[OutputLayout, dict[str, Any]]:
    """An earlier output's layout (its partitioning from its manifest, else a build's
    default) and its manifest."""
    manifest = read_manifest(spark, OutputLayout(root))
    columns = manifest.get("output", {}).get("partition_by") or DEFAULT_PARTITION_BY
    return OutputLayout(root, tuple(columns)), manifest


def _full_schema(schema: T.StructType, partition_cols: tuple[str, ...] | list[str]) -> T.StructType:
    """The schema as read back: partition columns last, as strings."""
    fields = [field for field in schema.fields if field.name not in partition_cols]
    return T.StructType(fields + [T.StructField(name, T.StringType()) for name in partition_cols])


def read_back(
    spark: SparkSession,
    path: str,
    schema: T.StructType,
    partition_cols: tuple[str, ...] | list[str],
    subfolder: str | None = None,
) -> DataFrame | None:
    """An output folder with the given schema (partition columns as strings), or None when
    it does not exist. ``subfolder``: one load date's folder, so checking this run's output
    does not cost more as the table's history grows."""
    target = f"{path.rstrip('/')}/{subfolder}" if subfolder else path
    if not hadoop_fs.exists(spark, target):
        return None
    full = _full_schema(schema, partition_cols)
    return spark.read.schema(full).option("basePath", path).parquet(target)


def committed_files(spark: SparkSession, layout: OutputLayout, part: str) -> list[str] | None:
    """The files of ``part`` (data, rejects...) that the committed runs wrote, as their
    manifests list them (a dated output: the manifest of each load date); None for an output
    whose manifests do not list files (written before they did)."""
    if LOAD_DATE in layout.data_partitions:
        names = [name for name in hadoop_fs.children(spark, layout.loads) if name.endswith(".json")]
        documents = [read_json(spark, f"{layout.loads}/{name}") for name in names]
    else:
        documents = [read_manifest(spark, layout)]
    files: list[str] = []
    for document in documents:
        listed = document.get("files", {}).get(part)
        if listed is None:
            return None
        files.extend(listed)
    return files if documents else None


def read_json(spark: SparkSession, path: str) -> dict[str, Any]:
    return json.loads(hadoop_fs.read_text(spark, path))  # type: ignore[no-any-return]


def read_data(spark: SparkSession, layout: OutputLayout) -> DataFrame:
    """The output's committed ``data/`` rows, read through the manifests' file lists (so a
    reader on an object store never lists a half-moved folder); a clear error when there is
    no output."""
    files = committed_files(spark, layout, "data")
    if files is not None:
        full = _full_schema(OUTPUT_SCHEMA, layout.data_partitions)
        if not files:
            return spark.createDataFrame([], full)
        root = layout.root.rstrip("/")
        return (
            spark.read.schema(full)
            .option("basePath", layout.data)
            .parquet(*[f"{root}/{name}" for name in files])
        )
    frame = read_back(spark, layout.data, OUTPUT_SCHEMA, layout.data_partitions)
    if frame is None:
        raise FileNotFoundError(f"{layout.data}: no build output here (expected Parquet in data/)")
    return frame
