"""The export formats: the fields of an exported row, declared as data and built as Spark
expressions over the output's columns with built-in functions only (column, literal, struct,
array, a map literal). The rows never pass through a Python worker and the pair's text is
copied as the build wrote it, never rendered again.

The declarations are plain data so the request can be checked (format, options, ``--columns``)
before Spark starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.config import DEFAULT_TAXONOMY, ConfigError
from jobs.schema import OUTPUT_COLUMNS
from udfs.taxonomy import load_taxonomy

JSONL = "jsonl"
PARQUET = "parquet"
FILE_FORMATS = (JSONL, PARQUET)
GZIP = "gzip"
COMPRESSIONS = (GZIP,)
OUTPUT_NAMES = tuple(name for name, *_ in OUTPUT_COLUMNS)


@dataclass(frozen=True)
class Constant:
    value: str


@dataclass(frozen=True)
class Turns:
    """Chat turns, one (role, output column) each, under the format's own keys."""

    turns: tuple[tuple[str, str], ...]
    role_key: str = "role"
    content_key: str = "content"


@dataclass(frozen=True)
class AyaTaskType:
    """The Aya Collection's ``task_type`` for the row's ``task_cluster`` (see
    :func:`aya_task_types`), else the row's ``task``."""


# An output column's name, or one of the expressions above.
Source = str | Constant | Turns | AyaTaskType


@dataclass(frozen=True)
class ExportFormat:
    name: str
    fields: tuple[tuple[str, Source], ...]
    summary: str  # the fields in a sentence, for the dataset card
    parquet: bool = False  # Parquet shards allowed besides JSON Lines
    # LLaMA-Factory loads every file of a dataset's folder: each split gets its own folder
    # (data/train/...), and gzip is refused (it picks the reader by the last extension).
    llama_factory: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    @property
    def carried(self) -> frozenset[str]:
        """Output columns the format already writes under their own name: asked for with
        ``--columns`` they are written once."""
        return frozenset(name for name, source in self.fields if source == name)

    def folder(self, split: str) -> str:
        """Where a split's files go, relative to the export's root."""
        return f"data/{split}" if self.llama_factory else "data"


USER_TURN = (("user", "instruction"),)
ASSISTANT_TURN = (("assistant", "response"),)

FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "trl-messages",
            (("messages", "messages"),),
            "`messages`: the pair as chat turns `[{role: user, content}, {role: assistant, "
            "content}]` (TRL's conversational format)",
            parquet=True,
        ),
        ExportFormat(
            "trl-prompt-completion",
            (("prompt", "instruction"), ("completion", "response")),
            "`prompt` (the instruction) and `completion` (the response), strings (TRL's "
            "standard prompt-completion format)",
            parquet=True,
        ),
        ExportFormat(
            "trl-prompt-completion-chat",
            (("prompt", Turns(USER_TURN)), ("completion", Turns(ASSISTANT_TURN))),
            "`prompt`: `[{role: user, content}]` and `completion`: `[{role: assistant, "
            "content}]` (TRL's conversational prompt-completion format)",
            parquet=True,
        ),
        ExportFormat(
            "alpaca",
            (("instruction", "instruction"), ("input", Constant("")), ("output", "response")),
            "`instruction` (the whole prompt), `input` (always empty: the instruction holds "
            "the input already) and `output` (the response), LLaMA-Factory's alpaca format",
            llama_factory=True,
        ),
        ExportFormat(
            "sharegpt",
            (
                (
                    "conversations",
                    Turns((("human", "instruction"), ("gpt", "response")), "from", "value"),
                ),
            ),
            "`conversations`: `[{from: human, value}, {from: gpt, value}]`, LLaMA-Factory's "
            "sharegpt format",
            llama_factory=True,
        ),
        ExportFormat(
            "aya",
            (
                ("inputs", "instruction"),
                ("targets", "response"),
                ("template_id", "template_id"),
                ("language", "language"),
                ("script", "script"),
                ("task_type", AyaTaskType()),
                ("dataset_name", "source"),
                ("split", "split"),
                ("id", "id"),
            ),
            "the Aya Collection's columns: `inputs`, `targets`, `template_id`, `language`, "
            "`script`, `task_type` (from the task cluster), `dataset_name` (the source), "
            "`split` and `id` (ids stay strings)",
        ),
    )
}


