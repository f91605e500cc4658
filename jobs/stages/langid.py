"""The language-ID stage: rendered rows -> the same rows with language columns.

An Arrow UDF sends only the texts and declared languages to Python and brings back a small
struct; everything else stays in the JVM, and the output columns, ``language`` and the drop
into rejects are built-in expressions. The model file reaches executors through Spark
(``addFile`` / ``SparkFiles``), never through a path that only exists on the driver.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from pyspark import Accumulator, SparkFiles
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_type

from jobs.schema import reject_where
from jobs.task_clock import spent
from udfs.langid import LANGID_RESULT, LANGID_STAGE, LangIdSettings, detect_arrays, identifier
from udfs.language_codes import UNDETERMINED

RESULT_TYPE = from_arrow_type(LANGID_RESULT)
OUTPUT_FIELDS = (
    "instruction_lang",
    "instruction_lang_score",
    "response_lang",
    "response_lang_score",
    "script",
    "lang_mismatch",
    "detected_language",
    "detected_language_score",
)
_RESULT = "_langid"


def ship_model(spark: SparkSession, model_path: str, settings: LangIdSettings) -> None:
    """Send the model file to every executor under ``settings.model_file`` (a name with the
    content hash in it; shipping the same model twice in one session is a no-op)."""
    if any(shipped.endswith("/" + settings.model_file) for shipped in spark.sparkContext.listFiles):
        return
    folder = Path(tempfile.mkdtemp(prefix="instructmill-model-"))
    named = folder / settings.model_file
    try:
        os.link(model_path, named)  # Spark copies symlinks as links; a hard link is a file
    except OSError:
        shutil.copyfile(model_path, named)
    spark.sparkContext.addFile(str(named))


def _detector(settings: LangIdSettings, meter: Accumulator | None) -> Callable[..., Column]:
    def detect(
        instruction: pa.Array,
        response: pa.Array,
        content: pa.Array,
        target_content: pa.Array,
        language: pa.Array,
        target_language: pa.Array,
    ) -> pa.Array:
        with spent(meter):
            found = identifier(SparkFiles.get(settings.model_file))
            return detect_arrays(
                found, settings, instruction, response, content, target_content, language,
                target_language,
            )  # fmt: skip

    # Non-deterministic only so the optimizer never evaluates it once per field it feeds.
    return F.arrow_udf(detect, RESULT_TYPE).asNondeterministic()  # type: ignore[no-any-return]


def langid_stage(
    settings: LangIdSettings, meter: Accumulator | None = None
) -> Callable[[DataFrame], DataFrame]:
    """``frame.transform(langid_stage(settings))`` on rendered rows (after ``ship_model``);
    ``meter`` sums the executor seconds spent identifying (``jobs.task_clock``)."""
    detect = _detector(settings, meter)

    def stage(frame: DataFrame) -> DataFrame:
        inputs = ["instruction", "response", "content", "target_content", "language",
                  "target_language"]  # fmt: skip
        result = frame.withColumn(_RESULT, detect(*[F.col(name) for name in inputs]))
        declared = F.when(F.col("language") != UNDETERMINED, F.col("language"))
        language = F.coalesce(declared, F.col(f"{_RESULT}.inferred_language"), F.lit(UNDETERMINED))
        labelled = result.select(
            *[language.alias(name) if name == "language" else F.col(name)
              for name in frame.columns],
            *[F.col(f"{_RESULT}.{name}").alias(name) for name in OUTPUT_FIELDS],
            F.col(f"{_RESULT}.drop_reason").alias("_drop_reason"),
            F.col(f"{_RESULT}.drop_detail").alias("_drop_detail"),
        )  # fmt: skip
        return reject_where(
            labelled,
            F.col("_drop_reason").isNotNull(),
            LANGID_STAGE,
            F.col("_drop_reason"),
            F.col("_drop_detail"),
        ).drop("_drop_reason", "_drop_detail")

    return stage


def without_langid(frame: DataFrame) -> DataFrame:
    """The same columns as the stage adds, all null: for `langid: {enabled: false}`."""
    types = {field.name: field.dataType for field in RESULT_TYPE.fields}
    return frame.select("*", *[F.lit(None).cast(types[name]).alias(name) for name in OUTPUT_FIELDS])
