"""CoNLL-U treebanks: one record per sentence (see :mod:`udfs.conllu_sentences`)."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from jobs.config.plan import SourcePlan
from jobs.io.readers.common import FILE_PATH
from udfs.conllu_sentences import SENTENCE_SCHEMA, sentence_batches

_SCHEMA = from_arrow_schema(SENTENCE_SCHEMA)


def read_conllu(spark: SparkSession, source: SourcePlan) -> DataFrame:
    """Each file is read whole (a sentence never spans two rows of a split, and line numbers
    count from the file's start; Spark's text source also decompresses ``.gz`` and ``.bz2``)
    and cut into sentences on the executors. Columns: ``sent_id``, ``text``, ``tokens``,
    ``lemmas``, ``upos``, ``xpos``, ``feats``, ``heads``, ``deprels``, ``multiword_tokens``,
    ``comments`` (map), ``line``; a malformed sentence is a row with ``_im_corrupt`` (its
    lines), ``_im_corrupt_reason`` (``malformed_sentence``) and ``_im_corrupt_detail`` (the
    file line and what is wrong there). One file must fit in a Python worker's memory (and
    under Spark's 2 GB limit for one value)."""
    files = spark.read.text(list(source.paths), wholetext=True).select(
        F.col(FILE_PATH).alias("path"), F.col("value").alias("text")
    )
    return files.mapInArrow(sentence_batches, _SCHEMA)