def _column_problems(columns: tuple[str, ...]) -> list[str]:
    unknown = [name for name in columns if name not in OUTPUT_NAMES]
    if not unknown:
        return []
    return [
        f"--columns: no output column {', '.join(map(repr, unknown))}; the output's columns "
        f"are: {', '.join(OUTPUT_NAMES)}"
    ]


def _option_problems(
    chosen: ExportFormat, file_format: str, compression: str | None, shard_rows: int
) -> list[str]:
    problems = []
    if file_format not in FILE_FORMATS:
        problems.append(f"--file-format {file_format!r}: one of {', '.join(FILE_FORMATS)}")
    elif file_format == PARQUET and not chosen.parquet:
        allowed = ", ".join(name for name, f in FORMATS.items() if f.parquet)
        problems.append(f"--file-format parquet: only for {allowed}; {chosen.name} is JSON Lines")
    if compression is not None and compression not in COMPRESSIONS:
        problems.append(f"--compression {compression!r}: one of {', '.join(COMPRESSIONS)}")
    elif compression is not None and file_format != JSONL:
        problems.append("--compression: for JSON Lines only (Parquet shards are zstd inside)")
    elif compression is not None and chosen.llama_factory:
        problems.append(
            f"--compression: LLaMA-Factory cannot read {chosen.name} files ending in .gz (it "
            "picks the reader by the last extension); leave it out"
        )
    if shard_rows < 1:
        problems.append(f"--shard-rows {shard_rows}: at least 1")
    return problems


def check_request(
    fmt: str, columns: tuple[str, ...], file_format: str, compression: str | None, shard_rows: int
) -> ExportFormat:
    """The format, or a config error naming every problem of the request (before Spark)."""
    chosen = FORMATS.get(fmt)
    if chosen is None:
        raise ConfigError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    problems = _column_problems(columns)
    problems += _option_problems(chosen, file_format, compression, shard_rows)
    if problems:
        raise ConfigError("\n".join(problems))
    return chosen


@lru_cache(maxsize=4)
def aya_task_types(taxonomy_file: str = DEFAULT_TAXONOMY) -> dict[str, str]:
    """Cluster id -> Aya ``task_type``: the first Aya name the taxonomy's ``aya`` crosswalk
    maps to the cluster (``sentiment`` -> ``sentiment-analysis``), else the cluster id in
    Aya's spelling (``extractive_qa`` -> ``extractive-qa``). ``unassigned`` has none."""
    taxonomy = load_taxonomy(taxonomy_file)
    named: dict[str, str] = {}
    for name, cluster in taxonomy.crosswalks.get("aya", {}).items():
        named.setdefault(cluster, name)
    return {cluster: named.get(cluster, cluster.replace("_", "-")) for cluster in taxonomy.clusters}


def _turns(source: Turns) -> Column:
    return F.array(
        *[
            F.struct(F.lit(role).alias(source.role_key), F.col(column).alias(source.content_key))
            for role, column in source.turns
        ]
    )


def _task_type() -> Column:
    entries = sorted(aya_task_types().items())
    lookup = F.create_map(*[F.lit(value) for value in chain.from_iterable(entries)])
    return F.coalesce(F.try_element_at(lookup, F.col("task_cluster")), F.col("task"))


def field_column(source: Source) -> Column:
    if isinstance(source, str):
        return F.col(source)
    if isinstance(source, Constant):
        return F.lit(source.value)
    if isinstance(source, Turns):
        return _turns(source)
    return _task_type()


def export_columns(chosen: ExportFormat, columns: tuple[str, ...]) -> list[Column]:
    """The select of an exported row: the format's fields, then the ``--columns`` asked for
    (in their order, each once) that the format does not already write."""
    fields = [field_column(source).alias(name) for name, source in chosen.fields]
    extra = [name for name in dict.fromkeys(columns) if name not in chosen.carried]
    return fields + [F.col(name) for name in extra]
