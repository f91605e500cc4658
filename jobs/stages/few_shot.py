"""FLAN's few-shot formats: a few-shot row's instruction gets ``k`` exemplars in front of it,
other records of the same source rendered with the same template.

Exemplars are only known once the build has decided which rows it writes: they come from
rows that are written (no reject, not a duplicate) in the train split, so a held-out,
rejected, contaminated or duplicate record never appears inside another row. The build applies
it after every decision, to the rows it writes to data/.

Scale: a per-(source, template) pool of at most ``few_shot.pool`` candidates, chosen by a hash
of (seed, id) without a sort of the source: a group's count sets a hash threshold that keeps
about four times the pool, and a window ranks only those. The pools (a row per candidate and
slot) are staged; small ones are broadcast to the few-shot rows as one array per group, larger
ones joined with them by (source, template, slot). Each row takes ``k + 1`` consecutive pool
slots from a hashed start and drops its own record, so a row costs O(k). Rows of other formats
pass through unjoined.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from jobs.config import SourcePlan
from jobs.io.staging import Staging
from jobs.schema import is_accepted
from jobs.stages.tag import TRAIN
from udfs.flan_formats import BLOCK_SEPARATOR, FEW_SHOT, WITH_OPTIONS

log = logging.getLogger("instructmill")
_OVERSAMPLE = 4
_UNIT = float(2**63)


def few_shot_sources(sources: Sequence[SourcePlan]) -> list[SourcePlan]:
    """The sources whose rows may be few-shot."""
    return [source for source in sources if set(source.registry.formats) & set(FEW_SHOT)]


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
        rows.where(written & (F.col("split") == TRAIN) & F.col("template_format").isNotNull())
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


_ITEM = ("source_key", "base", "answer_options", "response")
# Past this many characters of exemplars in all pools together, the pools are joined with the
# few-shot rows by (source, template, slot) instead of broadcast to every task.
BROADCAST_POOL_CHARS = 64 * 2**20


def exemplar_slots(
    rows: DataFrame, sources: Sequence[SourcePlan], seed: int, staging: Staging | None
) -> DataFrame:
    """Each (source, template) pool of a few-shot source, a row per candidate: ``slot``
    (0, 1, ... in hash order) and the candidate's ``source_key``, ``base`` instruction,
    ``answer_options`` and ``response``."""
    few_shot = few_shot_sources(sources)
    names = [source.name for source in few_shot]
    candidates = _candidates(rows.where(F.col("source").isin(*names)), few_shot, seed)
    sizes = candidates.groupBy("source", "template_id").agg(F.count(F.lit(1)).alias("n"))
    limit = _settings(few_shot, "pool")
    order = Window.partitionBy("source", "template_id").orderBy("h", "source_key")
    slots = (
        candidates.join(F.broadcast(sizes), ["source", "template_id"])
        .where(F.col("h") <= F.least(F.lit(1.0), limit * _OVERSAMPLE / F.col("n")))
        .select("source", "template_id", (F.row_number().over(order) - 1).alias("slot"), *_ITEM)
        .where(F.col("slot") < limit)
    )
    if staging is not None and staging.root is not None:
        return staging.keep(slots, "few-shot-pool")
    return slots


def _start(size: Column, seed: int) -> Column:
    return F.pmod(F.xxhash64(F.lit(seed), F.lit("few-shot"), F.col("id")), size).cast("int")


def _chosen_by_broadcast(
    rows: DataFrame, slots: DataFrame, sources: Sequence[SourcePlan], seed: int
) -> DataFrame:
    """``chosen`` for each row, from pools broadcast as one array per (source, template)."""
    pools = slots.groupBy("source", "template_id").agg(
        F.array_sort(F.collect_list(F.struct("slot", *_ITEM))).alias("pool")
    )
    size = F.size("pool")
    picks = F.transform(
        F.sequence(F.lit(0), _settings(sources, "k")),
        lambda i: F.element_at("pool", (F.pmod(_start(size, seed) + i, size) + 1).cast("int")),
    )
    items = F.transform(picks, lambda item: F.struct(*[item[name].alias(name) for name in _ITEM]))
    joined = rows.join(F.broadcast(pools), ["source", "template_id"], "left")
    return joined.withColumn("chosen", F.when(size > 0, items)).drop("pool")


def _chosen_by_bucket(
    rows: DataFrame, slots: DataFrame, sources: Sequence[SourcePlan], seed: int
) -> DataFrame:
    """``chosen`` for each row, the pools joined by (source, template, slot): a shuffle of
    k + 1 narrow keys per few-shot row, and of the few-shot rows once, by id."""
    sizes = slots.groupBy("source", "template_id").agg(F.count(F.lit(1)).alias("n"))
    keyed = rows.select("id", "source", "template_id").join(
        F.broadcast(sizes), ["source", "template_id"]
    )
    steps = keyed.select("*", F.explode(F.sequence(F.lit(0), _settings(sources, "k"))).alias("j"))
    slot = F.pmod(_start(F.col("n"), seed) + F.col("j"), F.col("n")).alias("slot")
    wanted = steps.select("id", "source", "template_id", "j", slot)
    picked = (
        wanted.join(slots, ["source", "template_id", "slot"])
        .groupBy("id")
        .agg(F.array_sort(F.collect_list(F.struct("j", F.struct(*_ITEM).alias("item")))).alias("p"))
    )
    chosen = picked.select("id", F.transform("p", lambda pick: pick["item"]).alias("chosen"))
    return rows.join(chosen, "id", "left")


def _exemplar_text(with_options: Column) -> Callable[[Column], Column]:
    def text(item: Column) -> Column:
        options = F.when(
            with_options & item["answer_options"].isNotNull(),
            F.concat(F.lit(BLOCK_SEPARATOR), item["answer_options"]),
        ).otherwise(F.lit(""))
        return F.concat(item["base"], options, F.lit("\n"), item["response"])

    return text


def _with_exemplars(rows: DataFrame, k: Column) -> DataFrame:
    """Rows with ``chosen`` (their pool slots, in order) -> their few-shot instruction."""
    own = F.col("source_key")
    # A pool smaller than k + 1 wraps around: the same candidate is shown once.
    others = F.array_distinct(F.filter("chosen", lambda item: item["source_key"] != own))
    shown = F.slice(others, 1, k)
    with_options = F.col("template_format") == "fsopt"
    text = F.array_join(F.transform(shown, _exemplar_text(with_options)), BLOCK_SEPARATOR)
    has = F.coalesce(F.size(shown), F.lit(0)) > 0
    replaced = {
        "instruction": F.when(
            has, F.concat(text, F.lit(BLOCK_SEPARATOR), F.col("instruction"))
        ).otherwise(F.col("instruction")),
        # No other written record to show: the row is zero-shot, and says so.
        "template_format": F.when(has, F.col("template_format")).otherwise(
            F.regexp_replace("template_format", "^fs", "zs")
        ),
    }
    columns = [name for name in rows.columns if name != "chosen"]
    return rows.select(
        *[replaced[name].alias(name) if name in replaced else F.col(name) for name in columns]
    )


def _pool_chars(slots: DataFrame) -> int:
    total = slots.select(
        F.sum(
            F.length("base") + F.coalesce(F.length("answer_options"), F.lit(0))
            + F.length("response")
        ).alias("chars")
    ).first()  # fmt: skip
    return int(total["chars"] or 0) if total is not None else 0


def as_zero_shot(frame: DataFrame) -> DataFrame:
    """Rows written without exemplars (duplicates/, kept for audit) say they are zero-shot."""
    return frame.withColumn("template_format", F.regexp_replace("template_format", "^fs", "zs"))


def few_shot_stage(
    sources: Sequence[SourcePlan],
    seed: int,
    staging: Staging | None = None,
    broadcast_chars: int | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """``rows.transform(few_shot_stage(...))``: few-shot rows with their exemplars; the pools
    are broadcast when they hold at most ``broadcast_chars`` characters (default
    BROADCAST_POOL_CHARS), else joined by bucket; both give the same rows."""
    few_shot = few_shot_sources(sources)

    def stage(rows: DataFrame) -> DataFrame:
        if not few_shot:
            return rows
        slots = exemplar_slots(rows, sources, seed, staging)
        target = is_accepted() & F.col("template_format").isin(*FEW_SHOT)
        needing = rows.where(target)
        others = rows.where(~F.coalesce(target, F.lit(False)))
        limit = BROADCAST_POOL_CHARS if broadcast_chars is None else broadcast_chars
        chars = _pool_chars(slots)
        small = chars <= limit
        log.info("few-shot: pools of %s characters, %s", f"{chars:,}",
                 "broadcast" if small else "joined by (source, template, slot)")  # fmt: skip
        chosen = (_chosen_by_broadcast if small else _chosen_by_bucket)(
            needing, slots, few_shot, seed
        )
        written = _with_exemplars(chosen, _settings(few_shot, "k"))
        return written.unionByName(others)

    return stage
