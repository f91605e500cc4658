"""The nightly Airflow DAG (``deploy/airflow_dag.py``), loaded by a real Airflow ``DagBag``.

Airflow is no dependency of the job, and it is not in ``.venv``: it is installed from PyPI into
its own venv, ``.venv-airflow``, by ``make airflow-venv`` or the first run of this test (about
30 s; the stamp file ``.venv-airflow/.installed`` records the time, and later runs reuse the
venv while the stamp names the same requirements). A script run in that venv parses ``deploy/``
with a ``DagBag`` (no examples) in a throwaway ``AIRFLOW_HOME`` with its standalone sqlite
defaults; parsing reads no metadata database, so no ``airflow db migrate``. It prints the DAG
and its task as JSON: raw, with the templates rendered as the run of 2026-11-20 renders them
(without Variables, then with some set), and the spark-submit command line the operator's hook
builds from that.

The test skips only when pip cannot reach the package index; any other failure fails it.

    .venv/bin/python -m tests.test_airflow_dag   # make the venv (what `make airflow-venv` runs)
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

AIRFLOW_REQUIREMENTS = (
    "apache-airflow>=3.3.2,<3.4",
    "apache-airflow-providers-apache-spark>=6.3.4,<7",
)
AIRFLOW_VENV = Path(os.environ.get("INSTRUCTMILL_AIRFLOW_VENV", ROOT / ".venv-airflow"))
AIRFLOW_PYTHON = AIRFLOW_VENV / "bin" / "python"
AIRFLOW_STAMP = AIRFLOW_VENV / ".installed"
DEPLOY = ROOT / "deploy"
DAG_ID = "instructmill_nightly"
RUN_DATE = "2026-11-20"
# Airflow Variables set (through the environment) for a second rendering.
VARIABLES = {
    "instructmill_output": "/warehouse/instructmill/from_variable",
    "instructmill_archives": "hdfs:///envs/instructmill-env.tar.gz#env,instructmill-job.zip#job",
}
# What pip prints when it cannot reach the index (then the test skips instead of failing).
NETWORK_ERRORS = (
    "NewConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "Connection refused",
    "Could not fetch URL",
    # No version at all of packages that PyPI has: the index is out of reach (with retries
    # off, pip prints only this).
    "(from versions: none)",
)


class AirflowUnavailable(RuntimeError):
    """pip could not reach the package index."""


def _pip(*args: str) -> None:
    command = [str(AIRFLOW_PYTHON), "-m", "pip", "install", "--disable-pip-version-check", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return
    output = done.stdout + done.stderr
    if any(marker in output for marker in NETWORK_ERRORS):
        raise AirflowUnavailable(f"pip could not reach the package index: {output[-1500:]}")
    raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{output[-4000:]}")


def ensure_airflow_venv() -> dict[str, Any]:
    """.venv-airflow with AIRFLOW_REQUIREMENTS installed, made once; returns its stamp."""
    if AIRFLOW_STAMP.exists() and AIRFLOW_PYTHON.exists():
        stamp = json.loads(AIRFLOW_STAMP.read_text(encoding="utf-8"))
        if stamp.get("requirements") == list(AIRFLOW_REQUIREMENTS):
            return stamp
    started = time.monotonic()
    if not AIRFLOW_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(AIRFLOW_VENV)], check=True)
    _pip("--quiet", "--upgrade", "pip")
    _pip("--quiet", *AIRFLOW_REQUIREMENTS)
    stamp = {
        "requirements": list(AIRFLOW_REQUIREMENTS),
        "install_seconds": round(time.monotonic() - started, 1),
    }
    AIRFLOW_STAMP.write_text(json.dumps(stamp, indent=1) + "\n", encoding="utf-8")
    return stamp


# Run by the venv's Python: parse deploy/, print the DAG as JSON (raw, then rendered as a run
# of RUN_DATE renders it, then again with VARIABLES set through the environment).
PARSE_SCRIPT = r"""
import inspect, json, os, sys
from importlib.metadata import version

try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
from airflow.sdk.execution_time.context import VariableAccessor

