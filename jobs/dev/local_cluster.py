"""A real standalone Spark cluster (one master, one worker) on loopback, for cluster-mode tests
and `make cluster-demo`:

    python -m jobs.dev.local_cluster -- spark-submit --py-files dist/instructmill.zip \
        jobs/build.py ...

runs the command with ``--master spark://127.0.0.1:PORT`` inserted after its first word, then
stops the cluster. Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pyspark.find_spark_home import _find_spark_home

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait(
    condition: object, what: str, timeout: float, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what}: process exited early; log:\n{log.read_text()[-3000:]}")
        try:
            if condition():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s; log:\n{log.read_text()[-3000:]}")


def _alive_workers(ui_port: int) -> int:
    with urllib.request.urlopen(f"http://{HOST}:{ui_port}/json/", timeout=5) as response:
        return int(json.load(response).get("aliveworkers", 0))


@contextmanager
def standalone_cluster(cores: int = 2, memory: str = "2g", timeout: float = 120) -> Iterator[str]:
    """Yield the master URL of a running master + worker; both are stopped on exit."""
    spark_home = _find_spark_home()
    spark_class = str(Path(spark_home) / "bin" / "spark-class")
    work = Path(tempfile.mkdtemp(prefix="instructmill-cluster-"))
    env = {
        **os.environ,
        "SPARK_HOME": spark_home,
        "SPARK_LOCAL_IP": HOST,
        "SPARK_NO_DAEMONIZE": "1",
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
    }
    port, ui_port, worker_ui = _free_port(), _free_port(), _free_port()
    url = f"spark://{HOST}:{port}"
    processes: list[subprocess.Popen[bytes]] = []

    def start(role: str, *arguments: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = work / f"{role.lower()}.log"
        process = subprocess.Popen(
            [spark_class, f"org.apache.spark.deploy.{role.lower()}.{role}", *arguments],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        return process, log

    try:
        master, master_log = start(
            "Master", "--host", HOST, "--port", str(port), "--webui-port", str(ui_port)
        )
        _wait(lambda: _alive_workers(ui_port) >= 0, "master", timeout, master, master_log)
        worker, worker_log = start(
            "Worker", "--host", HOST, "--cores", str(cores), "--memory", memory,
            "--webui-port", str(worker_ui), "--work-dir", str(work / "work"), url,
        )  # fmt: skip
        _wait(lambda: _alive_workers(ui_port) >= 1, "worker", timeout, worker, worker_log)
        yield url
    finally:
        _stop(processes)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in reversed(processes):
        process.terminate()
    for process in reversed(processes):
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.dev.local_cluster", description=__doc__)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--memory", default="2g")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run, e.g. -- spark-submit jobs/build.py ...")
    with standalone_cluster(args.cores, args.memory) as url:
        print(f"standalone cluster at {url}", file=sys.stderr)
        env = {
            **os.environ,
            "SPARK_HOME": os.environ.get("SPARK_HOME", _find_spark_home()),
            "SPARK_LOCAL_IP": HOST,
        }
        return subprocess.call([command[0], "--master", url, *command[1:]], env=env)


if __name__ == "__main__":
    sys.exit(main())
