"""Catalog tables for warehouse users: nightly builds with ``--table`` register their committed
output in a real Hive metastore (Spark's embedded Derby), and readers that know only the
table, a Spark SQL session and a JDBC client of Spark's Thrift server, see exactly the
committed rows. Every Spark here runs in its own process: the tests' shared session has no
Hive support, and embedded Derby admits one JVM at a time."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyspark
import pytest

from jobs.io.catalog import catalog_conf
from tests.nightly_project import make_project, record, rows_of, write_records

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parent.parent
SPARK_BIN = Path(pyspark.__file__).resolve().parent / "bin"
TABLE = "lake.notes"
DAY1, DAY2 = "2026-01-01", "2026-01-02"
# A partition value with characters the writer escapes in folder names ('/', "'", '%').
ODD_LICENSE = "CC BY-SA 4.0 / it's 100%"
MALFORMED = "{not json\n"
SMALL_JVM = {"spark.driver.memory": "1g", "spark.ui.enabled": "false"}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Spark conf folder: no spark-defaults.conf or hive-site.xml of this machine."""
    folder = tmp_path / "spark-conf"
    folder.mkdir()
    monkeypatch.setenv("SPARK_CONF_DIR", str(folder))
    for name in ("HADOOP_CONF_DIR", "YARN_CONF_DIR", "PYSPARK_GATEWAY_PORT"):
        monkeypatch.delenv(name, raising=False)
    return folder


def test_the_default_metastore_is_derby_beside_the_output(site: Path, tmp_path: Path) -> None:
    assert catalog_conf(str(tmp_path / "out"), {}) == {
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={tmp_path}/metastore_db;create=true",
        "spark.sql.warehouse.dir": (tmp_path / "warehouse").as_uri(),
    }
    uri = catalog_conf((tmp_path / "out").as_uri(), {"spark.sql.warehouse.dir": "/w"})
    assert uri == {
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={tmp_path}/metastore_db;create=true",
    }
    # Derby needs a local folder: an object store's output gets Spark's own, the working dir.
    remote = catalog_conf("s3a://bucket/nightly/out", {})
    assert (
        remote["spark.hadoop.javax.jdo.option.ConnectionURL"]
        == f"jdbc:derby:;databaseName={Path.cwd()}/metastore_db;create=true"
    )


def test_a_configured_metastore_is_kept(site: Path, tmp_path: Path) -> None:
    hive = {"spark.sql.catalogImplementation": "hive"}
    for key in ("spark.hadoop.hive.metastore.uris", "spark.hive.metastore.uris",
                "spark.hadoop.javax.jdo.option.ConnectionURL"):  # fmt: skip
        assert catalog_conf(str(tmp_path / "out"), {key: "thrift://metastore:9083"}) == hive
    assert (
        catalog_conf(
            "out", {"spark.sql.catalogImplementation": "hive", "spark.hive.metastore.uris": "x"}
        )
        == {}
    )
    (site / "spark-defaults.conf").write_text(
        "# cluster\nspark.hadoop.hive.metastore.uris\tthrift://m:9083\n"
    )
    assert catalog_conf(str(tmp_path / "out"), {}) == hive
    (site / "spark-defaults.conf").unlink()
    (site / "hive-site.xml").write_text("<configuration/>")
    assert catalog_conf(str(tmp_path / "out"), {}) == hive


def _env() -> dict[str, str]:
    return {**os.environ, "INSTRUCTMILL_SPARK_LOG_LEVEL": "ERROR"}


