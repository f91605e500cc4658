"""Super-NaturalInstructions task files: one record per instance."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.config.plan import SourcePlan
from jobs.io.readers.common import FILE_PATH
from udfs.render_batches import CORRUPT_COLUMN, FILE_COLUMN

# The task-file keys a SuperNI record uses; the rest (contributors, URLs) is not read.
_SUPERNI_SCHEMA = T.StructType(
    [
        T.StructField("Definition", T.ArrayType(T.StringType())),
        T.StructField("Categories", T.ArrayType(T.StringType())),
        T.StructField("Source", T.ArrayType(T.StringType())),
        T.StructField("Input_language", T.ArrayType(T.StringType())),
        T.StructField("Output_language", T.ArrayType(T.StringType())),
        # As JSON text, parsed per record: a malformed example list must not make the whole
        # task file unreadable (the record falls back to an encoding without examples).
        T.StructField("Positive Examples", T.StringType()),
        T.StructField("Negative Examples", T.StringType()),
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


def read_superni(spark: SparkSession, source: SourcePlan) -> DataFrame:
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
        F.col("`Positive Examples`").alias("positive_examples"),
        F.col("`Negative Examples`").alias("negative_examples"),
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
        "positive_examples",
        "negative_examples",
        F.col("_instance.id").alias("id"),
        F.col("_instance.input").alias("input"),
        F.col("_instance.output").alias("output"),
        CORRUPT_COLUMN,
        FILE_COLUMN,
    )
