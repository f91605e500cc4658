"""jobs.stages.components against networkx on graphs chosen to hurt a min-label algorithm: long paths
(ids in and out of path order), a star whose centre has the largest id, many tiny components
with self-loops and repeated edges, and a sparse random graph."""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import networkx as nx
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import LongType, StructField, StructType

from jobs.stages.components import MAX_CHECKPOINT_EVERY, assign_components, connected_components

pytestmark = pytest.mark.spark

EDGE_SCHEMA = StructType([StructField("src", LongType()), StructField("dst", LongType())])
NODE_SCHEMA = StructType([StructField("node", LongType())])
# Ids above 2**32 make sure nothing narrows them to int on the way.
BIG = 1 << 40

Edge = tuple[int | None, int | None]


def _edges(spark: SparkSession, pairs: Sequence[Edge], partitions: int | None = None) -> DataFrame:
    frame = spark.createDataFrame(list(pairs), EDGE_SCHEMA)
    return frame.repartition(partitions) if partitions else frame


def _expected(pairs: Iterable[Edge], nodes: Iterable[int] = ()) -> dict[int, int]:
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((u, v) for u, v in pairs if u is not None and v is not None)
    expected: dict[int, int] = {}
    for part in nx.connected_components(graph):
        smallest = min(part)
        expected.update(dict.fromkeys(part, smallest))
    return expected


def _collected(result: DataFrame) -> dict[int, int]:
    assert result.dtypes == [("node", "bigint"), ("component", "bigint")]
    rows = result.collect()
    mapping = {row["node"]: row["component"] for row in rows}
    assert len(mapping) == len(rows), "a node appears more than once"
    return mapping


def _rounds(caplog: pytest.LogCaptureFixture) -> int:
    return sum(
        1
        for record in caplog.records
        if record.name == "instructmill.components" and record.getMessage().startswith("round ")
    )


def _random_graph(rng: random.Random, nodes: int, edges: int, offset: int = 0) -> list[Edge]:
    return [(offset + rng.randrange(nodes), offset + rng.randrange(nodes)) for _ in range(edges)]


@pytest.mark.parametrize("order", ["shuffled", "in order"])
def test_ten_thousand_node_path(
    spark: SparkSession, caplog: pytest.LogCaptureFixture, report: object, order: str
) -> None:
    ids = list(range(10_000))
    if order == "shuffled":
        random.Random(11).shuffle(ids)
    pairs = list(itertools.pairwise(ids))
    caplog.set_level(logging.INFO, logger="instructmill.components")

    started = time.perf_counter()
    result = _collected(connected_components(_edges(spark, pairs)))
    seconds = time.perf_counter() - started

    assert result == _expected(pairs)
    assert set(result.values()) == {0}
    rounds = _rounds(caplog)
    assert 1 < rounds < 30
    report(f"components: 10,000-node path, ids {order}: {rounds} rounds, {seconds:.1f} s")  # type: ignore[operator]


