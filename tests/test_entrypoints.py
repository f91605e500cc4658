"""The three entry points with the same arguments, run as a user runs them (each launches its
own JVM), plus spark-submit to a real standalone cluster on loopback (two workers, the
environment shipped as an archive)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from jobs.dev.local_cluster import ClusterProcess, StandaloneCluster, standalone_cluster
from jobs.io.code_zip import write_code_zip
from tests.conftest import ROOT

pytestmark = pytest.mark.spark

VENV_BIN = Path(sys.executable).parent
DEMO_CONF = ROOT / "conf" / "demo.yaml"
LOG4J = f"-Dlog4j2.configurationFile={(ROOT / 'conf' / 'log4j2.properties').as_uri()}"


def run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env, check=False
    )


def check_demo_output(output: Path, done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-4000:]
    assert "TOTAL" in done.stdout and "_manifest.json" in done.stdout
    manifest = json.loads((output / "_manifest.json").read_text())
    assert manifest["totals"]["reconciled"] is True
    assert manifest["totals"]["written"] > 400
    assert any((output / "data").rglob("*.parquet"))
    return manifest


def spark_submit_env() -> dict[str, str]:
    from pyspark.find_spark_home import _find_spark_home

    return {**os.environ, "SPARK_HOME": _find_spark_home(), "SPARK_LOCAL_IP": "127.0.0.1"}


def spark_submit(
    master: str, archive: Path, output: Path, *confs: str
) -> subprocess.CompletedProcess[str]:
    options = [word for conf in confs for word in ("--conf", conf)]
    return run(
        [str(VENV_BIN / "spark-submit"), "--master", master, "--py-files", str(archive),
         "--conf", f"spark.pyspark.python={sys.executable}", *options,
         "--driver-java-options", LOG4J,
         "jobs/build.py", "--conf", str(DEMO_CONF), "--output", str(output)],
        env=spark_submit_env(),
    )  # fmt: skip


def test_console_script(tmp_path: Path) -> None:
    done = run(
        [
            str(VENV_BIN / "instructmill"),
            "build",
            "--conf",
            str(DEMO_CONF),
            "--output",
            str(tmp_path),
            "--master",
            "local[2]",
            "--run-date",
            "2026-11-20",
        ]
    )
    manifest = check_demo_output(tmp_path, done)
    assert manifest["load_date"] == "2026-11-20"
    assert (tmp_path / "data" / "load_date=2026-11-20").is_dir()
    assert "instructmill read:" in done.stderr and "instructmill render:" in done.stderr
    # The progress bar names the step whose jobs run (jobs.progress), not only a stage number;
    # Spark's own bar, which does not, is off.
    staged_pass = "[instructmill build: read+render+run columns+sign+langid+tag | stage "
    assert staged_pass in done.stderr, done.stderr[-4000:]
    assert "[instructmill build: write data | stage " in done.stderr
    assert "[Stage " not in done.stderr
    # Every build ends with its report (jobs.report), beside the manifest.
    assert (tmp_path / "report.html").is_file()
    assert f"report: {tmp_path / 'report.html'}" in done.stdout
    # The render line is the render stage's own executor time, not the build's so far.
    assert manifest["stages"]["task_seconds"]["render"] > 0


def test_python_module_and_spark_submit_give_the_same_rows(tmp_path: Path) -> None:
    as_module = run(
        [
            sys.executable,
            "-m",
            "jobs.build",
            "--conf",
            str(DEMO_CONF),
            "--output",
            str(tmp_path / "module"),
            "--master",
            "local[2]",
        ]
    )
    first = check_demo_output(tmp_path / "module", as_module)
    archive = write_code_zip(ROOT, tmp_path / "instructmill.zip")
    submitted = spark_submit("local[2]", archive, tmp_path / "submit")
    second = check_demo_output(tmp_path / "submit", submitted)
    assert first["sources"] == second["sources"]


def test_config_error_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    conf = tmp_path / "bad.yaml"
    conf.write_text(f"sources: [{ROOT}/conf/datasets/*.yaml]\noutput: out\nsed: 1\n")
    done = run([sys.executable, "-m", "jobs.build", "--conf", str(conf)])
    assert done.returncode == 2
    assert f"{conf}: sed: unknown key" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_java_fails_with_one_clear_sentence(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "PYSPARK_GATEWAY_PORT")}
    env["PATH"] = str(tmp_path)  # no java anywhere
    done = run(
        [
            sys.executable,
            "-m",
            "jobs.build",
            "--conf",
            str(DEMO_CONF),
            "--output",
            str(tmp_path / "out"),
        ],
        env=env,
    )
    assert done.returncode == 1
    assert "needs Java 17 or newer" in done.stderr
    assert "Traceback" not in done.stderr and "Py4J" not in done.stderr


PACKED_PYTHON = "./env/bin/python"  # relative to each executor's working dir
RUN_VOLATILE = ("run_id", "load_date")


def submit_with_packed_env(
    cluster: StandaloneCluster, code: Path, env: Path, output: Path, events: Path
) -> tuple[subprocess.CompletedProcess[str], dict[int, ClusterProcess]]:
    """The demo through spark-submit as on YARN or Kubernetes: the environment as an archive,
    our code as --py-files. Returns the run and every cluster process seen while it ran."""
    confs = {
        "spark.pyspark.python": PACKED_PYTHON,
        "spark.pyspark.driver.python": sys.executable,
        "spark.executor.memory": "1g",
        "spark.driver.memory": "1g",
        "spark.sql.shuffle.partitions": "4",
        # Two executors on one host read each other's shuffle files from disk by default; fetch
        # them over the network, as executors on two hosts do.
        "spark.shuffle.readHostLocalDisk": "false",
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": events.as_uri(),
        "spark.eventLog.compress": "false",
        "spark.eventLog.rolling.enabled": "false",
    }
    command = [
        str(VENV_BIN / "spark-submit"), "--master", cluster.url, "--deploy-mode", "client",
        "--archives", f"{env}#env", "--py-files", str(code),
        *[word for item in confs.items() for word in ("--conf", "=".join(item))],
        "--driver-java-options", LOG4J,
        "jobs/build.py", "--conf", str(DEMO_CONF), "--output", str(output),
    ]  # fmt: skip
    seen: dict[int, ClusterProcess] = {}
    process = subprocess.Popen(
        command, cwd=ROOT, env=spark_submit_env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 1200
    while True:
        try:
            stdout, stderr = process.communicate(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            # A process is sampled many times: keep every library any sample saw mapped.
            for sample in cluster.processes():
                earlier = seen.get(sample.pid)
                if earlier is not None:
                    sample = dataclasses.replace(
                        sample, libraries=earlier.libraries | sample.libraries
                    )
                seen[sample.pid] = sample
            if time.monotonic() > deadline:
                process.kill()
                raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), seen


def output_rows(output: Path, folder: str) -> list[dict[str, Any]]:
    """Every row but its run-volatile columns, in a fixed order."""
    table = ds.dataset(output / folder, partitioning="hive").to_table()
    rows = table.drop_columns(list(RUN_VOLATILE)).to_pylist()
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))


def task_metrics(events: Path) -> tuple[Counter[str], int, int]:
    """Tasks per executor, and the shuffle blocks and bytes read from another executor."""
    (log,) = events.iterdir()
    tasks: Counter[str] = Counter()
    remote_blocks = remote_bytes = 0
    with log.open() as lines:
        for line in lines:
            event = json.loads(line)
            if event["Event"] != "SparkListenerTaskEnd":
                continue
            tasks[event["Task Info"]["Executor ID"]] += 1
            read = (event.get("Task Metrics") or {}).get("Shuffle Read Metrics", {})
            remote_blocks += read.get("Remote Blocks Fetched", 0)
            remote_bytes += read.get("Remote Bytes Read", 0)
    return tasks, remote_blocks, remote_bytes


def check_packed_python(executors: list[Path], seen: dict[int, ClusterProcess]) -> None:
    """Each executor ran ./env/bin/python from its unpacked archive, with the archive's
    libraries, and no Python process of the cluster loaded anything from our .venv."""
    pythons = [p for p in seen.values() if "python" in Path(p.argv[0]).name]
    for executor in executors:
        mine = [p for p in pythons if p.cwd == executor]
        assert mine, f"no Python process in {executor}; seen: {[p.argv for p in seen.values()]}"
        assert {p.argv[0] for p in mine} == {PACKED_PYTHON}, [p.argv for p in mine]
    # Sampling every half second may catch an executor's workers only before they import
    # pyarrow (a fast executor's whole life can fall between samples), so the archive's own
    # libraries are asked of the cluster as a whole, not of each executor.
    packed = [str(executor / "env" / "lib") + "/" for executor in executors]
    loaded = {lib for p in pythons for lib in p.libraries}
    assert any(lib.startswith(tuple(packed)) for lib in loaded), sorted(loaded)
    venv = str(Path(sys.prefix).resolve()) + "/"
    assert not [lib for p in pythons for lib in p.libraries if lib.startswith(venv)]


@pytest.mark.cluster
def test_two_worker_cluster_with_a_packed_env_writes_local_modes_rows(
    spark: Any, tmp_path: Path, report: Any
) -> None:
    """Master and two workers on loopback (separate JVMs), the environment shipped with
    --archives as on YARN/Kubernetes: the same rows and rejects as local mode, both executors
    ran tasks, shuffle blocks crossed between them, and the executors ran the packed Python."""
    from jobs.commands.build import run_build, run_context
    from jobs.config import load_plan
    from jobs.dev.env_pack import ensure_env_archive

    started = time.monotonic()
    env = ensure_env_archive()  # dist/instructmill-env.tar.gz, rebuilt only when out of date
    code = write_code_zip(ROOT, tmp_path / "instructmill.zip")
    events = tmp_path / "events"
    events.mkdir()
    packed = time.monotonic()
    with standalone_cluster(workers=2, cores=1, memory="1g") as cluster:
        done, seen = submit_with_packed_env(cluster, code, env, tmp_path / "cluster", events)
        executors = cluster.executor_dirs()
        assert len(executors) == 2 and {e.parents[2] for e in executors} == set(cluster.workers)
        check_packed_python(executors, seen)
    manifest = check_demo_output(tmp_path / "cluster", done)
    assert manifest["spark"]["master"] == cluster.url

    tasks, remote_blocks, remote_bytes = task_metrics(events)
    assert len(tasks) == 2 and min(tasks.values()) > 0, tasks
    assert remote_blocks > 0 and remote_bytes > 0

    on_cluster = time.monotonic()
    local = tmp_path / "local"
    plan = load_plan(DEMO_CONF, output_override=str(local))
    run_build(spark, plan, run_context(plan, None))
    for folder in ("data", "rejects"):
        assert output_rows(tmp_path / "cluster", folder) == output_rows(local, folder), folder
    report(
        f"two-worker cluster, packed env: tasks per executor {dict(sorted(tasks.items()))}, "
        f"{remote_blocks} shuffle blocks ({remote_bytes / 1024:.0f} KiB) fetched from the other "
        f"executor; env archive {packed - started:.0f}s, cluster build "
        f"{on_cluster - packed:.0f}s, local build {time.monotonic() - on_cluster:.0f}s"
    )
