"""Counting and the manifest: every number comes from an aggregate, never from collected rows.

``read`` is counted on the input, ``written`` and ``rejected`` on what is on disk after the
write, so the reconciliation ``rows = written + rejected + duplicates`` (with
``rows = read x templates per record``) checks the pipeline rather than restating it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from functools import reduce
from typing import Any, NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from jobs import hadoop_fs
from jobs.config import RunPlan, SourcePlan
from jobs.readers import read_source
from jobs.schema import OUTPUT_SCHEMA, REJECT_SCHEMA
from udfs.taxonomy import UNASSIGNED

MANIFEST_NAME = "_manifest.json"


def count_read(spark: SparkSession, plan: RunPlan) -> dict[str, int]:
    """Input records per source, in one job (no column is read for Parquet)."""
    frames = [_counted(read_source(spark, source), source) for source in plan.sources]
    counts = (
        reduce(DataFrame.unionByName, frames)
        .groupBy("source")
        .agg(F.count(F.lit(1)).alias("count"), F.max("_all_fields").alias("_all_fields"))
        .collect()
    )
    found = {row["source"]: int(row["count"]) for row in counts}
    return {source.name: found.get(source.name, 0) for source in plan.sources}


def _counted(frame: DataFrame, source: SourcePlan) -> DataFrame:
    """One row per record. A SuperNI task file is parsed with its schema: when the count
    reads no field, Spark parses none, and a file whose fields do not fit the schema would
    count its instances here and render as one malformed reject. A hash of every field makes
    the count parse what rendering parses."""
    every_field = (
        F.xxhash64(*[F.col(f"`{name}`") for name in frame.columns])
        if source.format == "superni"
        else F.lit(0).cast("long")
    )
    return frame.select(F.lit(source.name).alias("source"), every_field.alias("_all_fields"))


def count_by(frame: DataFrame, *keys: str) -> dict[tuple[Any, ...], int]:
    """Aggregated counts; the result has one row per key combination, not per record."""
    return {
        tuple(row[key] for key in keys): int(row["count"])
        for row in frame.groupBy(*keys).count().collect()
    }


def count_shared_ids(rows: DataFrame) -> dict[str, int]:
    """Rows per source whose id another row also has: records that repeat an ``id_field``
    value, or identical records without one (the dedup stage decides between them)."""
    repeated = rows.groupBy("source", "id").count().where(F.col("count") > 1)
    totals = repeated.groupBy("source").agg(F.sum("count").alias("rows")).collect()
    return {row["source"]: int(row["rows"]) for row in totals}


class RenderedCounts(NamedTuple):
    kept: int  # rendered rows, duplicates included
    rejected: int
    duplicates: dict[str, int]  # rows per source that dedup removes
    # For rows that reached language ID: (source, detected content language, mismatch).
    languages: dict[tuple[Any, ...], int]


def count_rendered(rendered: DataFrame) -> RenderedCounts:
    """One aggregation over the persisted frame."""
    groups = count_by(
        rendered.select(
            "source",
            F.col("reason").isNull().alias("kept"),
            F.col("instruction").isNotNull().alias("reached_langid"),
            "detected_language",
            "lang_mismatch",
            F.coalesce(F.col("is_duplicate"), F.lit(False)).alias("duplicate"),
        ),
        "source",
        "kept",
        "reached_langid",
        "detected_language",
        "lang_mismatch",
        "duplicate",
    )
    kept = sum(count for (_, ok, *_), count in groups.items() if ok)
    languages: dict[tuple[Any, ...], int] = defaultdict(int)
    duplicates: dict[str, int] = defaultdict(int)
    for (source, ok, reached, code, mismatch, duplicate), count in groups.items():
        if reached:
            languages[(source, code, mismatch)] += count
        if ok and duplicate:
            duplicates[source] += count
    return RenderedCounts(kept, sum(groups.values()) - kept, dict(duplicates), dict(languages))


# Upper bounds of the cluster-size histogram's buckets (records per cluster).
CLUSTER_BUCKETS = (1, 2, 3, 5, 10, 100, 1_000, 10_000, 100_000, 1_000_000)


def cluster_summary(rows: DataFrame, largest: int = 5, samples: int = 5) -> dict[str, Any]:
    """Clusters of source records: a size histogram and the largest few with sample ids,
    from aggregates (the largest clusters are found with a bounded top-k, not a collect)."""
    records = rows.select("dup_cluster", "source", "source_key").distinct()
    sizes = records.groupBy("dup_cluster").agg(F.count(F.lit(1)).alias("size"))
    bucket = F.lit(None).cast("string")
    for upper in reversed(CLUSTER_BUCKETS):
        bucket = F.when(F.col("size") <= upper, F.lit(f"<={upper:,}")).otherwise(bucket)
    bucket = F.coalesce(bucket, F.lit(f">{CLUSTER_BUCKETS[-1]:,}"))
    histogram = {
        row["bucket"]: (int(row["clusters"]), int(row["records"]))
        for row in sizes.groupBy(bucket.alias("bucket"))
        .agg(F.count(F.lit(1)).alias("clusters"), F.sum("size").alias("records"))
        .collect()
    }
    ordered = [f"<={upper:,}" for upper in CLUSTER_BUCKETS] + [f">{CLUSTER_BUCKETS[-1]:,}"]
    top = sizes.where(F.col("size") > 1).orderBy(F.desc("size"), "dup_cluster").limit(largest)
    top_rows = top.collect()
    ranked = (
        rows.join(F.broadcast(top.select("dup_cluster")), "dup_cluster")
        .select("dup_cluster", "id", "source")
        .withColumn("n", F.row_number().over(Window.partitionBy("dup_cluster").orderBy("id")))
        .where(F.col("n") <= samples)
        .collect()
    )
    sample_ids: dict[str, list[str]] = defaultdict(list)
    for row in sorted(ranked, key=lambda r: (r["dup_cluster"], r["n"])):
        sample_ids[row["dup_cluster"]].append(f"{row['source']}:{row['id']}")
    return {
        "histogram": [
            {"size": name, "clusters": histogram[name][0], "records": histogram[name][1]}
            for name in ordered
            if name in histogram
        ],
        "largest": [
            {
                "dup_cluster": row["dup_cluster"],
                "records": int(row["size"]),
                "sample_rows": sample_ids[row["dup_cluster"]],
            }
            for row in top_rows
        ],
    }


def _language_summary(name: str, languages: dict[tuple[Any, ...], int]) -> dict[str, Any]:
    detected: dict[str, int] = defaultdict(int)
    mismatched = judged = 0
    for (source, code, mismatch), count in languages.items():
        if source != name or code is None:
            continue
        detected[code] += count
        mismatched += count if mismatch else 0
        judged += count if code != "und" else 0
    return {
        "detected": dict(sorted(detected.items(), key=lambda kv: (-kv[1], kv[0]))),
        "mismatched": mismatched,
        "mismatch_rate": round(mismatched / judged, 4) if judged else 0.0,
    }


def read_back(
    spark: SparkSession, path: str, schema: Any, partition_cols: list[str], subfolder: str | None
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


def count_on_disk(
    spark: SparkSession,
    path: str,
    kind: str,
    partition_cols: list[str],
    run_id: str,
    keys: tuple[str, ...],
    subfolder: str | None = None,
) -> dict[tuple[Any, ...], int]:
    schema = OUTPUT_SCHEMA if kind == "data" else REJECT_SCHEMA
    frame = read_back(spark, path, schema, partition_cols, subfolder)
    if frame is None:
        return {}
    return count_by(frame.where(F.col("run_id") == F.lit(run_id)), *keys)


def build_manifest(
    plan: RunPlan,
    run: dict[str, Any],
    read: dict[str, int],
    written: dict[tuple[Any, ...], int],
    rejected: dict[tuple[Any, ...], int],
    shared_ids: dict[str, int] | None = None,
    duplicates: dict[str, int] | None = None,
    languages: dict[tuple[Any, ...], int] | None = None,
    clusters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    duplicates = duplicates or {}
    shared_ids = shared_ids or {}
    sources: dict[str, Any] = {}
    for source in plan.sources:
        per_template: dict[str, dict[str, int]] = {
            spec.template_id: {"applied": 0, "rejected": 0} for spec in source.render.templates
        }
        by_reason: dict[str, int] = defaultdict(int)
        task_clusters: dict[str, int] = defaultdict(int)
        splits: dict[str, int] = defaultdict(int)
        for (name, template_id, cluster, split), count in written.items():
            if name == source.name:
                per_template.setdefault(template_id, {"applied": 0, "rejected": 0})["applied"] += (
                    count
                )
                task_clusters[cluster] += count
                splits[split] += count
        for (name, template_id, reason), count in rejected.items():
            if name == source.name:
                per_template.setdefault(template_id, {"applied": 0, "rejected": 0})["rejected"] += (
                    count
                )
                by_reason[reason] += count
        n_written = sum(t["applied"] for t in per_template.values())
        n_rejected = sum(by_reason.values())
        n_duplicates = duplicates.get(source.name, 0)
        rows = read[source.name] * source.render.rows_per_record
        sources[source.name] = {
            "read": read[source.name],
            "templates_per_record": source.render.rows_per_record,
            "rows": rows,
            "written": n_written,
            "rejected": n_rejected,
            "rejected_by_reason": dict(sorted(by_reason.items())),
            "duplicates": n_duplicates,
            "shared_ids": shared_ids.get(source.name, 0),
            "task_clusters": dict(sorted(task_clusters.items(), key=lambda kv: (-kv[1], kv[0]))),
            "unassigned": task_clusters.get(UNASSIGNED, 0),
            "splits": dict(sorted(splits.items())),
            "langid": _language_summary(source.name, languages or {}),
            "reconciled": rows == n_written + n_rejected + n_duplicates,
            "templates": per_template,
        }
    totals = {
        key: sum(entry[key] for entry in sources.values())
        for key in ("read", "rows", "written", "rejected", "duplicates", "shared_ids", "unassigned")
    }
    totals["splits"] = {
        split: sum(entry["splits"].get(split, 0) for entry in sources.values())
        for split in sorted({s for entry in sources.values() for s in entry["splits"]})
    }
    totals["reconciled"] = all(entry["reconciled"] for entry in sources.values())
    manifest = {
        **run,
        "config": plan.describe(),
        "sources": sources,
        "totals": totals,
        # Rows written with no cluster from the taxonomy, by source: never silently dropped.
        "unassigned": {
            name: entry["unassigned"] for name, entry in sources.items() if entry["unassigned"]
        },
    }
    if clusters is not None:
        manifest["dedup_clusters"] = clusters
    return manifest


def unreconciled(manifest: dict[str, Any]) -> list[str]:
    return [
        f"{name}: rows {entry['rows']} != written {entry['written']} + rejected "
        f"{entry['rejected']} + duplicates {entry['duplicates']}"
        for name, entry in manifest["sources"].items()
        if not entry["reconciled"]
    ]


def write_manifest(spark: SparkSession, output: str, manifest: dict[str, Any]) -> list[str]:
    text = json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    latest = f"{output.rstrip('/')}/{MANIFEST_NAME}"
    history = f"{output.rstrip('/')}/_manifests/{manifest['run_id']}.json"
    hadoop_fs.write_text(spark, latest, text)
    hadoop_fs.write_text(spark, history, text)
    return [latest, history]


def summary_table(manifest: dict[str, Any]) -> str:
    headers = (
        "source", "read", "rows", "written", "rejected", "duplicates", "ok", "heldout",
        "unassigned", "lang mismatch", "top reject",
    )  # fmt: skip
    body: list[Iterable[Any]] = []
    for name, entry in manifest["sources"].items():
        reasons = entry["rejected_by_reason"]
        top = max(reasons.items(), key=lambda kv: kv[1]) if reasons else None
        body.append(
            (
                name,
                entry["read"],
                entry["rows"],
                entry["written"],
                entry["rejected"],
                entry["duplicates"],
                "yes" if entry["reconciled"] else "NO",
                entry["splits"].get("heldout", 0),
                entry["unassigned"],
                entry["langid"]["mismatched"],
                f"{top[0]} ({top[1]})" if top else "",
            )
        )
    totals = manifest["totals"]
    body.append(
        (
            "TOTAL",
            totals["read"],
            totals["rows"],
            totals["written"],
            totals["rejected"],
            totals["duplicates"],
            "yes" if totals["reconciled"] else "NO",
            totals["splits"].get("heldout", 0),
            totals["unassigned"],
            sum(entry["langid"]["mismatched"] for entry in manifest["sources"].values()),
            "",
        )
    )
    cells = [[f"{c:,}" if isinstance(c, int) else str(c) for c in row] for row in [headers, *body]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i in (0, len(row) - 1) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join(
        [line(cells[0]), rule, *[line(row) for row in cells[1:-1]], rule, line(cells[-1])]
    )
