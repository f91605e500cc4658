"""Readers: one source's files -> a source frame (the record's own columns, or its JSON text).

JSON Lines are read as text and parsed per record by the renderer: that keeps each record's
own types (no schema inference pass over 500M rows, no int widened to string because one row
had a string), tells a missing key from a null, and turns a malformed line into a reject row
holding that line. Lines go to Python as bytes, so a line that is not UTF-8 is that line's
reject, not a failed batch.
"""

from __future__ import annotations

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config.plan import SourcePlan
from udfs.render_batches import CORRUPT_COLUMN, FILE_COLUMN, JSON_TEXT_COLUMN, READER_COLUMNS

FILE_PATH = "_metadata.file_path"


class SourceReadError(RuntimeError):
    """A source that cannot be read at all (not one bad record): names the source and the fix."""


def _check_reserved(columns: list[str], source: SourcePlan) -> None:
    clash = sorted(set(columns) & {*READER_COLUMNS, "_metadata"})
    if clash:
        raise SourceReadError(
            f"source {source.name!r} ({source.registry_file}): columns {clash} are reserved "
            "for instructmill's readers; rename them in the data"
        )


def _with_file(frame: DataFrame, source: SourcePlan) -> DataFrame:
    _check_reserved(frame.columns, source)
    columns = [F.col(f"`{name}`") for name in frame.columns]
    return frame.select(*columns, F.col(FILE_PATH).alias(FILE_COLUMN))


def _read_jsonl(spark: SparkSession, source: SourcePlan) -> DataFrame:
    return spark.read.text(list(source.paths)).select(
        F.col("value").cast("binary").alias(JSON_TEXT_COLUMN), F.col(FILE_PATH).alias(FILE_COLUMN)
    )


def _read_parquet(spark: SparkSession, source: SourcePlan) -> DataFrame:
    # Merge the files' schemas: otherwise one file's schema wins and a column that only other
    # files have silently disappears from their records.
    frame = spark.read.option("mergeSchema", "true").parquet(*source.paths)
    return _with_file(frame, source)


def _read_csv(spark: SparkSession, source: SourcePlan) -> DataFrame:
    options = {
        "header": "true",
        "sep": source.csv.delimiter,
        "quote": source.csv.quote,
        "escape": source.csv.escape,
        "multiLine": str(source.csv.multiline).lower(),
        "encoding": source.csv.encoding,
        # Each file's header must match the first file's: a glob over files with another
        # column order fails loudly instead of shifting every value into the wrong field.
        "enforceSchema": "false",
    }
    # Every field stays a string (declared `fields` types are checked per record), and a row
    # whose column count does not match the header lands in the corrupt-record column.
    header = spark.read.options(**options).csv(list(source.paths)).columns
    _check_reserved(header, source)
    schema = T.StructType(
        [T.StructField(name, T.StringType()) for name in header]
        + [T.StructField(CORRUPT_COLUMN, T.StringType())]
    )
    frame = (
        spark.read.options(**options)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
        .schema(schema)
        .csv(list(source.paths))
    )
    return frame.select(
        *[F.col(f"`{name}`") for name in frame.columns], F.col(FILE_PATH).alias(FILE_COLUMN)
    )


# The task-file keys a SuperNI record uses; the rest (examples, contributors) is not read.
_SUPERNI_SCHEMA = T.StructType(
    [
        T.StructField("Definition", T.ArrayType(T.StringType())),
        T.StructField("Categories", T.ArrayType(T.StringType())),
        T.StructField("Source", T.ArrayType(T.StringType())),
        T.StructField("Input_language", T.ArrayType(T.StringType())),
        T.StructField("Output_language", T.ArrayType(T.StringType())),
        T.StructField(
            "Instances",
            T.ArrayType(
                T.StructType(
                    [
                        T.StructField("id", T.StringType()),
                        T.StructField("input", T.StringType()),
                        T.StructField("output", T.ArrayType(T.StringType())),
                    ]
                )
            ),
        ),
        T.StructField(CORRUPT_COLUMN, T.StringType()),
    ]
)


def _read_superni(spark: SparkSession, source: SourcePlan) -> DataFrame:
    """Super-NaturalInstructions task files: one record per instance, with the task's
    fields: ``task_name`` (the file name), ``definition``, ``categories``,
    ``source_datasets``, ``input_language``, ``output_language``, and the instance's ``id``,
    ``input`` and ``output`` (a list). A file that does not parse is one reject row holding
    its text; a file without ``Instances`` one ``missing_field`` reject."""
    tasks = (
        spark.read.schema(_SUPERNI_SCHEMA)
        .option("multiLine", "true")
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
        .json(list(source.paths))
        .select("*", F.col(FILE_PATH).alias(FILE_COLUMN))
    )
    unreadable = F.col(CORRUPT_COLUMN).isNotNull() | F.col("Instances").isNull()
    # One null instance keeps an unreadable file in the count as one (rejected) record.
    instances = F.when(unreadable, F.array(F.lit(None))).otherwise(F.col("Instances"))
    return tasks.select(
        F.regexp_extract(F.col(FILE_COLUMN), r"([^/]+?)(\.json)?$", 1).alias("task_name"),
        F.array_join("Definition", "\n").alias("definition"),
        F.col("Categories").alias("categories"),
        F.col("Source").alias("source_datasets"),
        F.col("Input_language").alias("input_language"),
        F.col("Output_language").alias("output_language"),
        F.explode(instances).alias("_instance"),
        CORRUPT_COLUMN,
        FILE_COLUMN,
    ).select(
        "task_name",
        "definition",
        "categories",
        "source_datasets",
        "input_language",
        "output_language",
        F.col("_instance.id").alias("id"),
        F.col("_instance.input").alias("input"),
        F.col("_instance.output").alias("output"),
        CORRUPT_COLUMN,
        FILE_COLUMN,
    )


_READERS = {
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
    "csv": _read_csv,
    "superni": _read_superni,
}


def read_source(spark: SparkSession, source: SourcePlan) -> DataFrame:
    try:
        return _READERS[source.format](spark, source)
    except AnalysisException as exc:
        first_line = (str(exc).splitlines() or [""])[0]
        raise SourceReadError(
            f"source {source.name!r} ({source.registry_file}): cannot read "
            f"{source.format} from {list(source.paths)[:3]}: {first_line}"
        ) from exc
