"""Connected components of an undirected edge list, entirely on the cluster.

Grouping near-duplicate records needs the connected components of a "looks alike" graph
whose edge list can be far larger than the driver's memory, so a union-find on the driver
(collecting edges) is not an option. This module implements the alternating algorithm of
Kiveris, Lattanzi, Mirrokni, Rastogi and Vassilvitskii, "Connected Components in MapReduce
and Beyond" (SoCC 2014), where every step is a minimum over each node's neighbourhood
followed by re-pointing edges at that minimum:

* Edges are kept canonical, ``node > parent``, without self-loops or duplicates.
* **Large-Star**: every node ``u`` links each strictly larger neighbour ``v`` to ``m(u)``,
  the minimum of ``u`` and all its neighbours: ``(v, m(u))``.
* **Small-Star**: every node ``u`` links itself and each smaller neighbour ``w`` to the
  minimum ``m`` of its smaller neighbours: ``(u, m)`` and ``(w, m)``.

Both steps preserve connectivity and never add a node; each emits at most two edges per
edge and the output is deduplicated, so a round is four shuffles, each linear in the edge
count. The paper proves that alternating them turns every component into a star centred on
its smallest node within O(log^2 n) rounds; in practice about log2(n) (14 for a 10,000-node
path). Here a *round* is one Large-Star followed by one Small-Star (two MapReduce rounds in
the paper's counting). Every step is a deterministic function of the edge set (minimums and
``distinct``), so the components do not depend on how the input is partitioned.

Convergence is a count computed on the cluster: the number of *unsettled* nodes, those with
more than one parent or with a parent that itself has a parent. It is zero exactly when the
edges form stars, i.e. every edge points a node straight at its component's minimum.

Known limit: the neighbourhood minimums are windows partitioned by node, so a node with
millions of neighbours (the root of a giant component, near the end) is one task's work. It
spills rather than failing, but it is a straggler.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

log = logging.getLogger("instructmill.components")

# Between checkpoints each round's cached plan nests the previous round's, twice over (AQE
# keeps an initial and a final plan), so the driver-side plan roughly doubles per round:
# without checkpoints a 14-round run on a 10,000-node path exhausted a 2g driver.
MAX_CHECKPOINT_EVERY = 8


def connected_components(
    edges: DataFrame, *, checkpoint_every: int = 3, max_rounds: int = 60
) -> DataFrame:
    """``node``, ``component`` for every node in ``edges`` (``src``, ``dst``: longs, undirected;
    self-loops and duplicates allowed), where ``component`` is the smallest node id of the
    node's connected component. An edge with a null endpoint is ignored entirely.

    Lineage is truncated every ``checkpoint_every`` rounds, and the result is materialized
    the same way before returning, so it does not depend on this function's caches. With a
    checkpoint directory set (``sparkContext.setCheckpointDir``) that uses the reliable
    ``checkpoint()``: files on fault-tolerant storage, which survive losing an executor but
    cost a write each time (Spark keeps the files unless
    ``spark.cleaner.referenceTracking.cleanCheckpoints`` is on). Without one it uses
    ``localCheckpoint()``: blocks in executor storage, no extra I/O, but a lost executor
    fails the job because the data can no longer be recomputed. On a large cluster, or with
    dynamic allocation, set a checkpoint directory.

    Between checkpoints a round is persisted (memory, spilling to disk) so the count and the
    next round share one computation; ``checkpoint_every`` is capped at
    ``MAX_CHECKPOINT_EVERY`` because the plan grows geometrically until it is truncated.

    Raises ``RuntimeError`` when ``max_rounds`` rounds pass without convergence.
    """
    _check_arguments(checkpoint_every, max_rounds)
    # Self-loops stay in the canonical input only to contribute their node to the output.
    canonical = _canonical(edges).persist()
    current = canonical.filter(F.col("node") != F.col("parent"))
    cached: DataFrame | None = None
    try:
        for round_number in range(1, max_rounds + 1):
            following, following_cached = _round(current, round_number, checkpoint_every)
            unsettled = _unsettled_count(following)
            log.info("round %d: %d unsettled nodes", round_number, unsettled)
            if cached is not None:
                cached.unpersist()
            cached, current = following_cached, following
            if unsettled == 0:
                log.info("converged after %d rounds", round_number)
                break
        else:
            raise RuntimeError(
                f"connected components did not converge in {max_rounds} rounds "
                f"({unsettled} nodes still unsettled); Large-Star/Small-Star converges in "
                "O(log^2 n) rounds, so this points at a far larger graph than expected or a "
                "max_rounds set too low"
            )
        return _truncate(_components(canonical, current))
    finally:
        if cached is not None:
            cached.unpersist()
        canonical.unpersist()


def _check_arguments(checkpoint_every: int, max_rounds: int) -> None:
    if not 1 <= checkpoint_every <= MAX_CHECKPOINT_EVERY:
        raise ValueError(
            f"checkpoint_every must be between 1 and {MAX_CHECKPOINT_EVERY}, got "
            f"{checkpoint_every}: the query plan doubles with every round between checkpoints"
        )
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be at least 1, got {max_rounds}")


def _round(
    current: DataFrame, round_number: int, checkpoint_every: int
) -> tuple[DataFrame, DataFrame | None]:
    """One Large-Star and one Small-Star; the result, and the frame it persisted (None when
    it was checkpointed instead)."""
    following = _small_star(_large_star(current))
    if round_number % checkpoint_every == 0:
        return _truncate(following), None
    # Persisted so the next round and the count share one computation; the default level
    # spills to disk rather than dropping blocks under pressure.
    following = following.persist()
    return following, following


def _components(canonical: DataFrame, converged: DataFrame) -> DataFrame:
    nodes = canonical.select(
        F.explode(F.array(F.col("node"), F.col("parent"))).alias("node")
    ).distinct()
    # At convergence every non-root node has exactly one edge, to its component's minimum;
    # roots have no edge of their own and default to themselves in assign_components.
    pointers = converged.select(F.col("node"), F.col("parent").alias("component"))
    return assign_components(nodes, pointers)


def assign_components(nodes: DataFrame, components: DataFrame) -> DataFrame:
    """``node``, ``component`` for each row of ``nodes`` (column ``node``), taking the component
    from ``components`` (``node``, ``component``, one row per node) and using the node itself
    when it is absent: a record without any edge is its own component."""
    return (
        nodes.select(F.col("node").cast("long").alias("node"))
        .join(components.select(F.col("node"), F.col("component")), on="node", how="left")
        .select(
            F.col("node"),
            F.coalesce(F.col("component"), F.col("node")).alias("component"),
        )
    )


def _canonical(edges: DataFrame) -> DataFrame:
    src = F.col("src").cast("long")
    dst = F.col("dst").cast("long")
    return (
        edges.filter(src.isNotNull() & dst.isNotNull())
        .select(F.greatest(src, dst).alias("node"), F.least(src, dst).alias("parent"))
        .distinct()
    )


def _large_star(edges: DataFrame) -> DataFrame:
    # Each edge is seen from both ends in one pass (not a self-join), so a round's plan holds
    # the previous round once and grows linearly between checkpoints instead of geometrically.
    sides = edges.select(
        F.explode(
            F.array(
                F.struct(F.col("node").alias("key"), F.col("parent").alias("other")),
                F.struct(F.col("parent").alias("key"), F.col("node").alias("other")),
            )
        ).alias("side")
    ).select(F.col("side.key").alias("key"), F.col("side.other").alias("other"))
    neighbourhood_min = F.least(
        F.min(F.col("other")).over(Window.partitionBy(F.col("key"))), F.col("key")
    )
    return (
        sides.select(F.col("key"), F.col("other"), neighbourhood_min.alias("minimum"))
        .filter(F.col("other") > F.col("key"))
        .select(F.col("other").alias("node"), F.col("minimum").alias("parent"))
        # Hashing on node alone satisfies both this distinct and Small-Star's window, so the
        # Large-Star output is shuffled once.
        .repartition(F.col("node"))
        .distinct()
    )


def _small_star(edges: DataFrame) -> DataFrame:
    minimum = F.min(F.col("parent")).over(Window.partitionBy(F.col("node")))
    # Each edge (u, w) emits (w, m) and (u, m); the repeated (u, m) rows go in the distinct.
    emitted = F.array(
        F.struct(F.col("parent").alias("node"), F.col("minimum").alias("parent")),
        F.struct(F.col("node").alias("node"), F.col("minimum").alias("parent")),
    )
    return (
        edges.select(F.col("node"), F.col("parent"), minimum.alias("minimum"))
        .select(F.explode(emitted).alias("edge"))
        .select(F.col("edge.node").alias("node"), F.col("edge.parent").alias("parent"))
        .filter(F.col("node") != F.col("parent"))
        .distinct()
    )


def _unsettled_count(edges: DataFrame) -> int:
    # Each edge says "node has a parent" and "parent has a child": one aggregation, no join.
    roles = edges.select(
        F.explode(
            F.array(
                F.struct(
                    F.col("node").alias("node"),
                    F.lit(1).alias("parents"),
                    F.lit(0).alias("children"),
                ),
                F.struct(
                    F.col("parent").alias("node"),
                    F.lit(0).alias("parents"),
                    F.lit(1).alias("children"),
                ),
            )
        ).alias("role")
    ).select(
        F.col("role.node").alias("node"),
        F.col("role.parents").alias("parents"),
        F.col("role.children").alias("children"),
    )
    per_node = roles.groupBy(F.col("node")).agg(
        F.sum(F.col("parents")).alias("parents"), F.sum(F.col("children")).alias("children")
    )
    unsettled = (F.col("parents") > 1) | ((F.col("parents") == 1) & (F.col("children") > 0))
    return per_node.filter(unsettled).count()


def _truncate(frame: DataFrame) -> DataFrame:
    """Materialize ``frame`` and cut its lineage (see connected_components for the trade-off)."""
    if frame.sparkSession.sparkContext.getCheckpointDir():
        return frame.checkpoint(eager=True)
    return frame.localCheckpoint(eager=True)
