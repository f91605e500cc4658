"""Small file operations through Hadoop's FileSystem, so the same code writes the manifest and
cleans partitions on local disk, HDFS, S3 or GCS: whatever the output URI names."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession


def _fs(spark: SparkSession, path: str, is_uri: bool = False) -> tuple[Any, Any]:
    """``is_uri``: ``path`` is already a percent-encoded URI (as Spark's ``_metadata.file_path``
    gives), so it must not be encoded again (``language=a b`` is ``language=a%20b`` there)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    if is_uri:
        hadoop_path = jvm.org.apache.hadoop.fs.Path(jvm.java.net.URI(path))
    else:
        hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def exists(spark: SparkSession, path: str) -> bool:
    fs, hadoop_path = _fs(spark, path)
    return bool(fs.exists(hadoop_path))


def write_text(spark: SparkSession, path: str, text: str) -> None:
    fs, hadoop_path = _fs(spark, path)
    stream = fs.create(hadoop_path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def read_text(spark: SparkSession, path: str) -> str:
    fs, hadoop_path = _fs(spark, path)
    stream = fs.open(hadoop_path)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    try:
        data = jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
    finally:
        stream.close()
    return bytes(data).decode("utf-8")


def delete_and_prune(spark: SparkSession, uri: str, stop_at: str) -> None:
    """Delete the folder at ``uri`` and then each parent left empty, up to (not including)
    ``stop_at``. Raises if the folder is not deleted."""
    fs, hadoop_path = _fs(spark, uri, is_uri=True)
    if not fs.delete(hadoop_path, True):
        raise OSError(f"could not delete {uri}")
    stop = fs.makeQualified(_fs(spark, stop_at)[1]).toString().rstrip("/")
    parent = hadoop_path.getParent()
    while parent is not None and fs.makeQualified(parent).toString().rstrip("/") != stop:
        if not fs.exists(parent) or len(fs.listStatus(parent)) > 0:
            break
        fs.delete(parent, False)
        parent = parent.getParent()


def delete(spark: SparkSession, path: str) -> None:
    """Delete ``path`` (a folder with everything in it); nothing when it does not exist."""
    fs, hadoop_path = _fs(spark, path)
    if fs.exists(hadoop_path) and not fs.delete(hadoop_path, True):
        raise OSError(f"could not delete {path}")


def delete_if_empty(spark: SparkSession, path: str) -> None:
    fs, hadoop_path = _fs(spark, path)
    if fs.exists(hadoop_path) and len(fs.listStatus(hadoop_path)) == 0:
        fs.delete(hadoop_path, False)


def rename(spark: SparkSession, source: str, target: str) -> None:
    """Move ``source`` (a file or folder) to ``target``, which must not exist; its parent is
    made first. One rename: atomic on local disk and HDFS."""
    fs, source_path = _fs(spark, source)
    target_path = _fs(spark, target)[1]
    fs.mkdirs(target_path.getParent())
    if not fs.rename(source_path, target_path):
        raise OSError(f"could not move {source} to {target}")


def replace_text(spark: SparkSession, path: str, text: str) -> None:
    """Write ``path`` so a reader sees the old text or the new, never a part: written beside
    it, then renamed over it (FileContext's rename with OVERWRITE)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    temporary = f"{path}.{jvm.java.util.UUID.randomUUID().toString()}.tmp"
    write_text(spark, temporary, text)
    target = jvm.org.apache.hadoop.fs.Path(path)
    context = jvm.org.apache.hadoop.fs.FileContext.getFileContext(
        target.toUri(), spark.sparkContext._jsc.hadoopConfiguration()
    )
    options = spark.sparkContext._gateway.new_array(jvm.org.apache.hadoop.fs.Options.Rename, 1)
    options[0] = jvm.org.apache.hadoop.fs.Options.Rename.OVERWRITE
    context.rename(jvm.org.apache.hadoop.fs.Path(temporary), target, options)


def children(spark: SparkSession, path: str) -> list[str]:
    """The names in folder ``path`` ([] when it does not exist)."""
    fs, hadoop_path = _fs(spark, path)
    if not fs.exists(hadoop_path):
        return []
    return sorted(str(status.getPath().getName()) for status in fs.listStatus(hadoop_path))


def files_under(spark: SparkSession, path: str) -> list[str]:
    """Every data file under folder ``path``, relative to it (Spark's own ``_SUCCESS`` and
    hidden files left out); [] when it does not exist. Names, not records: a run writes a
    few files per partition."""
    fs, hadoop_path = _fs(spark, path)
    if not fs.exists(hadoop_path):
        return []
    root = fs.makeQualified(hadoop_path).toUri().getPath().rstrip("/")
    found = []
    listing = fs.listFiles(hadoop_path, True)
    while listing.hasNext():
        relative = str(listing.next().getPath().toUri().getPath())[len(root) + 1 :]
        if not relative.rsplit("/", 1)[-1].startswith(("_", ".")):
            found.append(relative)
    return sorted(found)
