"""A real standalone Spark cluster on loopback (one master, two workers by default, each in its own
JVM with its own ports, work dir and local dirs), for the cluster test and `make cluster-demo`:

    python -m jobs.dev.local_cluster [--workers 2] -- spark-submit \
        --py-files dist/instructmill.zip --archives dist/instructmill-env.tar.gz#env \
        --conf spark.pyspark.python=./env/bin/python jobs/build.py ...

runs the command with ``--master spark://127.0.0.1:PORT`` inserted after its first word, then
stops the cluster and deletes its folder. Each worker offers 1 core, so two workers are two
executors that share shuffles on this 2-core machine, and the daemons run with small heaps
(``SPARK_DAEMON_MEMORY``, 512m). The workers get no ``PYSPARK_PYTHON``: executors run the Python
the application names (``spark.pyspark.python``), as on a real cluster. Only loopback addresses
are used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.find_spark_home import _find_spark_home

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ClusterProcess:
    """A process running in one of the cluster's folders (an executor's JVM or Python worker)."""

    pid: int
    cwd: Path
    argv: tuple[str, ...]
    libraries: frozenset[str]  # the shared objects it has mapped (Python processes only)


@dataclass
class StandaloneCluster:
    url: str  # spark://127.0.0.1:PORT
    ui_port: int  # the master's web UI (and its /json/ status)
    root: Path  # logs, and each worker's work/ (app-*/EXECUTOR/stdout, stderr) and local/
    workers: list[Path] = field(default_factory=list)

    def status(self) -> dict[str, object]:
        with urllib.request.urlopen(f"http://{HOST}:{self.ui_port}/json/", timeout=5) as response:
            return dict(json.load(response))

    def executor_dirs(self) -> list[Path]:
        """Every executor's working directory (``work/app-*/N``) on every worker."""
        return sorted(path for w in self.workers for path in (w / "work").glob("app-*/*"))

    def processes(self) -> list[ClusterProcess]:
        """The processes whose working directory is in this cluster's folder, now (Linux /proc):
        which Python each executor runs, and where its libraries come from."""
        found = []
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                cwd = Path(os.readlink(entry / "cwd"))
                if not cwd.is_relative_to(self.root):
                    continue
                argv = tuple(os.fsdecode(a) for a in (entry / "cmdline").read_bytes().split(b"\0"))
                maps = (entry / "maps").read_text() if "python" in argv[0] else ""
            except OSError:  # gone, or not ours to read
                continue
            libraries = frozenset(
                line.split(maxsplit=5)[-1] for line in maps.splitlines() if ".so" in line
            )
            found.append(ClusterProcess(int(entry.name), cwd, argv, libraries))
        return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait(
    condition: Callable[[], bool], what: str, timeout: float,
    process: subprocess.Popen[bytes], log: Path,
) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what}: process exited early; log:\n{log.read_text()[-3000:]}")
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s; log:\n{log.read_text()[-3000:]}")


def _daemon_env(spark_home: str, daemon_memory: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "SPARK_LOCAL_DIRS")}
    env.update(
        SPARK_HOME=spark_home,
        SPARK_LOCAL_IP=HOST,
        SPARK_NO_DAEMONIZE="1",
        SPARK_DAEMON_MEMORY=daemon_memory,
    )
    return env


@contextmanager
def standalone_cluster(
    workers: int = 2, cores: int = 1, memory: str = "1g", timeout: float = 120,
    daemon_memory: str = "512m", keep: bool = False,
) -> Iterator[StandaloneCluster]:  # fmt: skip
    """A running master and ``workers`` workers (``cores`` and ``memory`` each), all alive when
    this yields; stopped on exit, and their folder deleted unless ``keep``."""
    spark_home = _find_spark_home()
    spark_class = str(Path(spark_home) / "bin" / "spark-class")
    env = _daemon_env(spark_home, daemon_memory)
    cluster = StandaloneCluster(
        f"spark://{HOST}:{_free_port()}", _free_port(),
        Path(tempfile.mkdtemp(prefix="instructmill-cluster-")).resolve(),
    )  # fmt: skip
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, role: str, arguments: list[str], **extra: str) -> None:
        log = cluster.root / f"{name}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [spark_class, f"org.apache.spark.deploy.{role.lower()}.{role}", *arguments],
                env={**env, **extra}, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        processes.append(process)
        ready = {"Master": 0, "Worker": len(processes) - 1}[role]
        alive = lambda: int(cluster.status().get("aliveworkers", 0)) >= ready  # noqa: E731
        _wait(alive, name, timeout, process, log)

    try:
        port = cluster.url.rsplit(":", 1)[1]
        start("master", "Master", ["--host", HOST, "--port", port,
                                   "--webui-port", str(cluster.ui_port)])  # fmt: skip
        for number in range(1, workers + 1):
            home = cluster.root / f"worker-{number}"
            (home / "local").mkdir(parents=True)
            cluster.workers.append(home)
            start(
                f"worker-{number}", "Worker",
                ["--host", HOST, "--port", str(_free_port()), "--webui-port", str(_free_port()),
                 "--cores", str(cores), "--memory", memory, "--work-dir", str(home / "work"),
                 cluster.url],
                SPARK_LOCAL_DIRS=str(home / "local"),
            )  # fmt: skip
        yield cluster
    finally:
        _stop(processes)
        if not keep:
            shutil.rmtree(cluster.root, ignore_errors=True)


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
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cores", type=int, default=1, help="per worker")
    parser.add_argument("--memory", default="1g", help="per worker")
    parser.add_argument("--keep", action="store_true", help="keep the logs and work dirs")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run, e.g. -- spark-submit jobs/build.py ...")
    with standalone_cluster(args.workers, args.cores, args.memory, keep=args.keep) as cluster:
        print(
            f"standalone cluster at {cluster.url}: {args.workers} workers "
            f"({args.cores} core, {args.memory} each), files in {cluster.root}",
            file=sys.stderr,
        )
        env = {
            **os.environ,
            "SPARK_HOME": os.environ.get("SPARK_HOME", _find_spark_home()),
            "SPARK_LOCAL_IP": HOST,
        }
        return subprocess.call([command[0], "--master", cluster.url, *command[1:]], env=env)


if __name__ == "__main__":
    sys.exit(main())