deploy, dag_id, run_date, variables = sys.argv[1:5]
# Airflow 3.2+ keeps its examples in a bundle of their own: DagBag has no include_examples.
no_examples = {"include_examples": False}
if "include_examples" not in inspect.signature(DagBag).parameters:
    no_examples = {}
bag = DagBag(dag_folder=deploy, **no_examples)
out = {
    "versions": {name: version(name) for name in (
        "apache-airflow", "apache-airflow-providers-apache-spark")},
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "warnings": {str(k): list(v) for k, v in bag.captured_warnings.items()},
    "dag_ids": sorted(bag.dag_ids),
}
dag = bag.dags.get(dag_id)
FIELDS = ("application", "application_args", "conf", "py_files", "name")


def rendered(task):
    context = {"ds": run_date, "var": {"value": VariableAccessor(deserialize_json=False)}}
    return {f: task.render_template(getattr(task, f), context) for f in FIELDS}


if dag is not None:
    out["dag"] = {
        "schedule": dag.timetable.expression,
        "timezone": str(dag.timetable.timezone),
        "timetable": type(dag.timetable).__name__,
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
    }
    out["tasks"] = []
    for task in dag.tasks:
        row = {
            "task_id": task.task_id,
            "operator": type(task).__module__ + "." + type(task).__name__,
            "template_fields": list(task.template_fields),
            "retries": task.retries,
            "retry_delay": task.retry_delay.total_seconds(),
            "depends_on_past": task.depends_on_past,
            "conn_id": getattr(task, "_conn_id", None),
            "raw": {f: getattr(task, f, None) for f in FIELDS},
            # Not a templated field of SparkSubmitOperator: used as it is.
            "archives": getattr(task, "_archives", None),
        }
        out["tasks"].append(row)
        if type(task).__name__ != "SparkSubmitOperator":
            continue
        row["rendered"] = rendered(task)
        names = {"AIRFLOW_VAR_" + k.upper(): v for k, v in json.loads(variables).items()}
        os.environ.update(names)
        row["rendered_with_variables"] = rendered(task)
        for name in names:
            del os.environ[name]
        # The command line the operator's hook would run (connection spark_default from
        # AIRFLOW_CONN_SPARK_DEFAULT), from the task rendered in place.
        for field, value in row["rendered"].items():
            setattr(task, field, value)
        row["command"] = task._get_hook()._build_spark_submit_command(task.application)