def _export(project: Path, rows: list[dict[str, str]], license_: str) -> None:
    """Tonight's export: the records, one malformed line (a reject), the source's license."""
    write_records(project, rows)
    with (project / "in" / "notes.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(MALFORMED)
    registry = project / "conf" / "datasets" / "notes.yaml"
    text = re.sub(r"(?m)^license: .*$", f"license: {json.dumps(license_)}", registry.read_text())
    registry.write_text(text, encoding="utf-8")


def _build(conf: Path, day: str) -> dict[str, Any]:
    """One nightly ``instructmill build --run-date D --table db.name`` in its own process (the
    repository as its working directory, as a scheduler would run it); its catalog record,
    from the build's log."""
    command = [sys.executable, "-m", "jobs.cli", "build", "--conf", str(conf),
               "--run-date", day, "--table", TABLE, "--master", "local[2]"]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [line for line in done.stderr.splitlines() if "catalog: {" in line]
    return json.loads(line.split("catalog: ", 1)[1])  # type: ignore[no-any-return]


def _script(script: str, cwd: Path, root: str) -> dict[str, Any]:
    """A Spark script in its own process on the output ``root`` (small JVM); the JSON it
    prints last."""
    done = subprocess.run(
        [sys.executable, "-c", script, root, json.dumps(SMALL_JVM)],
        cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _run_ids(rows: list[dict[str, Any]]) -> set[str]:
    return {row["run_id"] for row in rows}


@pytest.fixture(scope="module")
def loads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two dated loads and a rerun of the first, whose export changed (new records, another
    license: another partition folder)."""
    project = tmp_path_factory.mktemp("catalog")
    extra = "partition_by: [language, task_cluster, license]\nspark: {spark.driver.memory: 1g}\n"
    conf = make_project(project, [], extra)
    out = project / "out"
    _export(project, [record(f"a{i}", i) for i in range(12)], ODD_LICENSE)
    first = _build(conf, DAY1)
    first_run = _run_ids(rows_of(out / "data"))
    # Day 2 also sends day 1's a0 again under a new id: dedup across loads rejects it.
    _export(project, [record(f"n{i}", 100 + i) for i in range(8)] + [{**record("a0", 0), "id": "again"}], ODD_LICENSE)  # fmt: skip
    second = _build(conf, DAY2)
    _export(project, [record(f"c{i}", 200 + i) for i in range(10)], "MIT")
    rerun = _build(conf, DAY1)
    yield {
        "project": project,
        "out": out,
        "records": [first, second, rerun],
        "first_run": first_run,
    }


def _committed(out: Path, part: str, columns: tuple[str, ...]) -> Counter[tuple[str, ...]]:
    """The committed rows of ``part`` read straight from its Parquet, as tuples of strings."""
    return Counter(
        tuple("" if row[c] is None else str(row[c]) for c in columns) for row in rows_of(out / part)
    )


DATA_COLUMNS = ("id", "source_key", "load_date", "license", "run_id")
REJECT_COLUMNS = ("source_key", "reason", "load_date", "source", "run_id")
QUERY = """
import json, sys
from jobs.io.catalog import catalog_conf
from jobs.runner import build_session
spark = build_session("catalog-reader", "local[1]", {**catalog_conf(sys.argv[1], {}), **json.loads(sys.argv[2])})
def rows(sql):
    return [["" if v is None else str(v) for v in row] for row in spark.sql(sql).collect()]
print(json.dumps({
    "data": rows("SELECT id, source_key, load_date, license, run_id FROM lake.notes"),
    "rejects": rows("SELECT source_key, reason, load_date, source, run_id FROM lake.notes_rejects"),
    "partitions": rows("SHOW PARTITIONS lake.notes"),
    "type": spark.catalog.getTable("lake.notes").tableType,
}))
spark.stop()
"""


def test_the_table_holds_exactly_the_committed_loads(loads: dict[str, Any], report: Any) -> None:
    out: Path = loads["out"]
    first, second, rerun = loads["records"]
    assert first["added"] == [f"load_date={DAY1}/language=en/task_cluster=summarization/license=CC BY-SA 4.0 %2F it%27s 100%25"]  # fmt: skip
    assert (second["partitions"], second["dropped"]) == (1, 0)
    # The rerun's folder has another license: the first run's partition is dropped.
    assert (rerun["partitions"], rerun["added"], rerun["dropped"]) == (
        1,
        [f"load_date={DAY1}/language=en/task_cluster=summarization/license=MIT"],
        1,
    )
    # The default metastore: beside the output, Derby's log with it, not in the working dir.
    project: Path = loads["project"]
    assert (project / "metastore_db").is_dir() and (project / "derby.log").is_file()
    assert (project / "warehouse" / "lake.db").is_dir()

    seen = _script(QUERY, project, str(out))
    assert seen["type"] == "EXTERNAL"
    committed = _committed(out, "data", DATA_COLUMNS)
    assert Counter(map(tuple, seen["data"])) == committed
    data = [dict(zip(DATA_COLUMNS, row, strict=True)) for row in seen["data"]]
    per_date = Counter(row["load_date"] for row in data)
    assert per_date == {DAY1: 10, DAY2: 8}
    day1_keys = {row["source_key"] for row in data if row["load_date"] == DAY1}
    assert day1_keys == {f"c{i}" for i in range(10)}
    # The partition value is the license itself, decoded from its folder's name.
    licenses = {(row["load_date"], row["license"]) for row in data}
    assert licenses == {(DAY1, "MIT"), (DAY2, ODD_LICENSE)}
    assert not _run_ids(data) & loads["first_run"]
    assert len(seen["partitions"]) == 2

    rejects = _committed(out, "rejects", REJECT_COLUMNS)
    assert Counter(map(tuple, seen["rejects"])) == rejects
    reasons = Counter((row[2], row[1]) for row in seen["rejects"])
    assert reasons == {
        (DAY1, "malformed_json"): 1,
        (DAY2, "malformed_json"): 1,
        (DAY2, "duplicate_of_earlier_load"): 1,
    }
    assert not {row[4] for row in seen["rejects"]} & loads["first_run"]
    report(f"catalog: {TABLE} {dict(per_date)}, rejects {sum(reasons.values())}, via Spark SQL")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Until the server accepts connections; fails with its log when it exits or stalls."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the Thrift server exited: {log.read_text()[-3000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    pytest.fail(f"the Thrift server did not listen on {port}: {log.read_text()[-3000:]}")


def _thrift_server(out: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Spark's Thrift JDBC server on loopback, on the builds' metastore (its conf from
    catalog_conf, as a warehouse admin would copy it)."""
    confs = {**catalog_conf(str(out), {}), **SMALL_JVM, "spark.driver.host": "127.0.0.1"}
    derby_log = f"-Dderby.stream.error.file={out.parent / 'derby.log'}"
    command = [
        str(SPARK_BIN / "spark-submit"),
        "--class", "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
        "--master", "local[1]", "--driver-memory", "1g", "--driver-java-options", derby_log,
        *[arg for key, value in confs.items() for arg in ("--conf", f"{key}={value}")],
        "spark-internal",
        "--hiveconf", f"hive.server2.thrift.port={port}",
        "--hiveconf", "hive.server2.thrift.bind.host=127.0.0.1",
    ]  # fmt: skip
    with log.open("wb") as sink:
        return subprocess.Popen(command, cwd=out.parent, stdout=sink, stderr=subprocess.STDOUT)


# Beeline echoes its prompt before a statement's output when its input is not a terminal.
PROMPT = re.compile(r"^\d+: jdbc:hive2://\S+> ")


def _beeline(port: int, queries: dict[str, str], cwd: Path) -> dict[str, list[list[str]]]:
    """The queries over JDBC in one client session; each one's rows (csv2), found by its
    header: the key, the query's own column names."""
    sql = ";\n".join(queries.values()) + ";"
    command = [str(SPARK_BIN / "beeline"), "-u", f"jdbc:hive2://127.0.0.1:{port}/default",
               "--outputformat=csv2", "--silent=true", "-e", sql]  # fmt: skip
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for line in done.stdout.splitlines():
        line = PROMPT.sub("", line).strip()
        if line in queries:
            current = results.setdefault(line, [])
        elif line and current is not None:
            current.append(line.split(","))
    assert results.keys() == queries.keys(), done.stdout[-3000:]
    return results


JDBC_QUERIES = {
    "load_date,run_id,loaded": "SELECT load_date, run_id, count(*) AS loaded FROM lake.notes "
    "GROUP BY load_date, run_id",
    "id": "SELECT id FROM lake.notes",
    "load_date,reason,rejects": "SELECT load_date, reason, count(*) AS rejects "
    "FROM lake.notes_rejects GROUP BY load_date, reason",
}


def test_a_jdbc_client_sees_the_committed_rows(loads: dict[str, Any], report: Any) -> None:
    out: Path = loads["out"]
    port = _free_port()
    log = out.parent / "thriftserver.log"
    server = _thrift_server(out, port, log)
    try:
        _wait_for_port(server, port, log)
        seen = _beeline(port, JDBC_QUERIES, out.parent)
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=60)
    data = rows_of(out / "data")
    expected = Counter((str(row["load_date"]), row["run_id"]) for row in data)
    counts = seen["load_date,run_id,loaded"]
    assert {(day, run): int(n) for day, run, n in counts} == dict(expected)
    ids = seen["id"]
    assert sorted(row[0] for row in ids) == sorted(row["id"] for row in data)
    expected_rejects = Counter((str(r["load_date"]), r["reason"]) for r in rows_of(out / "rejects"))
    rejects = seen["load_date,reason,rejects"]
    assert {(day, reason): int(n) for day, reason, n in rejects} == dict(expected_rejects)
    report(f"catalog: {len(ids)} rows of {TABLE} over JDBC (Thrift server)")


# A full build's output, written in its layout by hand (two partition columns, one value
# with characters the writer escapes), registered, rewritten with other partitions and
# registered again; then tables that do not fit the output.
FULL_BUILD = """
import json, sys
from pyspark.sql import functions as F
from jobs.io.catalog import catalog_conf, register
from jobs.layout import OutputLayout
from jobs.runner import build_session
from jobs.schema import OUTPUT_SCHEMA, REJECT_SCHEMA
root = sys.argv[1]
spark = build_session("catalog-full", "local[1]", {**catalog_conf(root, {}), **json.loads(sys.argv[2])})
layout = OutputLayout(root)
def write(schema, path, by, values):
    rows = spark.createDataFrame([(f"{i}", *v) for i, v in enumerate(values)], ["id", *by])
    rows.select(*[F.col(f.name).cast(f.dataType) if f.name in rows.columns
                  else F.lit(None).cast(f.dataType).alias(f.name) for f in schema.fields]
    ).write.mode("overwrite").partitionBy(*by).parquet(path)
def load(values):
    write(OUTPUT_SCHEMA, layout.data, layout.data_partitions, values)
    write(REJECT_SCHEMA, layout.rejects, layout.reject_partitions, [(v[1],) for v in values])
    record = register(spark, "lake.full", layout)
    seen = [[str(v) for v in row] for row in spark.sql(
        "SELECT language, task_cluster, count(*) FROM lake.full GROUP BY 1, 2").collect()]
    rejects = spark.sql("SELECT count(*) FROM lake.full_rejects").first()[0]
    return {"record": record, "rows": sorted(seen), "rejects": rejects}
out = {"first": load([("en", "qa"), ("en", "qa"), ("fr", "qa"), ("en", "a b/c%")]),
       "second": load([("en", "qa"), ("de", "qa")])}
for name, other in (("moved", OutputLayout(root + "-elsewhere")),
                    ("dated", OutputLayout.for_run(root, ["language", "task_cluster"],
                                                   __import__("datetime").date(2026, 1, 1)))):
    try:
        register(spark, "lake.full", other)
        out[name] = None
    except ValueError as exc:
        out[name] = str(exc)
print(json.dumps(out))
spark.stop()
"""


def test_a_full_build_syncs_every_partition(tmp_path: Path) -> None:
    out = tmp_path / "out"
    seen = _script(FULL_BUILD, ROOT, str(out))
    first, second = seen["first"], seen["second"]
    assert first["rows"] == [["en", "a b/c%", "1"], ["en", "qa", "2"], ["fr", "qa", "1"]]
    assert first["record"]["partitions"] == 3 and first["record"]["dropped"] == 0
    assert "language=en/task_cluster=a b%2Fc%25" in first["record"]["added"]
    assert first["rejects"] == 4
    # The rewrite's partitions only: two gone from the data table, one from the rejects'.
    assert second["rows"] == [["de", "qa", "1"], ["en", "qa", "1"]]
    assert second["record"]["added"] == ["language=de/task_cluster=qa"]
    assert (second["record"]["partitions"], second["record"]["dropped"]) == (2, 3)
    assert second["rejects"] == 2
    assert "exists with another location" in seen["moved"]
    assert "partitioned by ['language', 'task_cluster']" in seen["dated"]
    assert (tmp_path / "derby.log").is_file()
