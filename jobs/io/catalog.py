"""The committed output as partitioned tables in the Spark catalog (a Hive metastore), so a
warehouse user queries ``db.name`` and ``db.name_rejects`` instead of reading folders.

The tables are external Parquet tables over ``data/`` and ``rejects/``: dropping a table or a
partition never deletes a file, and the build's own commit stays the one thing that changes
the data. :func:`register` runs after the commit and makes the table's partitions equal the
folders on disk (for a dated load: only that date's), so it is idempotent: a run whose
registration failed is mended by the next one.

The metastore is the user's when their conf, spark-defaults.conf or a hive-site.xml names
one; else :func:`catalog_conf` puts an embedded Derby metastore beside the output.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from jobs.config.models import TABLE_NAME
from jobs.io import hadoop_fs
from jobs.layout import OutputLayout
from jobs.runner import under_spark_submit
from jobs.schema import OUTPUT_COLUMNS, OUTPUT_SCHEMA, REJECT_COLUMNS, REJECT_SCHEMA

log = logging.getLogger("instructmill")

CATALOG_KEY = "spark.sql.catalogImplementation"
WAREHOUSE_KEY = "spark.sql.warehouse.dir"
JDO_URL_KEY = "spark.hadoop.javax.jdo.option.ConnectionURL"
# Spark hands both spellings to Hive (``spark.hive.x`` is Hive's ``hive.x``).
METASTORE_KEYS = ("spark.hadoop.hive.metastore.uris", "spark.hive.metastore.uris", JDO_URL_KEY)
METASTORE_FOLDER = "metastore_db"
WAREHOUSE_FOLDER = "warehouse"
REJECTS_SUFFIX = "_rejects"
# The Hive metastore keeps column comments in a VARCHAR(256).
COMMENT_LIMIT = 256
# Partition specs per ALTER TABLE statement: one metastore call each, and a bounded SQL text.
SPECS_PER_STATEMENT = 100
ADDED_SHOWN = 10


def _local_parent(output_root: str) -> Path | None:
    """The folder that holds a local output (a plain path or a file: URI); None for any
    other filesystem."""
    parts = urlsplit(output_root)
    if parts.scheme == "file":
        return Path(os.path.abspath(parts.path)).parent
    if parts.scheme and len(parts.scheme) > 1:  # one letter: a Windows drive
        return None
    return Path(os.path.abspath(output_root)).parent


def _conf_dirs() -> list[Path]:
    """Where spark-submit and Hive look for site configuration, as the launcher resolves it."""
    spark_home = os.environ.get("SPARK_HOME")
    if not spark_home:
        import pyspark

        spark_home = str(Path(pyspark.__file__).parent)
    names = [
        os.environ.get("SPARK_CONF_DIR") or f"{spark_home}/conf",
        os.environ.get("HADOOP_CONF_DIR"),
        os.environ.get("YARN_CONF_DIR"),
    ]
    return [Path(name) for name in names if name]


def _site_settings() -> tuple[dict[str, str], bool]:
    """Settings the JVM will get besides the pipeline conf (spark-defaults.conf, and under
    spark-submit its ``--conf`` flags), and whether a hive-site.xml configures Hive."""
    settings: dict[str, str] = {}
    has_hive_site = False
    for folder in _conf_dirs():
        has_hive_site = has_hive_site or (folder / "hive-site.xml").is_file()
        defaults = folder / "spark-defaults.conf"
        if defaults.is_file():
            for line in defaults.read_text(encoding="utf-8").splitlines():
                # A Java properties file: the key ends at whitespace, '=' or ':'.
                key, *value = re.split(r"\s*[\s=:]\s*", line.strip(), maxsplit=1)
                if key and not key.startswith(("#", "!")):
                    settings[key] = value[0] if value else ""
    if under_spark_submit():
        from pyspark import SparkConf

        settings.update(dict(SparkConf().getAll()))
    return settings, has_hive_site


def catalog_conf(output_root: str, user_conf: Mapping[str, str]) -> dict[str, str]:
    """The Spark settings that give the session a Hive metastore, to add to ``user_conf``
    (only keys it does not set). The metastore the user configured (``hive.metastore.uris``
    or a JDO connection URL, in the conf, spark-defaults.conf or a hive-site.xml) is kept;
    else an embedded Derby one in ``OUTPUT/../metastore_db`` with the warehouse folder
    ``OUTPUT/../warehouse`` beside it. Derby needs a local folder: for an output on another
    filesystem (s3a://, hdfs://) both go in the working directory, where Spark itself puts
    them, so ``spark-sql`` started there sees the tables; a cluster names its metastore."""
    site, has_hive_site = _site_settings()
    seen = {**site, **user_conf}
    settings = {} if CATALOG_KEY in seen else {CATALOG_KEY: "hive"}
    if has_hive_site or any(key in seen for key in METASTORE_KEYS):
        return settings
    parent = _local_parent(output_root)
    if parent is None:
        parent = Path.cwd()
        log.warning(
            "catalog: %s is not a local path: the table's metastore is the local Derby "
            "database %s; set spark.hadoop.hive.metastore.uris to share it",
            output_root, parent / METASTORE_FOLDER,
        )  # fmt: skip
    settings[JDO_URL_KEY] = f"jdbc:derby:;databaseName={parent / METASTORE_FOLDER};create=true"
    if WAREHOUSE_KEY not in seen:
        settings[WAREHOUSE_KEY] = (parent / WAREHOUSE_FOLDER).as_uri()
    return settings


@dataclass(frozen=True)
class _Table:
    name: str  # db.name, checked against TABLE_NAME
    schema: T.StructType
    docs: Mapping[str, str]
    partitions: tuple[str, ...]
    location: str

    @property
    def quoted(self) -> str:
        return ".".join(f"`{part}`" for part in self.name.split("."))

    def columns(self) -> list[tuple[str, str]]:
        """(name, type) as the table holds them: partition columns last, as strings."""
        kept = [(f.name, f.dataType.simpleString()) for f in self.schema.fields]
        rest = [(name, kind) for name, kind in kept if name not in self.partitions]
        return rest + [(name, "string") for name in self.partitions]


@dataclass(frozen=True)
class _Synced:
    partitions: int
    added: list[str]
    dropped: list[str]


def _literal(value: str) -> str:
    """A Spark SQL string literal (the parser reads backslash escapes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _unescape(text: str) -> str:
    """A partition folder's name part as its value: the inverse of the writer's
    ``escapePathName`` (each escaped character is ``%XX`` of its code, never UTF-8 bytes)."""
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda match: chr(int(match.group(1), 16)), text)


def _spec(folder: str) -> str:
    """``a=x/b=y%20z`` as the partition spec ``PARTITION (`a` = 'x', `b` = 'y z')``."""
    pairs = [level.split("=", 1) for level in folder.split("/")]
    inside = ", ".join(f"`{_unescape(key)}` = {_literal(_unescape(value))}" for key, value in pairs)
    return f"PARTITION ({inside})"


def _qualified(spark: SparkSession, path: str) -> str:
    """``path`` with its filesystem and an absolute path: a table's location must not
    depend on the working directory."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return str(fs.makeQualified(hadoop_path).toString()).rstrip("/")


def _create_sql(table: _Table, location: str) -> str:
    columns = ",\n  ".join(
        f"`{name}` {kind} COMMENT {_literal(_comment(table.docs.get(name, '')))}"
        for name, kind in table.columns()
    )
    partitioned = (
        f"\nPARTITIONED BY ({', '.join(f'`{p}`' for p in table.partitions)})"
        if table.partitions
        else ""
    )
    return (
        f"CREATE TABLE IF NOT EXISTS {table.quoted} (\n  {columns}\n) USING parquet"
        f"{partitioned}\nLOCATION {_literal(location)}"
    )


def _comment(doc: str) -> str:
    return doc if len(doc) <= COMMENT_LIMIT else doc[: COMMENT_LIMIT - 1] + "…"


def _location_of(spark: SparkSession, table: _Table) -> str:
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {table.quoted}").where("col_name = 'Location'")
    found = [str(row["data_type"]) for row in rows.collect()]  # one metadata row
    return _qualified(spark, found[0]) if found else ""


def _difference(key: str, found: Any, wanted: Any) -> str:
    """One way an existing table differs from this output ('' when it does not); of the
    columns, only those that differ."""
    if found == wanted:
        return ""
    if key == "columns":
        extra = [column for column in found if column not in wanted]
        missing = [column for column in wanted if column not in found]
        found, wanted = extra or found, missing or wanted
    return f"{key} {found} (this output: {wanted})"


def _ensure_table(spark: SparkSession, table: _Table) -> None:
    """Create the external table over ``table.location`` if it is missing; an existing one
    must be external, there, and partitioned and typed as this output is."""
    location = _qualified(spark, table.location)
    if not spark.catalog.tableExists(table.name):
        spark.sql(_create_sql(table, location))
        return
    existing = spark.catalog.getTable(table.name)
    columns = spark.catalog.listColumns(table.name)
    found = {
        "type": str(existing.tableType),
        "location": _location_of(spark, table),
        "partitioned by": [c.name for c in columns if c.isPartition],
        "columns": [(c.name, c.dataType) for c in columns],
    }
    wanted = {
        "type": "EXTERNAL",
        "location": location,
        "partitioned by": list(table.partitions),
        "columns": table.columns(),
    }
    differences = [_difference(key, found[key], want) for key, want in wanted.items()]
    differences = [text for text in differences if text]
    if differences:
        raise ValueError(
            f"catalog table {table.name} exists with another "
            + "; ".join(differences)
            + ": register this output under another name, or drop the table (external: "
            "dropping it keeps its files) and rerun"
        )


def _folders_on_disk(spark: SparkSession, table: _Table, scope: str | None) -> list[str]:
    """The partition folders under the table's location (relative, as written: escaped),
    or only those under ``scope`` (``load_date=D``): one listing per level, no file
    listing."""
    root = table.location.rstrip("/")
    if scope is None:
        found, levels = [""], table.partitions
    else:
        found = [scope] if hadoop_fs.exists(spark, f"{root}/{scope}") else []
        levels = table.partitions[1:]
    for column in levels:
        found = [
            f"{prefix}/{name}" if prefix else name
            for prefix in found
            for name in hadoop_fs.children(spark, f"{root}/{prefix}" if prefix else root)
            if name.startswith(f"{column}=")
        ]
    return [folder for folder in found if folder]


def _registered(spark: SparkSession, table: _Table, scope: str | None) -> list[str]:
    """The table's partitions (escaped as folder names), or only those of ``scope``."""
    within = f" {_spec(scope)}" if scope else ""
    rows = spark.sql(f"SHOW PARTITIONS {table.quoted}{within}").collect()  # names, not records
    return [str(row[0]) for row in rows]


def _batches(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), SPECS_PER_STATEMENT):
        yield items[start : start + SPECS_PER_STATEMENT]


