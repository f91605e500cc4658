"""Mixtures at 1M rows: shares against targets, exact caps, determinism, time per run.

    .venv/bin/python bench/mixture_bench.py [--rows 1000000] [--master local[2]]

A synthetic pool made by Spark itself from ``spark.range`` (deterministic: every attribute is a
hash of the row number): 8 sources, 60 tasks, 12 task clusters, 20 languages, all with Zipf-like
sizes, so the largest tasks are far above their caps and the rarest languages have a few hundred
rows. Cluster c11 is held out. The pool is written in the build's layout (``data/language=../
task_cluster=../``, a ``_manifest.json``), once as the build writer lays it out and once
repartitioned into 13 hash-partitioned tasks (other files, other row order).

The mixture: caps per task (default 20k, two tasks with their own), group weights by source,
language alpha 0.3, a total of 30% of the pool. Reported and checked:
- for every group and language with at least 10k rows available: |achieved - target share| in
  percentage points (the largest, and where);
- caps are exact: for every capped task, rows after caps - min(n, cap) is 0 (not above, not
  below), and no task is above its cap in the written mixture;
- a rerun and a run on the repartitioned input write the same ids (symmetric difference 0);
- seconds per run.
Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyspark.sql import Column, DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from jobs.commands.mix import group_limit_threshold, run_mix  # noqa: E402
from jobs.config import MixtureCaps, MixtureConfig, MixtureGroups, MixtureLanguages  # noqa: E402
from jobs.io.outputs import read_data  # noqa: E402
from jobs.io.writer import write_partitioned  # noqa: E402
from jobs.layout import OutputLayout  # noqa: E402
from jobs.runner import build_session  # noqa: E402
from jobs.schema import messages_column, select_output  # noqa: E402
from jobs.stages.mixture import cap_stage, split_stage  # noqa: E402

PARTITION_BY = ["language", "task_cluster"]
SOURCES = [f"src{i}" for i in range(8)]
TASKS = 60
CLUSTERS = 12
LANGUAGES = [
    "en", "zh", "es", "fr", "de", "ar", "ru", "ja", "pt", "hi",
    "id", "tr", "ko", "vi", "it", "pl", "fa", "sw", "yo", "gu",
]  # fmt: skip
HELDOUT_CLUSTER = f"c{CLUSTERS - 1}"
MIN_CHECKED = 10_000
# Columns of later stages (language ID, dedup) that mixing does not look at.
NULL_COLUMNS = (
    "instruction_lang", "instruction_lang_score", "response_lang", "response_lang_score",
    "script", "lang_mismatch", "dedup_text", "content_hash", "dup_cluster",
)  # fmt: skip
# A unit's written count is binomial with variance <= its target t, so its share of W written
# rows has a standard deviation <= sqrt(t) / W: at most 0.18 points at t = W = 300k, far less
# for smaller units. 0.5 points is beyond 2.7 standard deviations for every unit.
MAX_SHARE_ERROR_PP = 0.5


def zipf_pick(bucket: Column, names: list[str], exponent: float) -> Column:
    """A name with probability ∝ 1 / rank ** exponent, from a uniform bucket in [0, 1)."""
    weights = [1 / (rank + 1) ** exponent for rank in range(len(names))]
    edges = [sum(weights[: i + 1]) / sum(weights) for i in range(len(names) - 1)]
    out = F.when(bucket < edges[0], F.lit(names[0]))
    for name, edge in zip(names[1:-1], edges[1:], strict=True):
        out = out.when(bucket < edge, F.lit(name))
    return out.otherwise(F.lit(names[-1]))


def uniform(salt: str) -> Column:
    return F.shiftrightunsigned(F.xxhash64(F.lit(salt), F.col("n")), 11) / F.lit(float(2**53))


def synthetic_pool(spark: SparkSession, rows: int) -> DataFrame:
    tasks = [f"task{i:02d}" for i in range(TASKS)]
    task = zipf_pick(uniform("task"), tasks, 1.1)
    task_no = F.substring(task, 5, 2).cast("int")
    base = spark.range(rows).select(
        F.col("id").alias("n"),
        task.alias("task"),
        # Tasks belong to sources and clusters, so source sizes are skewed too.
        F.element_at(F.array(*map(F.lit, SOURCES)), (task_no % len(SOURCES)) + 1).alias("source"),
        F.concat(F.lit("c"), (task_no % CLUSTERS).cast("string")).alias("task_cluster"),
        zipf_pick(uniform("language"), LANGUAGES, 1.2).alias("language"),
    )
    return base.select(
        F.sha2(F.col("n").cast("string"), 256).substr(1, 32).alias("id"),
        "source",
        F.col("n").cast("string").alias("source_key"),
        "task",
        "task_cluster",
        F.when(F.col("task_cluster") == HELDOUT_CLUSTER, "heldout")
        .otherwise("train")
        .alias("split"),
        F.lit("tpl").alias("template_id"),
        F.lit("h").alias("template_hash"),
        F.lit("zsnoopt").alias("template_format"),
        F.concat(F.lit("Classify this text: "), F.col("n").cast("string")).alias("instruction"),
        F.concat(F.lit("label "), (F.col("n") % 7).cast("string")).alias("response"),
        messages_column().alias("messages"),
        "language",
        F.lit(False).alias("is_duplicate"),
        F.lit("cc-by-4.0").alias("license"),
        F.lit("2026-01-01").cast("date").alias("load_date"),
        F.lit("bench").alias("run_id"),
        *[F.lit(None).alias(name) for name in NULL_COLUMNS],
    ).transform(select_output)


def write_pool(pool: DataFrame, folder: Path, rows: int, files: int | None) -> str:
    data = str(folder / "data")
    if files is None:
        write_partitioned(pool, data, PARTITION_BY, rows, 500_000, "zstd")
    else:
        pool.repartition(files).write.mode("overwrite").partitionBy(*PARTITION_BY).parquet(data)
    (folder / "_manifest.json").write_text(
        json.dumps({"output": {"data": data, "partition_by": PARTITION_BY}}), encoding="utf-8"
    )
    return str(folder)


def mixture_config(rows: int) -> MixtureConfig:
    return MixtureConfig(
        seed=2026,
        split="train",
        total=int(rows * 0.3),
        caps=MixtureCaps(by="task", default=20_000, values={"task00": 60_000, "task03": 5_000}),
        groups=MixtureGroups(
            by="source",
            weights={"src0": 3.0, "src1": 2.0, "src2": 1.5, "src3": 1.0, "src7": 0.5},
            default_weight=1.0,
        ),
        languages=MixtureLanguages(column="language", alpha=0.3),
    )


def timed_mix(spark: SparkSession, config: MixtureConfig, src: str, out: str) -> tuple[Any, float]:
    start = time.perf_counter()
    manifest = run_mix(spark, config, src, out).to_dict()
    return manifest, time.perf_counter() - start


def share_errors(manifest: dict[str, Any]) -> list[tuple[float, str, dict[str, Any]]]:
    errors = []
    for table, key in (("groups", "group"), ("languages", "language")):
        for row in manifest[table]:
            if row["available"] >= MIN_CHECKED:
                error = 100 * abs(row["achieved_share"] - row["target_share"])
                errors.append((error, f"{key} {row[key]}", row))
    return sorted(errors, key=lambda item: -item[0])


def cap_check(spark: SparkSession, config: MixtureConfig, src: str, out: str) -> dict[str, int]:
    """Aggregates only: rows per task before and after caps, and in the written mixture."""
    assert config.caps is not None
    rows = read_data(spark, OutputLayout(src, tuple(PARTITION_BY))).transform(
        split_stage(config.split)
    )
    with group_limit_threshold(spark, config):
        after = rows.transform(cap_stage(config.caps, config.seed)).groupBy("task").count()
        counts = (
            rows.groupBy("task")
            .count()
            .withColumnRenamed("count", "n")
            .join(after.withColumnRenamed("count", "kept"), "task", "left")
            .collect()  # one row per task (60)
        )
    written = {
        r["task"]: r["count"]
        for r in spark.read.parquet(f"{out}/data").groupBy("task").count().collect()
    }
    worst_exact = worst_written = 0
    binding = 0
    for row in counts:
        cap = config.caps.values.get(row["task"], config.caps.default)
        assert cap is not None
        expected = min(row["n"], cap)
        binding += row["n"] > cap
        worst_exact = max(worst_exact, abs((row["kept"] or 0) - expected))
        worst_written = max(worst_written, written.get(row["task"], 0) - cap)
    return {
        "tasks": len(counts),
        "binding": binding,
        "max_abs(kept - min(n, cap))": worst_exact,
        "max(written - cap)": worst_written,
    }


def symmetric_difference(spark: SparkSession, left: str, right: str) -> int:
    a = spark.read.parquet(f"{left}/data").select(F.col("id").alias("a"))
    b = spark.read.parquet(f"{right}/data").select(F.col("id").alias("b"))
    return (
        a.join(b, F.col("a") == F.col("b"), "full_outer")
        .where(F.col("a").isNull() | F.col("b").isNull())
        .count()
    )


def measure(spark: SparkSession, work: Path, config: MixtureConfig, rows: int) -> dict[str, Any]:
    """Three mixes (first, rerun, input in 13 files) of one pool, and the checks on them."""
    start = time.perf_counter()
    pool = synthetic_pool(spark, rows)
    built = write_pool(pool, work / "pool", rows, None)
    other = write_pool(pool, work / "pool-13", rows, 13)
    generate = time.perf_counter() - start
    first, t_first = timed_mix(spark, config, built, str(work / "mix-a"))
    _, t_rerun = timed_mix(spark, config, built, str(work / "mix-b"))
    _, t_other = timed_mix(spark, config, other, str(work / "mix-c"))
    with group_limit_threshold(spark, config):
        plan = read_data(spark, OutputLayout(built, tuple(PARTITION_BY))).transform(
            cap_stage(config.caps, config.seed)
        )
        top_k = "WindowGroupLimit" in plan._jdf.queryExecution().executedPlan().toString()
    return {
        "generate": generate,
        "first": first,
        "errors": share_errors(first),
        "caps": cap_check(spark, config, built, str(work / "mix-a")),
        "rerun_diff": symmetric_difference(spark, str(work / "mix-a"), str(work / "mix-b")),
        "layout_diff": symmetric_difference(spark, str(work / "mix-a"), str(work / "mix-c")),
        "top_k": top_k,
        "seconds": {"first": t_first, "rerun": t_rerun, "thirteen_files": t_other},
    }


def report(figures: dict[str, Any], config: MixtureConfig, rows: int) -> bool:
    """Print the figures; whether every check passes."""
    first, errors, caps = figures["first"], figures["errors"], figures["caps"]
    counts, seconds = first["counts"], figures["seconds"]
    print(f"\npool: {rows:,} rows ({figures['generate']:.1f} s to generate and write twice)")
    print(
        f"counts: read {counts['read']:,} = written {counts['written']:,} + other split "
        f"{counts['other_split']:,} + capped {counts['capped']:,} + not sampled "
        f"{counts['not_sampled']:,} -> reconciled {counts['reconciled']}"
    )
    print(f"total requested {config.total:,}, target {first['total']['target_rows']:,.0f}")
    print(f"\nshare error, units with >= {MIN_CHECKED:,} rows available ({len(errors)} units):")
    for error, name, row in errors[:5]:
        print(
            f"  {name:<14} target {100 * row['target_share']:6.2f}%  achieved "
            f"{100 * row['achieved_share']:6.2f}%  |diff| {error:.3f} pp  "
            f"(target {row['target_rows']:,.0f} rows)"
        )
    print(f"  max |achieved - target| = {errors[0][0]:.3f} pp ({errors[0][1]})")
    print(f"\ncaps: {caps}")
    print(f"partial top-k (WindowGroupLimit) in the cap plan: {figures['top_k']}")
    print(f"rerun: symmetric difference of ids = {figures['rerun_diff']}")
    print(f"input in 13 files: symmetric difference of ids = {figures['layout_diff']}")
    print(
        f"seconds per run: {seconds['first']:.1f} (first), {seconds['rerun']:.1f} (rerun), "
        f"{seconds['thirteen_files']:.1f} (13 files)"
    )
    ok = (
        counts["reconciled"]
        and caps["max_abs(kept - min(n, cap))"] == 0
        and caps["max(written - cap)"] <= 0
        and figures["rerun_diff"] == 0
        and figures["layout_diff"] == 0
        and figures["top_k"]
        and errors[0][0] < MAX_SHARE_ERROR_PP
    )
    print("CHECKS " + ("PASS" if ok else "FAIL"))
    return bool(ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    spark = build_session(
        "instructmill mixture bench",
        args.master,
        {
            "spark.driver.memory": "4g",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
        },
    )
    spark.sparkContext.setLogLevel("ERROR")
    work = Path(tempfile.mkdtemp(prefix="mixture-bench-"))
    config = mixture_config(args.rows)
    try:
        figures = measure(spark, work, config, args.rows)
    finally:
        spark.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ok = report(figures, config, args.rows)
    errors = figures["errors"]
    results = Path(__file__).resolve().parent / "results" / "mixture.json"
    results.write_text(
        json.dumps(
            {
                "rows": args.rows,
                "counts": figures["first"]["counts"],
                "max_share_error_pp": round(errors[0][0], 4),
                "worst_unit": errors[0][1],
                "units_checked": len(errors),
                "caps": figures["caps"],
                "window_group_limit": figures["top_k"],
                "rerun_symmetric_difference": figures["rerun_diff"],
                "thirteen_files_symmetric_difference": figures["layout_diff"],
                "seconds": figures["seconds"],
                "checks_pass": ok,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