print(json.dumps(out, default=str))
"""


@pytest.fixture(scope="session")
def airflow_python() -> Path:
    try:
        ensure_airflow_venv()
    except AirflowUnavailable as exc:
        pytest.skip(f"Airflow cannot be installed from PyPI here: {exc}")
    return AIRFLOW_PYTHON


@pytest.fixture(scope="module")
def parsed(airflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "INSTRUCTMILL_", "PYTHON"))
    }
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DEPLOY),
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[2]"}),
    }
    args = [str(airflow_python), "-c", PARSE_SCRIPT, str(DEPLOY), DAG_ID, RUN_DATE]
    done = subprocess.run(
        [*args, json.dumps(VARIABLES)],
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _task(parsed: dict[str, Any]) -> dict[str, Any]:
    assert parsed["import_errors"] == {}
    assert DAG_ID in parsed["dag_ids"], parsed["dag_ids"]
    (task,) = parsed["tasks"]
    return task


def _option(args: list[str], flag: str) -> str:
    assert args.count(flag) == 1, args
    return args[args.index(flag) + 1]


def _makefile_variable(name: str) -> str:
    match = re.search(rf"^{name}\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"{name} not in the Makefile"
    return match.group(1)


def test_dag_loads_without_import_errors(
    parsed: dict[str, Any], report: Callable[[str], None]
) -> None:
    assert parsed["import_errors"] == {}
    assert parsed["warnings"] == {}
    assert parsed["dag_ids"] == [DAG_ID]
    stamp = json.loads(AIRFLOW_STAMP.read_text(encoding="utf-8"))
    versions = ", ".join(f"{name} {v}" for name, v in parsed["versions"].items())
    report(f"airflow DAG: {versions}; venv installed in {stamp['install_seconds']} s")


def test_schedule_runs_loads_one_after_another(parsed: dict[str, Any]) -> None:
    dag = parsed["dag"]
    assert dag["max_active_runs"] == 1
    assert dag["catchup"] is True
    # A cron trigger: the run that fires on a night has that night's date as ds.
    assert dag["timetable"] == "CronTriggerTimetable", dag
    assert (dag["schedule"], dag["timezone"]) == ("0 2 * * *", "UTC")
    task = _task(parsed)
    assert task["depends_on_past"] is True
    assert task["retries"] >= 1
    assert task["retry_delay"] >= 60


def test_task_is_a_spark_submit_of_a_dated_load(parsed: dict[str, Any]) -> None:
    task = _task(parsed)
    assert task["operator"] == (
        "airflow.providers.apache.spark.operators.spark_submit.SparkSubmitOperator"
    )
    assert {"application", "application_args", "conf", "py_files"} <= set(task["template_fields"])
    raw, rendered = task["raw"], task["rendered"]
    assert raw["application_args"][0] == "build"
    assert _option(raw["application_args"], "--run-date") == "{{ ds }}"
    assert _option(rendered["application_args"], "--run-date") == RUN_DATE
    overridden = task["rendered_with_variables"]["application_args"]
    assert _option(overridden, "--output") == VARIABLES["instructmill_output"]
    assert rendered["conf"]["spark.pyspark.python"] == "./env/bin/python"
    # The archive travels as spark.archives (what spark-submit makes of --archives), as the
    # operator's `archives` is not templated; not both.
    assert rendered["conf"]["spark.archives"].endswith("#env")
    assert task["archives"] is None
    with_variables = task["rendered_with_variables"]["conf"]["spark.archives"]
    assert with_variables == VARIABLES["instructmill_archives"]


def test_the_command_airflow_runs(parsed: dict[str, Any]) -> None:
    task = _task(parsed)
    rendered, command = task["rendered"], task["command"]
    assert command[:3] == ["spark-submit", "--master", "local[2]"]
    pairs = list(itertools.pairwise(command))
    assert ("--conf", f"spark.archives={ROOT / _makefile_variable('ENV_ARCHIVE')}#env") in pairs
    assert ("--conf", "spark.pyspark.python=./env/bin/python") in pairs
    assert ("--py-files", rendered["py_files"]) in pairs
    assert ("--name", f"instructmill-nightly-{RUN_DATE}") in pairs
    tail = [rendered["application"], *rendered["application_args"]]
    assert command[-len(tail) :] == tail


def test_every_path_the_dag_names_is_this_repos(parsed: dict[str, Any]) -> None:
    rendered = _task(parsed)["rendered"]
    args, conf = rendered["application_args"], rendered["conf"]
    # Build products (make env-pack, make dist): the paths those targets write.
    assert Path(conf["spark.archives"].removesuffix("#env")) == ROOT / _makefile_variable(
        "ENV_ARCHIVE"
    )
    dist = re.search(r"jobs\.dev\.dist (\S+)", (ROOT / "Makefile").read_text())
    assert dist, "the Makefile's dist target"
    assert Path(rendered["py_files"]) == ROOT / dist[1]
    named = {
        "application": rendered["application"],
        "--conf": _option(args, "--conf"),
        "spark.pyspark.driver.python": conf["spark.pyspark.driver.python"],
        "log4j2": conf["spark.driver.extraJavaOptions"].partition("=")[2],
    }
    assert Path(named["application"]) == ROOT / "jobs" / "cli.py"
    assert Path(named["--conf"]).parent == ROOT / "conf"
    missing = {key: path for key, path in named.items() if not Path(path).is_file()}
    assert missing == {}
    # The output is made by the first load.
    assert Path(_option(args, "--output")).is_relative_to(ROOT / "out")


if __name__ == "__main__":
    print(json.dumps(ensure_airflow_venv()))
