"""The output contract: the canonical record's columns, their types and docs, and the reject row.

``select`` with these lists is the schema contract at every stage boundary: a column that is not
listed here does not reach disk, and a missing one fails the plan, not the data.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

# A source record: every row rendered from it shares this key, and dedup decides per record.
RECORD_KEY = ("source", "source_key")

# Nullability is documented, not cast: Spark cannot cast a nullable column to a non-null type.
MESSAGE = T.StructType(
    [T.StructField("role", T.StringType()), T.StructField("content", T.StringType())]
)

# (name, type, nullable, doc).
OUTPUT_COLUMNS: tuple[tuple[str, T.DataType, bool, str], ...] = (
    ("id", T.StringType(), False, "hash of (source, source_key, template_id): stable across runs"),
    ("source", T.StringType(), False, "dataset name from the registry"),
    (
        "source_key",
        T.StringType(),
        False,
        "the record's id_field value, or 'sha:' + a hash of the record's own content",
    ),
    ("task", T.StringType(), False, "task name from the registry"),
    (
        "task_cluster",
        T.StringType(),
        False,
        "cluster from conf/task_clusters.yaml (registry, else the task or the record's "
        "categories through a crosswalk), else 'unassigned'",
    ),
    (
        "split",
        T.StringType(),
        False,
        "'heldout' for rows of the conf's heldout_clusters, else 'train'",
    ),
    (
        "template_id",
        T.StringType(),
        False,
        "promptsource template UUID, or the .jinja path under templates/ without suffix",
    ),
    ("template_hash", T.StringType(), False, "hash of the template text and answer_choices"),
    (
        "template_format",
        T.StringType(),
        False,
        "FLAN format (zsopt, zsnoopt, fsopt, fsnoopt: zero-/few-shot, with/without the "
        "options listed) or, for a SuperNI source with demonstrations, its encoding",
    ),
    ("instruction", T.StringType(), False, "rendered input (promptsource's part before |||)"),
    ("response", T.StringType(), False, "rendered target (promptsource's part after |||)"),
    ("messages", T.ArrayType(MESSAGE), False, "the pair as chat turns: user, assistant"),
    (
        "language",
        T.StringType(),
        False,
        "declared language (registry or record field), else detected from the content, else 'und'",
    ),
    ("instruction_lang", T.StringType(), True, "fastText language of the instruction (ISO 639)"),
    ("instruction_lang_score", T.DoubleType(), True, "its probability; null when not judged"),
    ("response_lang", T.StringType(), True, "fastText language of the response ('und': too short)"),
    ("response_lang_score", T.DoubleType(), True, "its probability; null when not judged"),
    (
        "script",
        T.StringType(),
        True,
        "ISO 15924 script of the record's content (Latn, Cyrl, Jpan...)",
    ),
    (
        "lang_mismatch",
        T.BooleanType(),
        True,
        "content (for translation also the response) is confidently not the declared language",
    ),
    (
        "dedup_text",
        T.StringType(),
        True,
        "the record's own text that dedup compares: the values its templates insert "
        "(or the source's dedup_fields), fields separated by U+001E; lets `instructmill "
        "dedup` and `decontaminate` rerun on this output",
    ),
    (
        "content_hash",
        T.StringType(),
        True,
        "BLAKE2b-128 of the record's normalised content (NFKC, case-folded, spaces collapsed)",
    ),
    (
        "dup_cluster",
        T.StringType(),
        True,
        "smallest record id of the record's duplicate cluster (its own when it has none)",
    ),
    (
        "is_duplicate",
        T.BooleanType(),
        True,
        "not its cluster's representative (false on every row in data/)",
    ),
    ("license", T.StringType(), False, "license from the registry"),
    ("load_date", T.DateType(), False, "--run-date, else the run's UTC start date"),
    ("run_id", T.StringType(), False, "the run that wrote the row"),
)
OUTPUT_SCHEMA = T.StructType(
    [T.StructField(n, t, nullable) for n, t, nullable, _ in OUTPUT_COLUMNS]
)

REJECT_COLUMNS: tuple[tuple[str, T.DataType, str], ...] = (
    ("source", T.StringType(), "dataset name"),
    ("source_key", T.StringType(), "the record's key ('raw:' + hash of the line when unparseable)"),
    ("id", T.StringType(), "the id the row would have had"),
    ("template_id", T.StringType(), "template the record was to be rendered with"),
    ("stage", T.StringType(), "stage that rejected the row"),
    ("reason", T.StringType(), "stable reason code, e.g. malformed_json, missing_field"),
    ("detail", T.StringType(), "human-readable explanation"),
    ("record", T.StringType(), "the source row as JSON text (the raw line for JSON Lines)"),
    ("source_file", T.StringType(), "file the row came from"),
    ("load_date", T.DateType(), "as for data rows"),
    ("run_id", T.StringType(), "the run that rejected the row"),
)
REJECT_SCHEMA = T.StructType([T.StructField(n, t, True) for n, t, _ in REJECT_COLUMNS])


def messages_column(instruction: str = "instruction", response: str = "response") -> Column:
    return F.array(
        F.struct(F.lit("user").alias("role"), F.col(instruction).alias("content")),
        F.struct(F.lit("assistant").alias("role"), F.col(response).alias("content")),
    )


def is_accepted() -> Column:
    """A row no stage rejected (it has no reject reason): it is written to data/ unless it
    is a duplicate."""
    return F.col("reason").isNull()


def accepted_rows(frame: DataFrame) -> DataFrame:
    return frame.where(is_accepted()).select("*", messages_column().alias("messages"))


def rejected_rows(frame: DataFrame) -> DataFrame:
    return frame.where(~is_accepted())


def unique_rows(frame: DataFrame) -> DataFrame:
    """Accepted rows that are their duplicate cluster's representative (or in none)."""
    return frame.where(~F.col("is_duplicate"))


def duplicate_rows(frame: DataFrame) -> DataFrame:
    return frame.where(F.col("is_duplicate"))


def select_output(frame: DataFrame) -> DataFrame:
    return frame.select(*[F.col(name).cast(kind).alias(name) for name, kind, *_ in OUTPUT_COLUMNS])


def select_rejects(frame: DataFrame) -> DataFrame:
    return frame.select(*[F.col(name).cast(kind).alias(name) for name, kind, _ in REJECT_COLUMNS])


def reject_where(
    frame: DataFrame, flag: Column, stage: str, reason: Column, detail: Column
) -> DataFrame:
    """Turn accepted rows where ``flag`` holds into rejects of a stage after rendering. Their
    ``record`` is the rendered pair: the source row is not carried past the render stage."""
    hit = is_accepted() & F.coalesce(flag, F.lit(False))
    replaced = {
        "reason": F.when(hit, reason).otherwise(F.col("reason")),
        "detail": F.when(hit, detail).otherwise(F.col("detail")),
        "stage": F.when(hit, F.lit(stage)).otherwise(F.col("stage")),
        "record": F.when(
            hit, F.to_json(F.struct("source_key", "instruction", "response"))
        ).otherwise(F.col("record")),
    }
    return frame.select(
        *[replaced[name].alias(name) if name in replaced else F.col(name) for name in frame.columns]
    )