def _sync(spark: SparkSession, table: _Table, scope: str | None) -> _Synced:
    """Make the table's partitions (within ``scope``) those on disk. Partitions on disk and
    registered are kept as they are, not dropped and added again: a reader never sees the
    load without them."""
    _ensure_table(spark, table)
    if not table.partitions:
        spark.sql(f"REFRESH TABLE {table.quoted}")
        return _Synced(0, [], [])
    on_disk = set(_folders_on_disk(spark, table, scope))
    registered = set(_registered(spark, table, scope))
    gone, new = sorted(registered - on_disk), sorted(on_disk - registered)
    for batch in _batches(gone):
        specs = ", ".join(_spec(folder) for folder in batch)
        spark.sql(f"ALTER TABLE {table.quoted} DROP IF EXISTS {specs}")
    for batch in _batches(new):
        specs = " ".join(_spec(folder) for folder in batch)
        spark.sql(f"ALTER TABLE {table.quoted} ADD IF NOT EXISTS {specs}")
    # The session's cached file listings of partitions whose folders a rerun replaced.
    spark.sql(f"REFRESH TABLE {table.quoted}")
    return _Synced(len(on_disk), new, gone)


def _require_hive(spark: SparkSession) -> None:
    implementation = spark.conf.get(CATALOG_KEY, "in-memory")
    if implementation != "hive":
        raise ValueError(
            f"a catalog table needs a Hive metastore, but this session's {CATALOG_KEY} is "
            f"{implementation!r} (jobs.io.catalog.catalog_conf gives the settings)"
        )