def test_star_whose_centre_has_the_largest_id(
    spark: SparkSession, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(5)
    leaves = rng.sample(range(BIG, BIG + 1_000_000), 5_000)
    centre = BIG + 2_000_000
    pairs: list[Edge] = [
        (centre, leaf) if rng.random() < 0.5 else (leaf, centre) for leaf in leaves
    ]
    caplog.set_level(logging.INFO, logger="instructmill.components")

    result = _collected(connected_components(_edges(spark, pairs, partitions=3)))

    assert result == _expected(pairs)
    assert set(result.values()) == {min(leaves)}
    # Large-Star leaves a star alone and Small-Star re-centres it on its smallest leaf.
    assert _rounds(caplog) == 1


def test_many_small_components_with_self_loops_and_repeats(spark: SparkSession) -> None:
    rng = random.Random(23)
    ids = rng.sample(range(BIG), 3_000 * 6)
    pairs: list[Edge] = []
    cursor = 0
    for _ in range(3_000):
        size = rng.randint(1, 6)
        members, cursor = ids[cursor : cursor + size], cursor + size
        if size == 1:
            pairs.append((members[0], members[0]))
            continue
        for position in range(1, size):  # a random spanning tree keeps the component whole
            pairs.append((members[position], members[rng.randrange(position)]))
        for _ in range(rng.randint(0, 3)):  # plus chords, self-loops, reversed and repeated edges
            u, v = rng.choice(members), rng.choice(members)
            pairs.extend([(u, v), (v, u), (u, v), (u, u)])
    rng.shuffle(pairs)

    result = _collected(connected_components(_edges(spark, pairs, partitions=4)))

    expected = _expected(pairs)
    assert result == expected
    assert len(set(result.values())) == 3_000


def test_sparse_random_graph(spark: SparkSession) -> None:
    pairs = _random_graph(random.Random(42), nodes=5_000, edges=6_000, offset=BIG)

    result = _collected(connected_components(_edges(spark, pairs)))

    expected = _expected(pairs)
    assert result == expected
    assert 1 < len(set(expected.values())) < len(expected)


def test_null_endpoints_are_ignored(spark: SparkSession) -> None:
    pairs: list[Edge] = [(3, 2), (2, 3), (1, 1), (None, 9), (8, None), (None, None), (7, 3)]

    result = _collected(connected_components(_edges(spark, pairs)))

    assert result == {1: 1, 2: 2, 3: 2, 7: 2}


def test_assign_components_gives_isolated_nodes_themselves(spark: SparkSession) -> None:
    pairs: list[Edge] = [(10, 4), (4, 7), (30, 31), (50, 50)]
    isolated = [1, 99, 1 << 45]
    wanted = [4, 7, 10, 30, 31, 50, *isolated]
    nodes = spark.createDataFrame([(node,) for node in wanted], NODE_SCHEMA)

    result = _collected(assign_components(nodes, connected_components(_edges(spark, pairs))))

    assert result == _expected(pairs, nodes=isolated)
    assert result == {4: 4, 7: 4, 10: 4, 30: 30, 31: 30, 50: 50, 1: 1, 99: 99, 1 << 45: 1 << 45}


def test_partitioning_does_not_change_the_components(spark: SparkSession) -> None:
    pairs = _random_graph(random.Random(3), nodes=800, edges=900)
    expected = _expected(pairs)

    results = [
        _collected(connected_components(_edges(spark, pairs, partitions=partitions)))
        for partitions in (1, 3, 7)
    ]

    assert all(result == expected for result in results)


def test_stops_with_a_clear_error_when_rounds_run_out(spark: SparkSession) -> None:
    ids = list(range(300))
    random.Random(8).shuffle(ids)

    with pytest.raises(RuntimeError, match=r"did not converge in 1 rounds.*O\(log\^2 n\)"):
        connected_components(_edges(spark, list(itertools.pairwise(ids))), max_rounds=1)


@pytest.mark.parametrize("checkpoint_every", [0, MAX_CHECKPOINT_EVERY + 1])
def test_rejects_checkpoint_intervals_out_of_range(
    spark: SparkSession, checkpoint_every: int
) -> None:
    with pytest.raises(ValueError, match="checkpoint_every"):
        connected_components(_edges(spark, [(1, 2)]), checkpoint_every=checkpoint_every)


def _checkpointed_path(spark: SparkSession) -> None:
    ids = list(range(60))
    random.Random(13).shuffle(ids)
    pairs = [*itertools.pairwise(ids), (1_000, 1_001)]

    result = _collected(connected_components(_edges(spark, pairs), checkpoint_every=1))

    assert result == _expected(pairs)


def test_local_checkpoint_every_round(spark: SparkSession) -> None:
    if spark.sparkContext.getCheckpointDir():
        pytest.skip("a checkpoint directory is already set for this session")
    _checkpointed_path(spark)


# Last in this file: a SparkContext's checkpoint directory cannot be unset, so it is set once,
# to a directory that outlives the session, and every later caller uses reliable checkpoints.
def test_reliable_checkpoint_every_round(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if not spark.sparkContext.getCheckpointDir():
        spark.sparkContext.setCheckpointDir(str(tmp_path_factory.mktemp("spark-checkpoints")))
    checkpoint_dir = spark.sparkContext.getCheckpointDir()
    assert checkpoint_dir

    _checkpointed_path(spark)

    local_dir = Path(checkpoint_dir.removeprefix("file:"))
    assert any(path.is_file() for path in local_dir.rglob("*")), "nothing was checkpointed"
