"""The three entry points with the same arguments, run as a user runs them (each launches its
own JVM), plus a real standalone cluster on loopback through spark-submit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jobs.dev.local_cluster import standalone_cluster
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


@pytest.mark.cluster
def test_spark_submit_to_a_standalone_cluster(tmp_path: Path) -> None:
    archive = write_code_zip(ROOT, tmp_path / "instructmill.zip")
    with standalone_cluster(cores=2, memory="1g") as master:
        done = spark_submit(master, archive, tmp_path / "out", "spark.executor.memory=1g")
    manifest = check_demo_output(tmp_path / "out", done)
    assert manifest["spark"]["master"] == master
