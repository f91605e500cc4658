"""The narrow, staged plan: the build's sparse decisions (rows signed while staging, only the
unusual records joined) give every row the same decision as the dense per-record path; the
read count comes from the render pass; write task counts; the balanced union."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.config import DedupConfig
from jobs.io.staging import Staging
from jobs.io.writer import write_tasks
from jobs.stages.decisions import build_dedup_stage
from jobs.stages.dedup import DECISION_COLUMNS, DedupPlan, dedup_stage, signing_stage
from jobs.stages.render import INPUT_ROWS, STAGE_SCHEMA, _with_input_rows, union_all
from tests.test_dedup_stage import BASE, rows
from udfs.render_batches import RENDER_SCHEMA

OTHER = (
    "The orchestra rehearsed the new symphony twice on Friday before the premiere, and the "
    "conductor asked the brass section to play the final movement more softly."
)
RECORDS = [
    ("a", "1", "en", BASE),
    ("a", "2", "en", BASE.upper()),  # exact after normalisation
    ("a", "3", "en", BASE.replace("next month.", "next week.")),  # near
    ("a", "4", "en", "A completely different sentence about rivers, boats and bridges today."),
    ("b", "1", "en", BASE),  # another source, same text
    ("b", "2", "en", None),  # nothing to compare
    ("b", "3", "en", "Short."),
    # A repeated key (an id_field value used twice) with two different texts.
    ("b", "9", "en", "The second text of a repeated key, about harbours and lighthouses."),
    ("b", "9", "en", "The first text of a repeated key, about mountains and valleys in spring."),
    # A cluster without held-out content: one of these two is a duplicate.
    ("c", "1", "en", OTHER),
    ("c", "2", "en", "  " + OTHER.lower()),
]


def _with_rejects_and_splits(frame: DataFrame) -> DataFrame:
    """One rejected row, and one held-out record so decontamination has work."""
    return frame.select(
        "*",
        F.when(F.col("source_key") == "3", F.lit("heldout"))
        .otherwise(F.lit("train"))
        .alias("split"),
    ).withColumn(
        "reason",
        F.when(F.col("source_key") == "4", F.lit("empty_field")).otherwise(F.col("reason")),
    )


def _decided(frame: DataFrame) -> dict[tuple[str, ...], tuple[Any, ...]]:
    accepted = frame.where(F.col("reason").isNull())
    return {
        (row["source"], row["source_key"], row["id"], row["dedup_text"]): tuple(
            row[c] for c in DECISION_COLUMNS
        )
        for row in accepted.collect()
    }


@pytest.mark.spark
def test_sparse_staged_decisions_equal_the_dense_per_record_path(
    spark: Any, tmp_path: Path
) -> None:
    plan = DedupPlan.of(DedupConfig(), decontaminate=True)
    frame = _with_rejects_and_splits(rows(spark, RECORDS))
    dense = _decided(frame.transform(dedup_stage(plan)))
    staging = Staging(spark, str(tmp_path / "_staging" / "run"))
    signed = staging.keep(frame.transform(signing_stage(plan)), "rows")
    sparse = _decided(signed.transform(build_dedup_stage(plan, staging, True)))
    assert sparse == dense
    # The repeated key is one record: both its rows carry the smaller text's decision.
    repeated = {key: value for key, value in dense.items() if key[1] == "9"}
    assert len(repeated) == 2 and len(set(repeated.values())) == 1
    assert any(value[2] for value in dense.values())  # a duplicate was found
    assert any(value[3] for value in dense.values())  # and a contaminating train record
    staging.remove()
    assert not (tmp_path / "_staging").exists()


@pytest.mark.spark
def test_several_templates_per_record_take_the_dense_path(spark: Any, tmp_path: Path) -> None:
    plan = DedupPlan.of(DedupConfig())
    frame = _with_rejects_and_splits(rows(spark, RECORDS[:5], templates=3))
    dense = _decided(frame.transform(dedup_stage(plan)))
    staging = Staging(spark, str(tmp_path / "_staging" / "run"))
    staged = _decided(frame.transform(build_dedup_stage(plan, staging, False)))
    assert staged == dense and len(staged) == 12  # 4 accepted records x 3 templates


def test_every_input_batch_is_counted_once_on_its_first_row() -> None:
    batch = pa.RecordBatch.from_arrays(
        [pa.nulls(3, field.type) for field in RENDER_SCHEMA], schema=RENDER_SCHEMA
    )
    counted = _with_input_rows(batch, 2)
    assert counted.schema.equals(STAGE_SCHEMA)
    assert counted.column(INPUT_ROWS).to_pylist() == [2, None, None]
    empty = batch.slice(0, 0)
    assert _with_input_rows(empty, 0).num_rows == 0
    with pytest.raises(RuntimeError, match="no rows for a batch of 5 records"):
        _with_input_rows(empty, 5)


def test_write_tasks_follow_file_size_and_use_every_core_on_large_writes() -> None:
    assert write_tasks(462, 500_000, 2) == 1  # the demo: one file per partition value
    assert write_tasks(250_000, 500_000, 2) == 2  # no longer one task for 250k rows
    assert write_tasks(60_000, 500_000, 8) == 1
    assert write_tasks(5_000_000, 500_000, 2) == 10


@pytest.mark.spark
def test_many_sources_union_as_a_balanced_tree(spark: Any) -> None:
    frames = [spark.range(i, i + 1) for i in range(37)]
    unioned = union_all(frames)
    assert sorted(row["id"] for row in unioned.collect()) == list(range(37))
