"""The tag stage: task cluster and split per row, then removal of train rows that share an
origin dataset with held-out rows.

The cluster of a row is, in order: its registry's explicit ``task_cluster``; the first of the
record's own categories (``categories_field``) that maps through the source's crosswalk; its
task name (a cluster id, or a name in the crosswalk); the first of its origin datasets that a
crosswalk maps; else ``unassigned``. Lookups are one map literal built from the taxonomy on the
driver and built-in functions per row: no Python on the executors.

Held-out evaluation follows Super-NaturalInstructions: besides the rows of held-out clusters,
every train record whose origin dataset also feeds a held-out cluster leaves train (reason
``shares_source_with_heldout``), since a model trained on SNLI prompts has seen the held-out
NLI data. Near-duplicates of held-out content are the dedup stage's job (it shares the
signatures): ``contaminates_heldout``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.config import RunPlan
from jobs.schema import reject_where
from udfs.taxonomy import ANY_CROSSWALK, UNASSIGNED, Taxonomy

SPLIT_STAGE = "split"
TRAIN, HELDOUT = "train", "heldout"
SHARES_SOURCE = "shares_source_with_heldout"
CONTAMINATES = "contaminates_heldout"
RECORD_KEY = ("source", "source_key")
_SEP = "\x1f"


@dataclass(frozen=True)
class TagPlan:
    taxonomy: Taxonomy
    explicit: tuple[tuple[str, str], ...]  # source -> cluster
    crosswalks: tuple[tuple[str, str], ...]  # source -> crosswalk
    heldout_clusters: tuple[str, ...] = ()

    @classmethod
    def of(cls, plan: RunPlan) -> TagPlan:
        if plan.taxonomy is None:
            raise ValueError("the run plan has no taxonomy")
        return cls(
            taxonomy=plan.taxonomy,
            explicit=tuple((s.name, s.task_cluster) for s in plan.sources if s.task_cluster),
            crosswalks=tuple((s.name, s.crosswalk) for s in plan.sources if s.crosswalk),
            heldout_clusters=plan.heldout_clusters,
        )


def match_key(column: Column) -> Column:
    """``udfs.taxonomy.match_key`` in Spark: lower case, whitespace collapsed."""
    # (?U): Unicode whitespace (NBSP...), as Python's str.split() sees it.
    return F.lower(F.trim(F.regexp_replace(column, r"(?U)\s+", " ")))


def _literal_map(entries: dict[str, str]) -> Column:
    if not entries:
        return F.create_map().cast("map<string,string>")
    return F.create_map(*[F.lit(x) for x in chain.from_iterable(sorted(entries.items()))])


def _lookup_entries(taxonomy: Taxonomy) -> dict[str, str]:
    """``crosswalk SEP name -> cluster`` for every crosswalk and for the merged one; cluster
    ids map to themselves under every crosswalk."""
    entries: dict[str, str] = {}
    for crosswalk in [*taxonomy.crosswalks, ANY_CROSSWALK]:
        names = {**taxonomy.merged(crosswalk), **{c: c for c in taxonomy.clusters}}
        entries.update({f"{crosswalk}{_SEP}{name}": c for name, c in names.items()})
    return entries


def cluster_column(plan: TagPlan) -> Column:
    lookup = _literal_map(_lookup_entries(plan.taxonomy))
    crosswalk = F.coalesce(
        F.try_element_at(_literal_map(dict(plan.crosswalks)), F.col("source")),
        F.lit(ANY_CROSSWALK),
    )

    def through(walk: Column, name: Column) -> Column:
        return F.try_element_at(lookup, F.concat(walk, F.lit(_SEP), match_key(name)))

    def first_mapped(names: Column, walk: Column) -> Column:
        mapped = F.transform(F.coalesce(names, F.array()), lambda name: through(walk, name))
        return F.get(F.filter(mapped, lambda cluster: cluster.isNotNull()), 0)

    return F.coalesce(
        F.try_element_at(_literal_map(dict(plan.explicit)), F.col("source")),
        first_mapped(F.col("categories"), crosswalk),
        through(crosswalk, F.col("task")),
        first_mapped(F.col("origins"), F.lit(ANY_CROSSWALK)),
        F.lit(UNASSIGNED),
    )


def tag_stage(plan: TagPlan) -> Callable[[DataFrame], DataFrame]:
    """Rows with ``task``, ``categories`` and ``origins`` -> the same rows with
    ``task_cluster`` and ``split``."""

    def stage(frame: DataFrame) -> DataFrame:
        tagged = frame.withColumn("task_cluster", cluster_column(plan))
        heldout = F.col("task_cluster").isin(list(plan.heldout_clusters))
        return tagged.withColumn("split", F.when(heldout, F.lit(HELDOUT)).otherwise(F.lit(TRAIN)))

    return stage


def _accepted() -> Column:
    return F.col("reason").isNull()


def shared_source_records(frame: DataFrame) -> DataFrame:
    """``source, source_key, _shared_origin`` of the train records whose origin datasets meet
    a held-out record's. Two joins on (origin) and (record): no collect, however many
    origins there are."""
    accepted = (
        frame.where(_accepted())
        .select(*RECORD_KEY, "split", F.explode("origins").alias("origin"))
        .withColumn("origin", match_key(F.col("origin")))
    )
    heldout_origins = accepted.where(F.col("split") == HELDOUT).select("origin").distinct()
    return (
        accepted.where(F.col("split") == TRAIN)
        .join(heldout_origins, "origin", "left_semi")
        .groupBy(*RECORD_KEY)
        .agg(F.min("origin").alias("_shared_origin"))
    )


def exclude_shared_sources(frame: DataFrame) -> DataFrame:
    """Train records whose origin datasets meet a held-out record's become rejects
    (``shares_source_with_heldout``); the detail names the shared origin. ``frame`` is read
    three times: persist it first."""
    shared = shared_source_records(frame).localCheckpoint()
    joined = frame.join(shared, list(RECORD_KEY), "left")
    return reject_where(
        joined,
        F.col("_shared_origin").isNotNull(),
        SPLIT_STAGE,
        F.lit(SHARES_SOURCE),
        F.concat(
            F.lit("a train record from origin dataset "),
            F.col("_shared_origin"),
            F.lit(", which also feeds a held-out cluster"),
        ),
    ).drop("_shared_origin")


def contamination_rejects(frame: DataFrame) -> DataFrame:
    """Rows the dedup stage flagged ``contaminates_heldout`` become rejects of the split."""
    return reject_where(
        frame,
        F.col("contaminates_heldout"),
        SPLIT_STAGE,
        F.lit(CONTAMINATES),
        F.concat(
            F.lit(
                "a train record whose content is a near-duplicate of a held-out record (cluster "
            ),
            F.col("dup_cluster"),
            F.lit(")"),
        ),
    )
