"""The tag stage: the task cluster and the split of every row.

The cluster of a row is, in order: its registry's explicit ``task_cluster``; the first of the
record's own categories (``categories_field``) that maps through the source's crosswalk; its
task name (a cluster id, or a name in the crosswalk); the first of its origin datasets that a
crosswalk maps; else ``unassigned``. Lookups are one map literal built from the taxonomy on the
driver and built-in functions per row: no Python on the executors. Rows of the conf's
``heldout_clusters`` are split ``heldout``, every other row ``train``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.config import RunPlan
from udfs.taxonomy import ANY_CROSSWALK, UNASSIGNED, Taxonomy

TRAIN, HELDOUT = "train", "heldout"
_SEP = "\x1f"


@dataclass(frozen=True)
class TagPlan:
    taxonomy: Taxonomy
    explicit: tuple[tuple[str, str], ...]  # source -> cluster
    crosswalks: tuple[tuple[str, str], ...]  # source -> crosswalk
    heldout_clusters: tuple[str, ...] = ()

    @classmethod
    def of(cls, plan: RunPlan) -> TagPlan:
        registries = [source.registry for source in plan.sources]
        return cls(
            taxonomy=plan.taxonomy,
            explicit=tuple((r.name, r.task_cluster) for r in registries if r.task_cluster),
            crosswalks=tuple((r.name, r.crosswalk) for r in registries if r.crosswalk),
            heldout_clusters=tuple(plan.pipeline.heldout_clusters),
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
