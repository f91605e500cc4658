"""Reading what an earlier run wrote: its manifest, its layout, and its Parquet parts with
the output schema (partition values stay strings)."""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from jobs.io import hadoop_fs
from jobs.layout import DEFAULT_PARTITION_BY, OutputLayout
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
    fields = [field for field in schema.fields if field.name not in partition_cols]
    full = T.StructType(fields + [T.StructField(name, T.StringType()) for name in partition_cols])
    return spark.read.schema(full).option("basePath", path).parquet(target)


def read_data(spark: SparkSession, layout: OutputLayout) -> DataFrame:
    """The output's ``data/`` rows; a clear error when there are none."""
    frame = read_back(spark, layout.data, OUTPUT_SCHEMA, layout.data_partitions)
    if frame is None:
        raise FileNotFoundError(f"{layout.data}: no build output here (expected Parquet in data/)")
    return frame
