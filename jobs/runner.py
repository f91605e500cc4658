"""The one runner every command goes through: logging, exit codes, the answer to a config
error, and the SparkSession's life (the Java check, quiet logs, the Python that executors run,
our own code shipped so every mode, local, standalone, YARN or k8s, imports it; the session
stopped whatever happens). Commands get a session and give an exit code."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import SparkSession

from jobs.config import ConfigError
from jobs.failures import StageError, explain
from jobs.io.code_zip import write_code_zip
from jobs.progress import ConsoleProgress, describe

log = logging.getLogger("instructmill")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNRECONCILED = 3

JAVA_REQUIRED = (
    "instructmill needs Java 17 or newer: install a JDK (e.g. `apt-get install openjdk-17-jdk`) "
    "and put `java` on PATH or set JAVA_HOME."
)
LOG4J_CONF = Path(__file__).resolve().parent.parent / "conf" / "log4j2.properties"


class JavaMissingError(RuntimeError):
    pass


def under_spark_submit() -> bool:
    """spark-submit starts the JVM first and hands Python its gateway port."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def require_java() -> str:
    """Fail with one clear sentence, not a Py4J stack trace, when Java is missing or too old."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise JavaMissingError(JAVA_REQUIRED)
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise JavaMissingError(f"{JAVA_REQUIRED} ({java}: {exc})") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise JavaMissingError(f"{JAVA_REQUIRED} (`{java} -version` printed no version)")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < 17:
        raise JavaMissingError(f"{JAVA_REQUIRED} ({java} is Java {major})")
    return java


def quiet_python_warnings() -> None:
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    warnings.filterwarnings("ignore", module="pyspark")
    warnings.filterwarnings("ignore", category=FutureWarning)


def _code_archive(spark: SparkSession) -> str | None:
    """Zip of our packages for executors, unless they already arrive via --py-files."""
    import udfs

    shipped = spark.sparkContext.getConf().get("spark.submit.pyFiles", "")
    if ".zip" in str(Path(udfs.__file__)) or "instructmill" in shipped:
        return None
    root = Path(udfs.__file__).resolve().parent.parent
    archive = Path(tempfile.mkdtemp(prefix="instructmill-")) / "instructmill-code.zip"
    write_code_zip(root, archive)
    return str(archive)


MASTER_HELP = (
    "Spark master URL (default: spark-submit's, else local[*,4]). local, local[N] and local[*] "
    "get 4 task attempts (local[N,4]) so a killed Python worker is retried; name F yourself "
    "with local[N,F] (local[N,1]: no retries)."
)

# Task attempts in local mode: Spark's local mode runs each task once (a killed or
# out-of-memory Python worker fails the whole job) unless the master names F, local[N,F].
LOCAL_TASK_ATTEMPTS = 4
DEFAULT_MASTER = f"local[*,{LOCAL_TASK_ATTEMPTS}]"
_LOCAL_WITHOUT_ATTEMPTS = re.compile(r"^local(?:\[(\*|\d+)\])?$")


def with_task_attempts(master: str) -> str:
    """``local``, ``local[N]`` and ``local[*]`` as ``local[N,4]``: the same retries as the
    default master. A master that names its attempts (``local[2,1]``) or is not local mode
    is kept as it is."""
    match = _LOCAL_WITHOUT_ATTEMPTS.match(master.strip())
    if not match:
        return master
    return f"local[{match.group(1) or 1},{LOCAL_TASK_ATTEMPTS}]"


def local_cores(master: str) -> int:
    """Cores of a ``local``, ``local[N]``, ``local[*]`` or ``local[N,F]`` master."""
    inside = master[len("local[") : -1] if master.startswith("local[") else "1"
    count = inside.split(",")[0].strip()
    return (os.cpu_count() or 1) if count == "*" else max(1, int(count))


def build_session(
    app_name: str = "instructmill",
    master: str | None = None,
    conf: dict[str, str] | None = None,
) -> SparkSession:
    quiet_python_warnings()
    submitted = under_spark_submit()
    if not submitted:
        require_java()
        # Executors on this machine (local mode, a loopback standalone cluster) must run the
        # Python that has our dependencies; a real cluster sets spark.pyspark.python itself.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        master = with_task_attempts(master)
        builder = builder.master(master)
    elif not submitted:
        master = DEFAULT_MASTER
        builder = builder.master(master)
    settings = {
        # Ours (jobs.progress) names the step; Spark's names only the stage number.
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        # Rendering costs far more per byte than reading: smaller input splits keep every core
        # busy to the end instead of one straggler task per wave (override in the conf's `spark:`).
        "spark.sql.files.maxPartitionBytes": "32m",
        # Record fields are case-sensitive (JSON keys, Jinja names): `text` and `Text` differ.
        "spark.sql.caseSensitive": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Partition values such as language=und or task_cluster=123 stay strings on read-back.
        "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    }
    if master and master.startswith("local"):
        # Local mode needs no network: keep the driver on loopback.
        settings["spark.driver.host"] = "127.0.0.1"
        settings["spark.driver.bindAddress"] = "127.0.0.1"
        # Dedup's graph rounds are chains of small shuffles: Spark's default of 200
        # partitions a shuffle is pure task overhead on one machine. Clusters set their own.
        settings["spark.sql.shuffle.partitions"] = str(4 * local_cores(master))
    if not submitted and LOG4J_CONF.exists():
        settings["spark.driver.extraJavaOptions"] = (
            f"-Dlog4j2.configurationFile={LOG4J_CONF.as_uri()}"
        )
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("INSTRUCTMILL_SPARK_LOG_LEVEL", "WARN"))
    archive = _code_archive(spark)
    if archive:
        spark.sparkContext.addPyFile(archive)
    return spark


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s instructmill %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    # INSTRUCTMILL_LOG_LEVEL=DEBUG adds the traceback after a failure's one line.
    level = os.environ.get("INSTRUCTMILL_LOG_LEVEL", "INFO").upper()
    log.setLevel(level if isinstance(logging.getLevelName(level), int) else logging.INFO)
    log.propagate = False


def config_failure(error: ConfigError) -> int:
    """Every command's answer to a config error: the message, exit code 2, no Spark."""
    print(f"config error:\n{error}", file=sys.stderr)
    return EXIT_CONFIG


