"""Failures in one readable line, from real exceptions of a real local SparkSession: a task's
Python error, a missing or corrupt Parquet file, a crashed Python worker (retried by the default
local master, explained when every attempt fails); and the runner's one log line per failure."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from jobs.config import ConfigError
from jobs.failures import StageError, explain, in_stage
from jobs.runner import (
    DEFAULT_MASTER,
    EXIT_CONFIG,
    EXIT_FAILED,
    local_cores,
    run_job,
    with_task_attempts,
)

ROOT = Path(__file__).resolve().parent.parent


def failure_of(action: Any) -> BaseException:
    with pytest.raises(Exception) as caught:
        action()
    return caught.value


@pytest.fixture
def logged() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("instructmill")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_masters_get_task_attempts() -> None:
    assert DEFAULT_MASTER == "local[*,4]"
    assert with_task_attempts("local") == "local[1,4]"
    assert with_task_attempts("local[2]") == "local[2,4]"
    assert with_task_attempts("local[*]") == "local[*,4]"
    # Attempts already named, and masters that are not local mode, are left as given.
    for master in (
        "local[2,1]",
        "local[*,8]",
        "spark://host:7077",
        "yarn",
        "local-cluster[2,1,1024]",
    ):
        assert with_task_attempts(master) == master
    assert local_cores("local[2,4]") == 2 and local_cores("local[3]") == 3
    assert local_cores("local[*,4]") == (os.cpu_count() or 1)


@pytest.mark.spark
def test_the_shared_session_retries_tasks(spark: Any) -> None:
    # conftest asks build_session for local[2]: it runs with the CLI's task attempts.
    assert spark.sparkContext.master == "local[2,4]"


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:Cannot infer the eval type")  # a plain UDF, on purpose
def test_a_python_error_in_a_task_is_named_with_where_it_was_raised(spark: Any) -> None:
    @F.udf("string")
    def label_of(value: int) -> str:
        raise ValueError(f"no label for {value}")

    exc = failure_of(lambda: spark.range(3).select(label_of("id")).collect())
    line = explain(exc)
    assert line.startswith("ValueError: no label for ")
    assert "test_failures.py:" in line and "in label_of" in line
    assert "\n" not in line and "Py4J" not in line and "Traceback" not in line


@pytest.mark.spark
def test_a_missing_and_a_corrupt_parquet_file_are_named(spark: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    line = explain(failure_of(lambda: spark.read.parquet(str(missing)).collect()))
    assert line.startswith("[PATH_NOT_FOUND]") and str(missing) in line

    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "good.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    exc = failure_of(lambda: spark.read.schema("a long").parquet(str(tmp_path)).count())
    assert "Py4JJavaError" in type(exc).__name__  # the raw error names neither file nor cause
    line = explain(exc)
    assert "bad.parquet" in line and "good.parquet" not in line
    assert "Job aborted" not in line and "SQLSTATE" not in line


def crash(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    os._exit(1)
    yield from batches


def crash_once(marker: str) -> Any:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            yield from batches  # the retry
            return
        os._exit(1)

    return run


@pytest.mark.spark
def test_a_crashed_python_worker_is_retried(spark: Any, tmp_path: Path) -> None:
    marker = tmp_path / "crashed"
    rows = spark.range(5).repartition(1).mapInArrow(crash_once(str(marker)), "id long").count()
    assert marker.exists() and rows == 5


@pytest.mark.spark
def test_a_worker_that_crashes_every_attempt(spark: Any) -> None:
    exc = failure_of(lambda: spark.range(3).repartition(1).mapInArrow(crash, "id long").collect())
    line = explain(exc)
    assert line.startswith("a Python worker crashed (killed, or out of memory)")
    assert "failed all 4 attempts" in line and "spark.executor.pyspark.memory" in line


def test_a_worker_crash_without_retries_says_how_to_get_them(tmp_path: Path) -> None:
    # Its own Spark driver: local[1,1] runs each task once, as Spark's plain local mode does.
    script = (
        "import os\n"
        "from jobs.runner import build_session\n"
        "from jobs.failures import explain\n"
        "spark = build_session('crash', master='local[1,1]', conf={'spark.ui.enabled': 'false',"
        " 'spark.driver.memory': '1g', 'spark.ui.showConsoleProgress': 'false'})\n"
        "def crash(batches):\n"
        "    os._exit(1)\n"
        "    yield from batches\n"
        "try:\n"
        "    spark.range(3).mapInArrow(crash, 'id long').collect()\n"
        "except Exception as exc:\n"
        "    print('EXPLAINED', explain(exc))\n"
        "spark.stop()\n"
    )
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "INSTRUCTMILL_SPARK_LOG_LEVEL": "OFF"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("EXPLAINED ")] or [done.stderr]
    assert "a Python worker crashed" in line, done.stderr[-2000:]
    assert "the task was tried once" in line and "local[*,4]" in line


@pytest.mark.spark
def test_a_stage_failure_is_one_line_naming_the_stage(
    spark: Any, tmp_path: Path, logged: list[logging.LogRecord]
) -> None:
    missing = str(tmp_path / "gone.parquet")

    def job(session: Any) -> int:
        with in_stage("build", "write data"):
            session.read.parquet(missing).count()
        return 0

    assert run_job(spark, "build", job) == EXIT_FAILED
    errors = [r for r in logged if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None  # the traceback is at debug level
    line = errors[0].getMessage()
    assert line.startswith("build failed in stage 'write data': [PATH_NOT_FOUND]")
    assert missing in line and "\n" not in line


def test_stage_error_and_in_stage_pass_config_errors_through(
    logged: list[logging.LogRecord],
) -> None:
    error = StageError("dedup", "components", "ValueError: x")
    assert (error.command, error.stage, error.cause) == ("dedup", "components", "ValueError: x")
    assert str(error) == "dedup failed in stage 'components': ValueError: x"
    assert explain(error) == "ValueError: x"

    def bad_config(session: Any) -> int:
        with in_stage("build", "read"):
            raise ConfigError("conf.yaml: seed: should be an integer")

    assert run_job(None, "build", bad_config) == EXIT_CONFIG  # type: ignore[arg-type]

    def driver_bug(session: Any) -> int:
        return {"a": 1}["b"]

    assert run_job(None, "build", driver_bug) == EXIT_FAILED  # type: ignore[arg-type]
    (line, trace) = [r for r in logged if r.levelno >= logging.ERROR]
    assert line.getMessage().startswith("build failed: KeyError: 'b' (at test_failures.py:")
    assert trace.exc_info is not None  # our own code failed: its traceback follows the line
