"""Building the SparkSession: Java check, quiet logs, the Python that executors run, and
shipping our own code to executors so every mode (local, standalone, YARN, k8s) imports it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from pyspark.sql import SparkSession

from jobs.dist import write_code_zip

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


def local_cores(master: str) -> int:
    """Cores of a ``local``, ``local[N]`` or ``local[*]`` master."""
    inside = master[len("local[") : -1] if master.startswith("local[") else "1"
    count = inside.split(",")[0]
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
        builder = builder.master(master)
    elif not submitted:
        master = "local[*]"
        builder = builder.master(master)
    settings = {
        "spark.ui.showConsoleProgress": "true",
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
