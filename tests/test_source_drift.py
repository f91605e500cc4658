"""Parquet files of one source that disagree on a column's type, as nightly exports do: the
source still builds with each record's own value (int 1 stays "1", not "1.0"), a healthy source
beside it is written, and the manifest reconciles; types that cannot share a column fail before
any Spark work, naming the source, the column and the files."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from jobs.commands.build import run_build, run_context
from jobs.config import load_plan
from jobs.io.readers import SourceReadError, read_source
from jobs.runner import EXIT_CONFIG, run_job
from udfs.render_batches import FILE_COLUMN

pytestmark = pytest.mark.spark

WORDS = (
    "river mountain quiet market ancient bridge winter harvest silver lantern garden teacher "
    "letter engine window forest island candle shadow morning journey village painter kitchen"
).split()


def text(seed: int) -> str:
    chooser = random.Random(seed)
    return " ".join(chooser.choice(WORDS) for _ in range(25)).capitalize() + "."


def write_parquet(path: Path, columns: dict[str, pa.Array]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def texts(keys: list[str], seed: int) -> dict[str, pa.Array]:
    return {"id": pa.array(keys), "text": pa.array([text(seed + i) for i in range(len(keys))])}


def make_project(root: Path, drift_files: dict[str, dict[str, pa.Array]]) -> Path:
    for name, columns in drift_files.items():
        write_parquet(root / "in" / "drift" / name, columns)
    notes = root / "in" / "notes.jsonl"
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_text(
        "".join(json.dumps({"id": f"n{i}", "text": text(500 + i)}) + "\n" for i in range(6)),
        encoding="utf-8",
    )
    common = "language: en\ntask: sentiment\ntask_cluster: sentiment\nlicense: MIT\n"
    files = {
        "templates/label.jinja": "{{ text }}\nThe label? ||| {{ label }}\n",
        "templates/echo.jinja": "{{ text }}\nRepeat it. ||| {{ text }}\n",
        "conf/datasets/drift.yaml": "name: drift\npath: ../../in/drift\nformat: parquet\n"
        f"id_field: id\n{common}templates: [../../templates/label.jinja]\n",
        "conf/datasets/notes.yaml": "name: notes\npath: ../../in/notes.jsonl\nformat: jsonl\n"
        f"id_field: id\n{common}templates: [../../templates/echo.jinja]\n",
        "conf/pipeline.yaml": "sources: [datasets/*.yaml]\noutput: ../out\nseed: 3\n",
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content, encoding="utf-8")
    return root / "conf" / "pipeline.yaml"


def rows_of(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return ds.dataset(path, format="parquet", partitioning="hive").to_table().to_pylist()


DRIFTING = {
    # label: int64, string, float with NaN, all null; score: int32 vs int64; meta: a struct
    # that gained a field (Spark merges that itself).
    "a.parquet": {
        **texts(["a1", "a2"], 0),
        "label": pa.array([1, 2], pa.int64()),
        "score": pa.array([7, 8], pa.int32()),
        "meta": pa.array([{"k": 1}, {"k": 2}]),
    },
    "b.parquet": {
        **texts(["b1", "b2"], 10),
        "label": pa.array(["pos", "neg"]),
        "score": pa.array([9, 10], pa.int64()),
        "meta": pa.array([{"k": 3, "note": "x"}, {"k": 4, "note": "y"}]),
    },
    "c.parquet": {**texts(["c1", "c2"], 20), "label": pa.array([1.5, math.nan])},
    "d.parquet": {**texts(["d1"], 30), "label": pa.array([None], pa.null())},
}


def test_a_drifting_source_builds_beside_a_healthy_one(spark: Any, tmp_path: Path) -> None:
    plan = load_plan(make_project(tmp_path, DRIFTING))
    manifest = run_build(spark, plan, run_context(plan, None)).to_dict()
    data = rows_of(tmp_path / "out" / "data")
    rejects = rows_of(tmp_path / "out" / "rejects")
    responses = {r["source_key"]: r["response"] for r in data if r["source"] == "drift"}
    # Each record keeps its own file's value: the int file's 1 is "1", not "1.0".
    assert {k: responses.get(k) for k in ("a1", "a2", "b1", "b2", "c1", "c2")} == {
        "a1": "1",
        "a2": "2",
        "b1": "pos",
        "b2": "neg",
        "c1": "1.5",
        "c2": "NaN",
    }
    drift_keys = {r["source_key"] for r in data + rejects if r["source"] == "drift"}
    assert drift_keys == {"a1", "a2", "b1", "b2", "c1", "c2", "d1"}
    assert {r["source_key"] for r in data if r["source"] == "notes"} == {f"n{i}" for i in range(6)}
    sources = manifest["sources"]
    assert sources["drift"]["read"] == 7 and sources["notes"]["read"] == 6
    for entry in sources.values():
        assert entry["read"] == entry["written"] + entry["rejected"] + entry["duplicates"]
    assert manifest["totals"]["reconciled"] is True


def test_each_record_keeps_its_file_and_partition_columns(spark: Any, tmp_path: Path) -> None:
    root = tmp_path / "in" / "drift"
    write_parquet(root / "lang=en" / "x.parquet", {**texts(["e1"], 40), "label": pa.array([3])})
    write_parquet(root / "lang=fr" / "y.parquet", {**texts(["f1"], 50), "label": pa.array(["oui"])})
    write_parquet(
        root / "_tmp" / "z.parquet", {**texts(["z1"], 60), "label": pa.array([{"no": 1}])}
    )
    conf = make_project(tmp_path, {})
    (source,) = [s for s in load_plan(conf).sources if s.name == "drift"]
    frame = read_source(spark, source)
    assert dict(frame.dtypes)["label"] == "string"
    rows = {r["id"]: r for r in frame.select("id", "label", "lang", FILE_COLUMN).collect()}
    assert {k: (r["label"], r["lang"]) for k, r in rows.items()} == {
        "e1": ("3", "en"),
        "f1": ("oui", "fr"),
    }  # the hidden _tmp folder is skipped, as Spark skips it
    assert rows["e1"][FILE_COLUMN].endswith("lang=en/x.parquet")


def test_types_that_cannot_share_a_column_fail_before_spark_work(
    spark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = make_project(
        tmp_path,
        {
            "s1.parquet": {**texts(["s1"], 0), "label": pa.array([{"name": "pos"}])},
            "s2.parquet": {**texts(["s2"], 10), "label": pa.array([{"name": "neg"}])},
            "t.parquet": {**texts(["t1"], 20), "label": pa.array(["pos"])},
        },
    )
    plan = load_plan(conf)
    (source,) = [s for s in plan.sources if s.name == "drift"]
    spark.sparkContext.setJobGroup("drift-check", "reading a drifting source")
    try:
        with pytest.raises(SourceReadError) as caught:
            read_source(spark, source)
        assert list(spark.sparkContext.statusTracker().getJobIdsForGroup("drift-check")) == []
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "source 'drift'" in message and "column 'label'" in message
    assert "struct<name: string>" in message and "s1.parquet" in message
    assert "string in " in message and "t.parquet" in message

    # Through the runner, as the CLI runs a build: exit code 2, that message, nothing written.
    code = run_job(
        spark, "build", lambda session: run_build(session, plan, run_context(plan, None))
    )
    assert code == EXIT_CONFIG
    assert "column 'label'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "data").exists()


def test_a_conflict_spark_finds_is_a_clear_error_too(spark: Any, tmp_path: Path) -> None:
    conf = make_project(
        tmp_path,
        {
            "a.parquet": {**texts(["a1"], 0), "label": pa.array([1])},
            "b.parquet": {**texts(["b1"], 10), "label": pa.array(["pos"])},
        },
    )
    (source,) = [s for s in load_plan(conf).sources if s.name == "drift"]
    # With corrupt files skipped, only Spark knows which files it reads: it merges the schemas.
    spark.conf.set("spark.sql.files.ignoreCorruptFiles", "true")
    try:
        with pytest.raises(SourceReadError) as caught:
            read_source(spark, source)
    finally:
        spark.conf.unset("spark.sql.files.ignoreCorruptFiles")
    message = str(caught.value)
    assert "source 'drift'" in message and "CANNOT_MERGE_INCOMPATIBLE_DATA_TYPE" in message
    assert "Py4J" not in message


def test_a_file_that_is_not_parquet_is_named_before_spark_work(spark: Any, tmp_path: Path) -> None:
    conf = make_project(tmp_path, {"a.parquet": {**texts(["a1"], 0), "label": pa.array([1])}})
    (tmp_path / "in" / "drift" / "broken.parquet").write_bytes(b"PAR1 cut short by a full disk")
    (source,) = [s for s in load_plan(conf).sources if s.name == "drift"]
    spark.sparkContext.setJobGroup("corrupt-check", "reading a source with a broken file")
    try:
        with pytest.raises(SourceReadError) as caught:
            read_source(spark, source)
        assert list(spark.sparkContext.statusTracker().getJobIdsForGroup("corrupt-check")) == []
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    message = str(caught.value)
    assert (
        "source 'drift'" in message and "broken.parquet is not a readable Parquet file" in message
    )