def _derby_folder(spark: SparkSession) -> Path | None:
    """The embedded Derby metastore's folder, when the session uses one."""
    url = spark.sparkContext.getConf().get(JDO_URL_KEY, "")
    match = re.match(r"jdbc:derby:(?:;databaseName=)?([^;]+)", url)
    return Path(match.group(1)) if match else None


def _derby_log_beside_metastore(spark: SparkSession) -> None:
    """Derby writes derby.log to the working directory unless told otherwise; read when it
    boots, at the session's first catalog call, so this is in time for the usual build."""
    folder = _derby_folder(spark)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    if folder and jvm.java.lang.System.getProperty("derby.stream.error.file") is None:
        jvm.java.lang.System.setProperty(
            "derby.stream.error.file", str(folder.parent / "derby.log")
        )


def _open_metastore(spark: SparkSession, database: str) -> None:
    """The session's first metastore call. Hive's own error for a Derby database that
    another process holds names neither Derby nor the folder: say what it most likely is."""
    try:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    except Exception as exc:
        folder = _derby_folder(spark)
        if folder is None or "SessionHiveMetaStoreClient" not in str(exc):
            raise
        raise RuntimeError(
            f"the catalog's metastore {folder} (embedded Derby) could not be opened: it "
            "admits one Spark process at a time; is another build, spark-sql or Thrift "
            f"server using it? ({(str(exc).splitlines() or [''])[0]})"
        ) from exc


