"""JSON Lines and CSV sources.

JSON Lines are read as text and parsed per record by the renderer: that keeps each record's
own types (no schema inference pass over 500M rows, no int widened to string because one row
had a string), tells a missing key from a null, and turns a malformed line into a reject row
holding that line. Lines go to Python as bytes, so a line that is not UTF-8 is that line's
reject, not a failed batch.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config.plan import SourcePlan
from jobs.io.readers.common import FILE_PATH, check_reserved
from udfs.render_batches import CORRUPT_COLUMN, FILE_COLUMN, JSON_TEXT_COLUMN


def read_jsonl(spark: SparkSession, source: SourcePlan) -> DataFrame:
    return spark.read.text(list(source.paths)).select(
        F.col("value").cast("binary").alias(JSON_TEXT_COLUMN), F.col(FILE_PATH).alias(FILE_COLUMN)
    )


def read_csv(spark: SparkSession, source: SourcePlan) -> DataFrame:
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
    check_reserved(header, source)
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
