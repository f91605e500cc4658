"""Mixtures: the planning math exactly, then the job on a synthetic build output (caps, splits,
shares, determinism across input layouts, the manifest's reconciliation, config errors)."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from jobs.config import ConfigError, MixtureCaps, MixtureConfig, MixtureGroups, MixtureLanguages
from jobs.stages.mixture import NULL_VALUE
from udfs.mixture_plan import (
    MixturePlanError,
    group_shares,
    language_shares,
    largest_exact_total,
    plan_mixture,
    water_fill,
)

# ---- planning, pure ----------------------------------------------------------------------------


def test_group_shares_normalise_over_groups_present() -> None:
    available = {"a": 10, "b": 30, "c": 60}
    assert group_shares(available, {"a": 1, "b": 3, "gone": 100}, 0.0) == {
        "a": 0.25,
        "b": 0.75,
        "c": 0.0,
    }
    shares = group_shares(available, {"a": 2}, default_weight=1.0)
    assert shares == pytest.approx({"a": 0.5, "b": 0.25, "c": 0.25})
    assert group_shares(available, None, 0.0) == pytest.approx({"a": 0.1, "b": 0.3, "c": 0.6})
    with pytest.raises(MixturePlanError, match="no group present"):
        group_shares(available, {"gone": 1.0}, 0.0)
    # The mix command answers it as a config error (exit 2).
    from jobs.commands.mix import plan_for

    config = MixtureConfig(groups=MixtureGroups(weights={"gone": 1.0}))
    with pytest.raises(ConfigError, match="no group present"):
        plan_for(config, {("a", "en"): 10})


def test_language_temperature() -> None:
    counts = {"en": 900, "fr": 90, "sw": 10}
    assert language_shares(counts, 0.0) == pytest.approx({"en": 1 / 3, "fr": 1 / 3, "sw": 1 / 3})
    assert language_shares(counts, 1.0) == pytest.approx({"en": 0.9, "fr": 0.09, "sw": 0.01})
    half = language_shares(counts, 0.5)
    assert half["en"] == pytest.approx(30 / (30 + math.sqrt(90) + math.sqrt(10)))
    assert half["en"] < 0.9 and half["sw"] > 0.01  # flatter than proportional


def test_water_fill_caps_and_redistributes_in_proportion() -> None:
    shares = {"a": 0.5, "b": 0.3, "c": 0.2}
    available = {"a": 100, "b": 1000, "c": 1000}
    targets = water_fill(600, shares, available)
    assert targets["a"] == 100  # asked 300, has 100
    # a's leftover (200) goes to b and c 3:2, on top of their own 180 and 120.
    assert targets["b"] == pytest.approx(300)
    assert targets["c"] == pytest.approx(200)
    assert math.fsum(targets.values()) == pytest.approx(600)
    # Cascades: c saturates only once a's leftover arrives.
    cascade = water_fill(1000, shares, {"a": 100, "b": 1000, "c": 250})
    assert cascade == pytest.approx({"a": 100, "b": 650, "c": 250})
    # More than there is: everything with a positive share, never more.
    everything = water_fill(10_000, {**shares, "z": 0.0}, {**available, "z": 50})
    assert everything == pytest.approx({"a": 100, "b": 1000, "c": 1000, "z": 0})


def test_default_total_is_the_largest_exact_total() -> None:
    counts = {("s1", "en"): 800, ("s1", "fr"): 200, ("s2", "en"): 50, ("s2", "de"): 450}
    plan = plan_mixture(counts, {"s1": 1, "s2": 1}, alpha=1.0)
    requested = {(c.group, c.language): c.requested_share for c in plan.cells}
    assert requested == pytest.approx(
        {("s1", "en"): 0.4, ("s1", "fr"): 0.1, ("s2", "en"): 0.05, ("s2", "de"): 0.45}
    )
    # s2 (500 rows, share 0.5) binds: T = 1000, every cell gets exactly its share.
    assert plan.total == pytest.approx(largest_exact_total(requested, counts)) == 1000
    for cell in plan.cells:
        assert cell.target_rows == pytest.approx(cell.requested_share * 1000)
        assert cell.target_rows <= cell.available + 1e-9
    assert {(c.group, c.language) for c in plan.cells if c.saturated} == {
        ("s2", "en"),
        ("s2", "de"),
    }


def test_plan_is_hierarchical_and_never_over_availability() -> None:
    counts = {("big", "en"): 10_000, ("big", "sw"): 100, ("small", "en"): 300}
    plan = plan_mixture(counts, {"big": 1, "small": 1}, alpha=0.0, total=4_000)
    target = {(c.group, c.language): c.target_rows for c in plan.cells}
    # small is asked 2000 and has 300: the other 1700 go to big (3700). Inside big, alpha 0
    # asks 1850 of each language; sw has 100, so en takes the rest.
    assert target == pytest.approx({("small", "en"): 300, ("big", "sw"): 100, ("big", "en"): 3_600})
    assert plan.target_rows == pytest.approx(4_000)
    for cell in plan.cells:
        assert 0 <= cell.probability <= 1
        assert cell.target_rows <= cell.available


def test_zero_weight_group_is_never_sampled() -> None:
    plan = plan_mixture({("a", "en"): 100, ("b", "en"): 100}, {"a": 1.0}, total=50)
    assert plan.probabilities() == {("a", "en"): 0.5, ("b", "en"): 0.0}


# ---- the job on a synthetic build output -------------------------------------------------------

ROWS = 30_000
SOURCES = ("src0", "src1", "src2", "src3")
LANGUAGES = ("en", "fr", "de", "ja", "sw")
PARTITION_BY = ["language", "task_cluster"]
CONFIG = MixtureConfig(
    seed=11,
    split="train",
    total=12_000,
    caps=MixtureCaps(by="task", default=3_000, values={"src0_t0": 1_500}),
    groups=MixtureGroups(by="source", weights={"src0": 1, "src1": 1, "src2": 2}, default_weight=1),
    languages=MixtureLanguages(column="language", alpha=0.5),
)


def _pick(spark_col: Any, names: tuple[str, ...], upper_bounds: tuple[int, ...]) -> Any:
    """A skewed categorical from a uniform 0..999 bucket."""
    from pyspark.sql import functions as F

    out = F.lit(names[-1])
    for name, upper in reversed(list(zip(names[:-1], upper_bounds, strict=True))):
        out = F.when(spark_col < upper, F.lit(name)).otherwise(out)
    return out


def synthetic_output(spark: Any) -> Any:
    """Rows of a build output: 4 sources (50/25/15/10%), 3 tasks each (60/30/10%), 5
    languages (50/20/15/10/5%); task t2 of every source is in a held-out cluster."""
    from pyspark.sql import functions as F

    from jobs.schema import messages_column, select_output

    def bucket(salt: str) -> Any:
        return F.pmod(F.xxhash64(F.lit(salt), F.col("n")), F.lit(1000))

    source = _pick(bucket("source"), SOURCES, (500, 750, 900))
    task_no = _pick(bucket("task"), ("t0", "t1", "t2"), (600, 900))
    language = _pick(bucket("language"), LANGUAGES, (500, 700, 850, 950))
    base = spark.range(ROWS).select(
        F.col("id").alias("n"),
        source.alias("source"),
        task_no.alias("task_no"),
        language.alias("language"),
    )
    return base.select(
        F.sha2(F.col("n").cast("string"), 256).substr(1, 32).alias("id"),
        "source",
        F.col("n").cast("string").alias("source_key"),
        F.concat_ws("_", "source", "task_no").alias("task"),
        F.when(F.col("task_no") == "t2", "held").otherwise("cluster_a").alias("task_cluster"),
        F.when(F.col("task_no") == "t2", "heldout").otherwise("train").alias("split"),
        F.lit("tpl").alias("template_id"),
        F.lit("h").alias("template_hash"),
        F.lit("zsnoopt").alias("template_format"),
        F.concat(F.lit("question "), F.col("n").cast("string")).alias("instruction"),
        F.concat(F.lit("answer "), F.col("n").cast("string")).alias("response"),
        messages_column().alias("messages"),
        "language",
        *[
            F.lit(None).alias(name)
            for name in (
                "instruction_lang",
                "instruction_lang_score",
                "response_lang",
                "response_lang_score",
                "script",
                "lang_mismatch",
                "dedup_text",
                "content_hash",
                "dup_cluster",
            )
        ],
        F.lit(False).alias("is_duplicate"),
        F.lit("cc-by-4.0").alias("license"),
        F.lit("2026-01-01").cast("date").alias("load_date"),
        F.lit("build-1").alias("run_id"),
    ).transform(select_output)


def write_build_output(frame: Any, folder: Path, files: int) -> str:
    frame.repartition(files).write.mode("overwrite").partitionBy(*PARTITION_BY).parquet(
        str(folder / "data")
    )
    manifest = {"output": {"data": str(folder / "data"), "partition_by": PARTITION_BY}}
    (folder / "_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return str(folder)


def written_ids(spark: Any, output: str) -> set[str]:
    # Test-sized data: collecting ids is how the test compares row sets.
    return {row["id"] for row in spark.read.parquet(f"{output}/data").select("id").collect()}


@pytest.fixture(scope="module")
def mixes(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from jobs.commands.mix import execute, run_mix

    root = tmp_path_factory.mktemp("mix")
    rows = synthetic_output(spark)
    one_file = write_build_output(rows, root / "in-1", files=1)
    seven_files = write_build_output(rows, root / "in-7", files=7)
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = execute(spark, CONFIG, one_file, str(root / "a"))
    run_mix(spark, CONFIG, one_file, str(root / "rerun"))
    run_mix(spark, CONFIG, seven_files, str(root / "seven"))
    return {
        "input": one_file,
        "exit": code,
        "printed": printed.getvalue(),
        "a": str(root / "a"),
        "manifest": json.loads((root / "a" / "_mixture.json").read_text(encoding="utf-8")),
        "rerun": str(root / "rerun"),
        "seven": str(root / "seven"),
    }


@pytest.mark.spark
def test_mix_reconciles_and_prints_shares(mixes: dict[str, Any]) -> None:
    manifest = mixes["manifest"]
    counts = manifest["counts"]
    assert mixes["exit"] == 0
    assert counts["reconciled"] is True
    # The run ends with its report (jobs.report), named in what it prints.
    assert (Path(mixes["a"]) / "report.html").is_file()
    assert f"report: {mixes['a']}/report.html" in mixes["printed"]
    assert counts["read"] == ROWS
    assert counts["read"] == (
        counts["written"] + counts["other_split"] + counts["capped"] + counts["not_sampled"]
    )
    assert counts["other_split"] > 0 and counts["capped"] > 0 and counts["not_sampled"] > 0
    assert sum(row["achieved_rows"] for row in manifest["cells"]) == counts["written"]
    assert manifest["output"]["partition_by"] == PARTITION_BY
    printed = mixes["printed"]
    assert "target %" in printed and "achieved %" in printed and "reconciled" in printed
    assert all(f"{100 * row['target_share']:.2f}" in printed for row in manifest["groups"])


@pytest.mark.spark
def test_caps_are_exact(spark: Any, mixes: dict[str, Any]) -> None:
    from pyspark.sql import functions as F

    from jobs.io.outputs import read_data
    from jobs.layout import OutputLayout
    from jobs.stages.mixture import cap_stage, split_stage

    layout = OutputLayout(mixes["input"], tuple(PARTITION_BY))
    rows = read_data(spark, layout).transform(split_stage("train"))
    before = {r["task"]: r["count"] for r in rows.groupBy("task").count().collect()}
    after = {
        r["task"]: r["count"]
        for r in rows.transform(cap_stage(CONFIG.caps, CONFIG.seed))
        .groupBy("task")
        .count()
        .collect()
    }
    assert CONFIG.caps is not None
    expected = {
        task: min(n, CONFIG.caps.values.get(task, CONFIG.caps.default or n))
        for task, n in before.items()
    }
    assert after == expected
    assert any(n > expected[task] for task, n in before.items())  # some caps bind
    assert mixes["manifest"]["counts"]["capped"] == sum(before.values()) - sum(after.values())
    # Written rows never exceed a cap either (sampling only removes rows).
    out = spark.read.parquet(f"{mixes['a']}/data").groupBy("task").count()
    assert out.where(F.col("count") > F.lit(3_000)).count() == 0


@pytest.mark.spark
def test_heldout_rows_never_enter_a_train_mixture(spark: Any, mixes: dict[str, Any]) -> None:
    from pyspark.sql import functions as F

    out = spark.read.parquet(f"{mixes['a']}/data")
    assert out.where(F.col("split") != "train").count() == 0
    assert out.where(F.col("task").endswith("_t2")).count() == 0
    source = spark.read.parquet(f"{mixes['input']}/data")
    assert (
        mixes["manifest"]["counts"]["other_split"]
        == source.where(F.col("split") == "heldout").count()
    )


@pytest.mark.spark
def test_same_rows_on_rerun_and_any_input_layout(spark: Any, mixes: dict[str, Any]) -> None:
    first = written_ids(spark, mixes["a"])
    assert len(first) == mixes["manifest"]["counts"]["written"]
    assert written_ids(spark, mixes["rerun"]) == first
    assert written_ids(spark, mixes["seven"]) == first


@pytest.mark.spark
def test_achieved_shares_are_close_to_targets(mixes: dict[str, Any]) -> None:
    """Each cell's count is binomial with variance t_c (1 - p_c) <= t_c, so a group's or
    language's count N has a standard deviation of at most sqrt(t) rows, and its share N/W
    (W ~ 12k written) one of at most sqrt(t)/W: 0.9 percentage points at t = 12k, 0.37 at
    t = 2k. So 1.5 points is over 4 standard deviations for every unit with t >= 2k (the
    seed is fixed, so the outcome is deterministic; the bound says it is not a lucky seed)."""
    manifest = mixes["manifest"]
    assert manifest["counts"]["written"] == pytest.approx(CONFIG.total, rel=0.03)
    checked = 0
    for table in ("groups", "languages"):
        for row in manifest[table]:
            if row["target_rows"] >= 2_000:
                checked += 1
                assert abs(row["achieved_share"] - row["target_share"]) < 0.015, row
            if row["saturated"]:
                assert row["achieved_rows"] == row["available"]
    assert checked >= 4
    # Weights: src2 asks twice src0's share; src3 (default weight 1) as much as src0.
    groups = {row["group"]: row for row in manifest["groups"]}
    assert groups["src2"]["requested_share"] == pytest.approx(0.4)
    assert groups["src3"]["requested_share"] == pytest.approx(0.2)


@pytest.mark.spark
def test_cap_window_is_a_partial_top_k(spark: Any) -> None:
    """Spark infers a WindowGroupLimit (partial top-k before the shuffle) from the literal
    largest cap, once the threshold covers it; the job sets the threshold for its run."""
    from jobs.commands.mix import group_limit_threshold
    from jobs.stages.mixture import cap_stage

    rows = synthetic_output(spark)
    with group_limit_threshold(spark, CONFIG):
        plan = rows.transform(cap_stage(CONFIG.caps, CONFIG.seed))._jdf.queryExecution()
        physical = plan.executedPlan().toString()
    assert "WindowGroupLimit" in physical and "Partial" in physical
    assert spark.conf.get("spark.sql.optimizer.windowGroupLimitThreshold") == "1000"


@pytest.mark.spark
def test_null_values_are_a_value_of_their_own(spark: Any) -> None:
    from jobs.stages.mixture import GROUP, cap_stage, cell_stage

    frame = spark.createDataFrame(
        [(f"id{i}", None if i % 2 else "x", "q", "a") for i in range(10)],
        "id string, script string, instruction string, response string",
    )
    capped = frame.transform(cap_stage(MixtureCaps(by="script", values={NULL_VALUE: 2}), 0))
    counts = {
        r[GROUP]: r["count"]
        for r in capped.transform(cell_stage("script", "script")).groupBy(GROUP).count().collect()
    }
    assert counts == {NULL_VALUE: 2, "x": 5}


def test_missing_column_is_a_config_error(tmp_path: Path) -> None:
    from jobs.cli import main

    conf = tmp_path / "mixture.yaml"
    conf.write_text("groups: {by: dataset}\ncaps: {by: task, default: 10}\n", encoding="utf-8")
    code = main(
        ["mix", "--conf", str(conf), "--input", str(tmp_path), "--output", str(tmp_path / "o")]
    )
    assert code == 2
    from jobs.config import check_columns

    with pytest.raises(ConfigError, match=r"groups\.by: no output column 'dataset'.*task_cluster"):
        check_columns(MixtureConfig(groups=MixtureGroups(by="dataset")))
    with pytest.raises(ConfigError, match=r"languages\.column: no output column 'messages'"):
        check_columns(MixtureConfig(languages=MixtureLanguages(column="messages")))