def _tables(table: str, layout: OutputLayout) -> tuple[_Table, _Table]:
    data_docs = {name: doc for name, _, _, doc in OUTPUT_COLUMNS}
    reject_docs = {name: doc for name, _, doc in REJECT_COLUMNS}
    return (
        _Table(table, OUTPUT_SCHEMA, data_docs, layout.data_partitions, layout.data),
        _Table(
            table + REJECTS_SUFFIX,
            REJECT_SCHEMA,
            reject_docs,
            layout.reject_partitions,
            layout.rejects,
        ),
    )


def register(spark: SparkSession, table: str, layout: OutputLayout) -> dict[str, Any]:
    """Register the committed output as ``table`` (data/) and ``table``_rejects: create the
    database and the tables if missing, then make their partitions the folders on disk:
    for a dated load the partitions of its load_date (a rerun replaces them), for a full
    build all. Call it after the commit. A small record for the manifest."""
    if not re.match(TABLE_NAME, table):
        raise ValueError(f"catalog table {table!r}: expected db.name")
    _require_hive(spark)
    _derby_log_beside_metastore(spark)
    _open_metastore(spark, table.split(".")[0])
    data, rejects = _tables(table, layout)
    scope = layout.date_folder
    synced = [_sync(spark, part, scope) for part in (data, rejects)]
    added = synced[0].added
    shown = added[:ADDED_SHOWN] + (
        [f"... {len(added) - ADDED_SHOWN} more"] if len(added) > ADDED_SHOWN else []
    )
    return {
        "table": data.name,
        "rejects_table": rejects.name,
        "partitions": synced[0].partitions,
        "rejects_partitions": synced[1].partitions,
        "added": shown,
        "dropped": sum(len(part.dropped) for part in synced),
    }
