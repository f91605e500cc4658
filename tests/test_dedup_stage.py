"""The dedup stage on Spark: exact and near duplicates, content not boilerplate, one decision
per source record, representatives, scope and determinism."""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config import DedupConfig
from jobs.stages.dedup import DedupPlan, dedup_decisions, dedup_stage

ROW = T.StructType(
    [
        T.StructField("source", T.StringType()),
        T.StructField("source_key", T.StringType()),
        T.StructField("id", T.StringType()),
        T.StructField("language", T.StringType()),
        T.StructField("instruction", T.StringType()),
        T.StructField("response", T.StringType()),
        T.StructField("dedup_text", T.StringType()),
        T.StructField("reason", T.StringType()),
    ]
)

BASE = (
    "The committee met on Tuesday to review the budget for the new library wing and agreed "
    "to postpone the vote until the architects deliver revised plans next month."
)


def rows(spark: Any, records: list[tuple[str, str, str, str]], templates: int = 1) -> DataFrame:
    """(source, key, language, text) -> rendered rows, ``templates`` per record."""
    data = [
        (
            source,
            key,
            f"{source}-{key}-t{t}",
            language,
            f"Template {t} asks: {text}",
            f"answer {t}",
            text,
            None,
        )
        for source, key, language, text in records
        for t in range(templates)
    ]
    return spark.createDataFrame(data, ROW)


def decisions(frame: DataFrame, **settings: Any) -> dict[tuple[str, str], tuple[str, bool]]:
    plan = DedupPlan.of(DedupConfig(**settings))
    return {
        (row["source"], row["source_key"]): (row["dup_cluster"], row["is_duplicate"])
        for row in dedup_decisions(frame, plan).collect()
    }


def test_exact_and_near_duplicates_are_found_and_others_kept(spark: Any) -> None:
    records = [
        ("a", "1", "en", BASE),
        ("a", "2", "en", BASE.upper().replace(" ", "   ")),  # exact after normalisation
        ("a", "3", "en", BASE.replace("next month.", "next week.")),  # the last word changed
        ("a", "4", "en", "A completely different sentence about rivers, boats and bridges."),
        ("a", "5", "en", None),  # no content of its own: never a duplicate
    ]
    got = decisions(rows(spark, records))
    cluster = got[("a", "1")][0]
    assert got[("a", "2")][0] == cluster and got[("a", "3")][0] == cluster
    assert [got[("a", k)][1] for k in "123"].count(False) == 1
    assert got[("a", "4")] == ("a-4-t0", False)
    assert got[("a", "5")][1] is False


def test_one_template_over_many_distinct_short_records_merges_nothing(spark: Any) -> None:
    """10,000 records rendered from one long template with distinct short contents: their
    instructions are near-identical, their contents are not."""
    records = [("t", str(i), "en", f"item {i} colour {i * 7919 % 10007}") for i in range(10_000)]
    frame = rows(spark, records)
    got = decisions(frame)
    assert len(got) == 10_000
    assert sum(duplicate for _, duplicate in got.values()) == 0
    # The same rows deduplicated on their rendered instructions would collapse.
    on_instruction = frame.withColumn(
        "dedup_text",
        F.concat(
            F.lit("Read the following product description carefully and then decide which "
                  "category of the catalogue it belongs to, answering with one word: "),
            F.col("dedup_text"),
        ),
    )  # fmt: skip
    merged = sum(duplicate for _, duplicate in decisions(on_instruction).values())
    assert merged > 9_000


def test_rows_of_one_record_stand_or_fall_together(spark: Any) -> None:
    records = [("s", "1", "en", BASE), ("s", "2", "en", BASE)]
    frame = rows(spark, records, templates=3)
    plan = DedupPlan.of(DedupConfig())
    out = frame.transform(dedup_stage(plan)).collect()
    by_key: dict[str, set[bool]] = {}
    for row in out:
        by_key.setdefault(row["source_key"], set()).add(row["is_duplicate"])
    assert by_key == {"1": {False}, "2": {True}}
    assert {row["dup_cluster"] for row in out} == {"s-1-t0"}


def test_representative_rules(spark: Any) -> None:
    records = [("b", "1", "en", BASE), ("a", "9", "en", BASE)]
    frame = rows(spark, records)
    smallest = decisions(frame)
    assert smallest[("a", "9")][1] is False and smallest[("b", "1")][1] is True
    preferred = decisions(frame, representative="source_priority", source_priority=["b"])
    assert preferred[("b", "1")][1] is False and preferred[("a", "9")][1] is True
    longer = frame.withColumn(
        "response", F.when(F.col("source") == "b", F.lit("a much longer answer")).otherwise("x")
    )
    longest = decisions(longer, representative="longest_response")
    assert longest[("b", "1")][1] is False and longest[("a", "9")][1] is True


def test_scope_language_keeps_the_same_text_in_two_languages(spark: Any) -> None:
    frame = rows(spark, [("m", "1", "en", BASE), ("m", "2", "de", BASE)])
    assert sum(d for _, d in decisions(frame).values()) == 1
    assert sum(d for _, d in decisions(frame, scope="language").values()) == 0


def test_same_clusters_whatever_the_partitioning(spark: Any) -> None:
    words = BASE.split()
    records = []
    for i in range(300):
        variant = list(words)
        variant[i % len(words)] = f"w{i % 5}"  # groups of near-duplicates
        records.append(("d", str(i), "en", " ".join(variant)))
    frame = rows(spark, records)
    reference = decisions(frame.coalesce(1))
    assert 0 < sum(d for _, d in reference.values()) < 300
    for partitions in (3, 7):
        assert decisions(frame.repartition(partitions)) == reference
