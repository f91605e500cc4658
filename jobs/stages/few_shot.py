"""FLAN's few-shot formats: a few-shot row's instruction gets ``k`` exemplars in front of it,
other records of the same source rendered with the same template.

Exemplars are only known once the build has decided which rows it writes: they come from
rows that are written (no reject, not a duplicate) in the train split, so a held-out,
rejected, contaminated or duplicate record never appears inside another row. This stage runs
after every decision, on the rows about to be written.

Scale: a per-(source, template) pool of at most ``few_shot.pool`` candidates, chosen by a hash
of (seed, id) without a sort of the source: a group's count sets a hash threshold that keeps
about four times the pool, and a window ranks only those. The pool (one row per group, its
candidates in an array) is staged and broadcast to the few-shot rows; each row takes ``k + 1``
consecutive pool slots from a hashed start and drops its own record, so a row costs O(k).
Rows of other formats pass through without a join.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from jobs.config import SourcePlan
from jobs.io.staging import Staging
from jobs.schema import is_accepted
from udfs.flan_formats import BLOCK_SEPARATOR, FEW_SHOT, WITH_OPTIONS

NEEDS = ("source", "source_key", "id", "template_id", "template_format", "instruction",
         "response", "answer_options", "split", "is_duplicate", "reason")  # fmt: skip
_OVERSAMPLE = 4
_UNIT = float(2**63)


def _settings(sources: Sequence[SourcePlan], name: str) -> Column:
    """A per-source few-shot setting as a literal map lookup (no join, no Python)."""
    pairs = [
        item
        for source in sources
        for item in (F.lit(source.name), F.lit(getattr(source.registry.few_shot, name)))
    ]
    return F.create_map(*pairs)[F.col("source")]


def _unit_hash(seed: int, salt: str, column: str) -> Column:
    """A hash of (seed, salt, column) in [0, 1)."""
    return F.abs(F.xxhash64(F.lit(seed), F.lit(salt), F.col(column)).cast("double")) / _UNIT


def _base_instruction() -> Column:
    """The instruction without its option list (formats that list options end with it)."""
    listed = F.col("template_format").isin(*WITH_OPTIONS) & F.col("answer_options").isNotNull()
    cut = f"length(instruction) - length(answer_options) - {len(BLOCK_SEPARATOR)}"
    return F.when(listed, F.expr(f"substring(instruction, 1, greatest(0, {cut}))")).otherwise(
        F.col("instruction")
    )


def _candidates(rows: DataFrame, sources: Sequence[SourcePlan], seed: int) -> DataFrame:
    written = is_accepted() & ~F.coalesce(F.col("is_duplicate"), F.lit(False))
    eligible = (
        rows.where(written & (F.col("split") == "train") & F.col("template_format").isNotNull())
        .select(
            "source",
            "template_id",
            "source_key",
            _base_instruction().alias("base"),
            "answer_options",
            "response",
            _unit_hash(seed, "exemplar", "id").alias("h"),
        )
        .where(
            F.length("base") + F.coalesce(F.length("answer_options"), F.lit(0))
            + F.length("response") <= _settings(sources, "max_exemplar_chars")
        )
    )  # fmt: skip
    return eligible


def exemplar_pool(
    rows: DataFrame, sources: Sequence[SourcePlan], seed: int, staging: Staging | None
) -> DataFrame:
    """One row per (source, template) of a few-shot source: ``pool``, its candidates
    (``source_key``, ``base``, ``answer_options``, ``response``) in hash order."""
    few_shot = [s for s in sources if set(s.registry.formats) & set(FEW_SHOT)]
    names = [source.name for source in few_shot]
    candidates = _candidates(rows.where(F.col("source").isin(*names)), few_shot, seed)
    sizes = candidates.groupBy("source", "template_id").agg(F.count(F.lit(1)).alias("n"))
    limit = _settings(few_shot, "pool")
    kept = (
        candidates.join(F.broadcast(sizes), ["source", "template_id"])
        .where(F.col("h") <= F.least(F.lit(1.0), limit * _OVERSAMPLE / F.col("n")))
        .withColumn(
            "rank",
            F.row_number().over(
                Window.partitionBy("source", "template_id").orderBy("h", "source_key")
            ),
        )
        .where(F.col("rank") <= limit)
    )
    pool = kept.groupBy("source", "template_id").agg(
        F.array_sort(
            F.collect_list(F.struct("rank", "source_key", "base", "answer_options", "response"))
        ).alias("pool")
    )
    if staging is not None and staging.root is not None:
        return staging.keep(pool, "few-shot-pool")
    return pool


def _exemplar_text(with_options: Column) -> Callable[[Column], Column]:
    def text(item: Column) -> Column:
        options = F.when(
            with_options & item["answer_options"].isNotNull(),
            F.concat(F.lit(BLOCK_SEPARATOR), item["answer_options"]),
        ).otherwise(F.lit(""))
        return F.concat(item["base"], options, F.lit("\n"), item["response"])

    return text


def _with_exemplars(
    rows: DataFrame, pool: DataFrame, sources: Sequence[SourcePlan], seed: int
) -> DataFrame:
    k = _settings(sources, "k")
    size = F.size("pool")
    start = F.pmod(F.xxhash64(F.lit(seed), F.lit("few-shot"), F.col("id")), size).cast("int")
    slots = F.transform(
        F.sequence(F.lit(0), k),
        lambda i: F.element_at("pool", (F.pmod(start + i, size) + 1).cast("int")),
    )
    own = F.col("source_key")
    # A pool smaller than k + 1 wraps around: the same candidate is shown once.
    others = F.array_distinct(F.filter(slots, lambda item: item["source_key"] != own))
    chosen = F.slice(others, 1, k)
    chosen = F.when(F.col("pool").isNotNull() & (size > 0), chosen)
    with_options = F.col("template_format") == "fsopt"
    text = F.array_join(F.transform("chosen", _exemplar_text(with_options)), BLOCK_SEPARATOR)
    has = F.coalesce(F.size("chosen"), F.lit(0)) > 0
    joined = rows.join(F.broadcast(pool), ["source", "template_id"], "left").withColumn(
        "chosen", chosen
    )
    replaced = {
        "instruction": F.when(
            has, F.concat(text, F.lit(BLOCK_SEPARATOR), F.col("instruction"))
        ).otherwise(F.col("instruction")),
        # No other written record to show: the row is zero-shot, and says so.
        "template_format": F.when(has, F.col("template_format")).otherwise(
            F.regexp_replace("template_format", "^fs", "zs")
        ),
    }
    return joined.select(
        *[replaced[name].alias(name) if name in replaced else F.col(name) for name in rows.columns]
    )


def few_shot_stage(
    sources: Sequence[SourcePlan], seed: int, staging: Staging | None = None
) -> Callable[[DataFrame], DataFrame]:
    """``rows.transform(few_shot_stage(...))``: few-shot rows with their exemplars."""
    few_shot = [s for s in sources if set(s.registry.formats) & set(FEW_SHOT)]

    def stage(rows: DataFrame) -> DataFrame:
        if not few_shot:
            return rows
        pool = exemplar_pool(rows, sources, seed, staging)
        target = is_accepted() & F.col("template_format").isin(*FEW_SHOT)
        needing = rows.where(target)
        others = rows.where(~F.coalesce(target, F.lit(False)))
        return _with_exemplars(needing, pool, few_shot, seed).unionByName(others)

    return stage