def _spark_side(exc: BaseException | None) -> bool:
    """Whether the failure came from Spark (its Java trace is in Spark's own log) rather than
    from our driver code, where the traceback is the evidence."""
    while exc is not None:
        if type(exc).__module__.startswith(("py4j", "pyspark")):
            return True
        exc = exc.__cause__
    return False


def run_job(spark: SparkSession, command: str, job: Callable[[SparkSession], int]) -> int:
    """``job``'s exit code; a config error found while running is exit 2, any other failure is
    exit 1, logged as one line: ``build failed in stage 'write data': <cause>`` (a
    :class:`StageError`) or ``build failed: <cause>``, the cause in :func:`explain`'s words. The
    traceback follows at debug level, or always when our own driver code failed. The session
    stays open."""
    try:
        return job(spark)
    except ConfigError as exc:
        return config_failure(exc)
    except Exception as exc:
        line = str(exc) if isinstance(exc, StageError) else f"{command} failed: {explain(exc)}"
        log.error("%s", line)
        if _spark_side(exc):
            log.debug("%s: the traceback", command, exc_info=exc)
        else:
            log.error("%s: the traceback", command, exc_info=exc)
        return EXIT_FAILED


def run_command(
    command: str, app_name: str, master: str | None, conf: dict[str, str],
    job: Callable[[SparkSession], int],
) -> int:  # fmt: skip
    """Every command's Spark run: start the session (one clear line and exit 1 when Java is
    missing), run ``job`` for its exit code (:func:`run_job`), and stop the session whatever
    happens."""
    try:
        spark = build_session(app_name, master, conf)
    except JavaMissingError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    # No job goes unnamed (`count at NativeMethodAccessorImpl`): the command names the
    # ones its steps do not.
    describe(spark.sparkContext, f"instructmill {command}")
    progress = ConsoleProgress(spark.sparkContext).start() if ConsoleProgress.wanted() else None
    try:
        return run_job(spark, command, job)
    finally:
        if progress is not None:
            progress.stop()
        spark.stop()
