"""The mixture stages over a build output: split, per-value caps, cells, sampling. The planning
between them (group weights, language temperature, a total) is pure: ``udfs.mixture_plan``.

1. **Split.** Only rows whose ``split`` equals the config's ``split`` are kept (``None``: all).
   A row with a null ``split`` (an output written before the column existed) is never in a
   ``train`` or ``heldout`` mixture: it counts as ``other_split``.
2. **Caps.** For each value v of ``caps.by`` the cap is ``caps.values.get(v, caps.default)``
   (None: no cap). A capped value keeps exactly ``min(n_v, cap)`` rows: those with the smallest
   ``(xxhash64(seed, "cap", id), id, instruction, response)``, ranked by ``row_number()`` over a
   window partitioned by the value. Only rows of capped values go through the window; the rest
   is unioned back unsorted. The filter is ``rank <= max_cap AND rank <= cap``: the literal
   ``max_cap`` is what lets Spark's optimizer infer a ``WindowGroupLimit`` (a partial top-k in
   each input partition before the shuffle, so a 10M-row task ships at most ``max_cap`` rows per
   partition), the per-row ``cap`` makes it exact. Spark only infers the limit up to
   ``spark.sql.optimizer.windowGroupLimitThreshold`` (1000 by default), so the job raises that
   setting to the largest cap for its own run (``group_limit_threshold`` in the mix command).
3. **Planning**: ``udfs.mixture_plan`` turns one count per (group, language) cell after caps
   into a sampling probability per cell.
4. **Sampling.** A row is kept iff ``u < p_c``, where ``u`` is the top 53 bits of
   ``xxhash64(seed, "sample", id)`` (taken unsigned) divided by 2**53: uniform in [0, 1),
   exactly representable as a double (a 63-bit value divided by 2**63 can round to 1.0), and
   independent of the cap hash (a different salt), so capping does not bias sampling. The
   probabilities reach the rows through a broadcast join with a small (group, language, p)
   frame. Achieved counts are binomial around the targets (variance ``t_c (1 - p_c)``), so
   shares are met to within a few ``sqrt(t)/T``, not exactly.

Null values of the cap, group or language column are a value of their own, :data:`NULL_VALUE`
(name it in ``caps.values`` or ``groups.weights`` to address it). Everything is a function of
ids, content and the seed: the same input and config give the same rows whatever the
partitioning or the number of input files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from jobs.config import MixtureCaps, MixtureConfig
from udfs.mixture_plan import Cell

NULL_VALUE = "__null__"
DEFAULT_LANGUAGE_COLUMN = "language"

GROUP = "_mix_group"
LANGUAGE = "_mix_language"
PROBABILITY = "_mix_p"
KEEP = "_mix_keep"
_CAP_KEY = "_mix_cap_key"
_CAP = "_mix_cap"
_RANK = "_mix_rank"
_U_BITS = 53


def language_column(config: MixtureConfig) -> str:
    return config.languages.column if config.languages else DEFAULT_LANGUAGE_COLUMN


def language_alpha(config: MixtureConfig) -> float:
    return config.languages.alpha if config.languages else 1.0


def value_of(column: str) -> Column:
    """The column as a grouping value: a string, null as :data:`NULL_VALUE`."""
    return F.coalesce(F.col(column).cast("string"), F.lit(NULL_VALUE))


def in_split(split: str | None) -> Column:
    return F.lit(True) if split is None else F.coalesce(F.col("split") == split, F.lit(False))


def split_stage(split: str | None) -> Callable[[DataFrame], DataFrame]:
    def stage(frame: DataFrame) -> DataFrame:
        return frame if split is None else frame.where(in_split(split))

    return stage


def has_caps(caps: MixtureCaps | None) -> bool:
    return caps is not None and (caps.default is not None or bool(caps.values))


def largest_cap(caps: MixtureCaps) -> int:
    return max([*caps.values.values(), *([caps.default] if caps.default is not None else [])])


def _cap_values(spark: SparkSession, caps: MixtureCaps) -> DataFrame:
    schema = T.StructType(
        [T.StructField(_CAP_KEY, T.StringType(), False), T.StructField(_CAP, T.LongType(), False)]
    )
    return spark.createDataFrame(sorted(caps.values.items()), schema)


def cap_order(seed: int) -> list[Column]:
    """A total order inside a capped value that depends on ids and content, never on layout."""
    return [
        F.xxhash64(F.lit(seed), F.lit("cap"), F.col("id")),
        F.col("id"),
        F.col("instruction"),
        F.col("response"),
    ]


def cap_stage(caps: MixtureCaps | None, seed: int) -> Callable[[DataFrame], DataFrame]:
    """At most ``cap`` rows per value of ``caps.by``, exactly ``min(n_v, cap)``."""

    def stage(frame: DataFrame) -> DataFrame:
        if caps is None or not has_caps(caps):
            return frame
        columns = frame.columns
        keyed = frame.select("*", value_of(caps.by).alias(_CAP_KEY))
        cap = F.col(_CAP)
        if caps.values:
            keyed = keyed.join(F.broadcast(_cap_values(frame.sparkSession, caps)), _CAP_KEY, "left")
        else:
            cap = F.lit(None).cast("long")
        if caps.default is not None:
            cap = F.coalesce(cap, F.lit(caps.default).cast("long"))
        keyed = keyed.select(*columns, _CAP_KEY, cap.alias(_CAP))
        ranked = keyed.where(F.col(_CAP).isNotNull()).select(
            "*",
            F.row_number()
            .over(Window.partitionBy(_CAP_KEY).orderBy(*cap_order(seed)))
            .alias(_RANK),
        )
        kept = ranked.where(
            (F.col(_RANK) <= F.lit(largest_cap(caps))) & (F.col(_RANK) <= F.col(_CAP))
        ).select(*columns)
        uncapped = keyed.where(F.col(_CAP).isNull()).select(*columns)
        return kept.unionByName(uncapped)

    return stage


def cell_stage(group_by: str, language_by: str) -> Callable[[DataFrame], DataFrame]:
    """The (group, language) cell of every row, as grouping values."""

    def stage(frame: DataFrame) -> DataFrame:
        return frame.select(
            "*", value_of(group_by).alias(GROUP), value_of(language_by).alias(LANGUAGE)
        )

    return stage


def sample_uniform(seed: int) -> Column:
    """Uniform in [0, 1): the top 53 bits of an id hash over 2**53 (exact in a double)."""
    bits = F.shiftrightunsigned(F.xxhash64(F.lit(seed), F.lit("sample"), F.col("id")), 64 - _U_BITS)
    return bits.cast("double") / F.lit(float(2**_U_BITS))


def probability_frame(spark: SparkSession, probabilities: Mapping[Cell, float]) -> DataFrame:
    """One row per cell: small (groups x languages), so it is broadcast to the rows."""
    schema = T.StructType(
        [
            T.StructField(GROUP, T.StringType(), False),
            T.StructField(LANGUAGE, T.StringType(), False),
            T.StructField(PROBABILITY, T.DoubleType(), False),
        ]
    )
    rows = [(group, language, float(p)) for (group, language), p in sorted(probabilities.items())]
    return spark.createDataFrame(rows, schema)


def sample_stage(probabilities: DataFrame, seed: int) -> Callable[[DataFrame], DataFrame]:
    """Marks each row of a celled frame ``_mix_keep``; a cell without a probability keeps none."""

    def stage(frame: DataFrame) -> DataFrame:
        joined = frame.join(F.broadcast(probabilities), [GROUP, LANGUAGE], "left")
        p = F.coalesce(F.col(PROBABILITY), F.lit(0.0))
        return joined.select(*frame.columns, (sample_uniform(seed) < p).alias(KEEP))

    return stage


def sampled_rows(frame: DataFrame) -> DataFrame:
    return frame.where(F.col(KEEP))
