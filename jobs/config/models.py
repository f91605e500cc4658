"""The config schemas: the pipeline file, a dataset registry, and their language-ID and dedup
sections. Strict models (no coercion, no unknown key), so a config is what it says."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from jobs.config.source_options import (
    FLAN_FORMATS,
    FewShotOptions,
    SuperniOptions,
    TemplateRef,
)
from jobs.config.strict import Strict
from jobs.layout import DEFAULT_PARTITION_BY
from udfs.language_codes import UnknownLanguageLabel, declared_code, iso_code
from udfs.records import FIELD_TYPES
from udfs.render_batches import READER_COLUMNS

PARTITION_COLUMNS = ("language", "task_cluster", "split", "task", "source", "license")
# db.name: both parts plain identifiers, so they need no quoting rules beyond backticks.
TABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$"
COMPRESSIONS = Literal["zstd", "snappy", "gzip", "lz4", "none"]


class CsvOptions(Strict):
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote: str = Field(default='"', min_length=1, max_length=1)
    # RFC 4180 escapes a quote by doubling it; Spark's own default is a backslash.
    escape: str = Field(default='"', min_length=1, max_length=1)
    # Quoted fields may hold newlines (review texts do); false lets Spark split one large file
    # across tasks, for files known to have none.
    multiline: bool = True
    encoding: str = "UTF-8"


class DatasetRegistry(Strict):
    """One source: where its records are, what they are, and which templates render them."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$")
    description: str | None = None
    path: str | list[str]
    # superni: Super-NaturalInstructions task files, one record per instance (jobs.io.readers).
    # hf: a Hugging Face datasets folder (save_to_disk, or the Hub's Parquet layout);
    # conllu: CoNLL-U treebank files, one record per sentence.
    format: Literal["jsonl", "parquet", "csv", "superni", "hf", "conllu"]
    # format hf: the split of a DatasetDict or of a Parquet layout.
    split: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    id_field: str | None = None
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}([_-][a-z0-9]{2,8})*$")
    language_field: str | None = None
    # Translation: the response's language, compared with the response on its own.
    target_language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}([_-][a-z0-9]{2,8})*$")
    target_language_field: str | None = None
    target_fields: list[str] = Field(default_factory=list, validate_default=True)
    # The task of every record, or of those whose task_field is empty.
    task: str | None = Field(default=None, min_length=1)
    # A pooled source: each record names its own task. Validated even when left out, so a
    # registry with neither task nor task_field fails.
    task_field: str | None = Field(default=None, validate_default=True)
    # Wins over every lookup: a cluster id from the taxonomy.
    task_cluster: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_]*$")
    # The record's own category names (SuperNI Categories, Aya task_type), tried before the
    # task name; both go through `crosswalk` (default: the names all crosswalks agree on).
    categories_field: str | None = None
    crosswalk: str | None = None
    # The datasets the records derive from (default: the source itself); a train row whose
    # origin also feeds a held-out cluster is removed.
    origin: list[str] = Field(default_factory=list)
    origin_field: str | None = None
    license: str = Field(min_length=1)
    templates: list[str | TemplateRef] = Field(min_length=1)
    # Variants written by `instructmill templates` (variants/templates.yaml beside a template
    # file) join the source's templates once reviewed; `allow` also takes the unreviewed ones.
    template_variants: bool = True
    unreviewed_templates: Literal["skip", "allow"] = "skip"
    rename: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, Literal[FIELD_TYPES]] = Field(default_factory=dict)  # type: ignore[valid-type]
    allow_empty: bool = False  # render null/blank fields as they are instead of rejecting
    csv: CsvOptions | None = None
    # The fields whose text dedup compares; default: every field the templates insert.
    dedup_fields: list[str] = Field(default_factory=list)
    superni: SuperniOptions | None = None
    formats: list[Literal[FLAN_FORMATS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["zsnoopt"], min_length=1
    )
    few_shot: FewShotOptions = Field(default_factory=FewShotOptions)
    # Translation: also write every pair the other way round (source and target swapped).
    invert: bool = False
    # With invert: the source-language fields, paired in order with target_fields
    # (default: the one other field the templates insert).
    source_fields: list[str] = Field(default_factory=list)

    @field_validator("language", "target_language")
    @classmethod
    def _iso_language(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                declared_code(value)
            except UnknownLanguageLabel as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("language_field")
    @classmethod
    def _one_language_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("language") is not None:
            raise ValueError("give either 'language' (one code) or 'language_field', not both")
        return value

    @field_validator("target_language_field")
    @classmethod
    def _one_target_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("target_language") is not None:
            raise ValueError("give either 'target_language' or 'target_language_field', not both")
        return value

    @field_validator("target_fields")
    @classmethod
    def _target_fields_with_target(cls, value: list[str], info: ValidationInfo) -> list[str]:
        has_target = info.data.get("target_language") or info.data.get("target_language_field")
        if bool(value) != bool(has_target):
            raise ValueError(
                "a translation names both its target language (target_language or "
                "target_language_field) and the fields holding target-language text"
            )
        return value

    @field_validator("task_field")
    @classmethod
    def _some_task(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("task") is None:
            raise ValueError("give 'task' (the source's task) or 'task_field' (each record's)")
        return value

    @field_validator("csv")
    @classmethod
    def _csv_only_for_csv(cls, value: CsvOptions | None, info: ValidationInfo) -> CsvOptions | None:
        if value is not None and info.data.get("format") != "csv":
            raise ValueError("'csv' options apply only to format: csv")
        return value

    @field_validator("split")
    @classmethod
    def _split_only_for_hf(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("format") != "hf":
            raise ValueError("'split' applies only to format: hf")
        return value

    @model_validator(mode="after")
    def _options_fit_format(self) -> DatasetRegistry:
        if self.superni is not None and self.format != "superni":
            raise ValueError("'superni' options apply only to format: superni")
        if len(set(self.formats)) != len(self.formats):
            raise ValueError("formats: a format is listed twice")
        if self.invert and not self.target_fields:
            raise ValueError("invert: true needs a translation (target_fields and its language)")
        if self.source_fields and len(self.source_fields) != len(self.target_fields):
            raise ValueError("source_fields pairs one field with each of target_fields")
        return self

    @field_validator("rename")
    @classmethod
    def _rename_targets_unique(cls, value: dict[str, str]) -> dict[str, str]:
        targets = list(value.values())
        if len(set(targets)) != len(targets):
            raise ValueError("two fields are renamed to the same name")
        reserved = set(value) | set(targets)
        clash = reserved & set(READER_COLUMNS)
        if clash:
            raise ValueError(f"{sorted(clash)} are reserved column names")
        return value


class LangIdConfig(Strict):
    enabled: bool = True
    # A fastText LID model file; default: models/lid.176.ftz, put there by `make models`.
    model: str | None = None
    min_letters: int = Field(default=20, ge=0)
    min_score: float = Field(default=0.5, ge=0, le=1)
    thresholds: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    action: Literal["label", "drop"] = "label"

    @field_validator("thresholds")
    @classmethod
    def _codes(cls, value: dict[str, float]) -> dict[str, float]:
        seen: dict[str, str] = {}
        for code in value:
            try:
                mapped = iso_code(code)
            except UnknownLanguageLabel as exc:
                raise ValueError(str(exc)) from None
            if mapped in seen:
                raise ValueError(f"{seen[mapped]!r} and {code!r} are the same language")
            seen[mapped] = code
        return value


class DedupConfig(Strict):
    enabled: bool = True
    exact: bool = True  # exact duplicates of the normalised content, before MinHash
    near: bool = True  # MinHash LSH near-duplicates
    threshold: float = Field(default=0.7, gt=0, le=1)
    # 256, not 128: edges are verified by the Jaccard estimated from the signatures, whose
    # error (about 0.03 at 256, 0.04 at 128) decides pairs near the threshold.
    num_perm: int = Field(default=256, ge=16, le=1024)
    # Weights of datasketch's optimal-parameter search. Candidates are verified against the
    # threshold before clustering, so a false positive costs one check and a false negative
    # a missed duplicate: the default leans towards recall.
    false_positive_weight: float = Field(default=0.1, ge=0, le=1)
    false_negative_weight: float = Field(default=0.9, ge=0, le=1)
    seed: int = Field(default=1, ge=0)
    word_ngram: int = Field(default=5, ge=1, le=32)
    char_ngram: int = Field(default=5, ge=1, le=32)
    scope: Literal["global", "language"] = "global"
    # fields: a near-duplicate pair must match field by field (a shared passage alone does not
    # make two questions one record); whole: the record's fields joined, as one text.
    match: Literal["fields", "whole"] = "fields"
    representative: Literal["smallest_id", "source_priority", "longest_response"] = "smallest_id"
    source_priority: list[str] = Field(default_factory=list)  # first wins
    write_duplicates: bool = False  # also write removed rows to duplicates/ for audit
    checkpoint_every: int = Field(default=3, ge=1, le=8)  # the plan grows until truncated
    # A dated load also removes records that an earlier load date already committed
    # (duplicate_of_earlier_load); None: on for --run-date loads, off for full builds.
    across_loads: bool | None = None

    @field_validator("source_priority")
    @classmethod
    def _priority_needs_mode(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if bool(value) != (info.data.get("representative") == "source_priority"):
            raise ValueError(
                "source_priority is given exactly when representative is 'source_priority'"
            )
        if len(set(value)) != len(value):
            raise ValueError("a source is listed twice")
        return value


class BenchmarkRef(Strict):
    """An evaluation set the user supplies: train records that overlap it are removed."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    path: str | list[str]  # relative to the pipeline file; globs allowed
    # hf: a Hugging Face datasets folder (save_to_disk, or the Hub's Parquet layout);
    # conllu: CoNLL-U treebank files, one record per sentence.
    format: Literal["jsonl", "parquet", "csv", "superni", "hf", "conllu"]
    # format hf: the split of a DatasetDict or of a Parquet layout.
    split: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    id_field: str | None = None  # default: a hash of the item's content
    fields: list[str] = Field(min_length=1)  # the texts to check against
    csv: CsvOptions | None = None

    @field_validator("fields")
    @classmethod
    def _distinct_fields(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a field is listed twice")
        return value


class DecontaminationConfig(Strict):
    """N-gram overlap between train records and held-out rows or benchmark items (GPT-3 and
    NeMo Curator use 13-grams). Texts are compared in the dedup normal form with punctuation
    runs as spaces."""

    ngram: int = Field(default=13, ge=3, le=64)  # word n-grams
    # Scripts written without spaces (Chinese, Japanese, Thai...) are cut into characters.
    char_ngram: int = Field(default=13, ge=3, le=64)
    # A held-out or benchmark text with fewer tokens is not checked: containing "Paris" or
    # "yes" is chance, not contamination. Texts between min_tokens and ngram count when a
    # train text contains all of them.
    min_tokens: int = Field(default=5, ge=1, le=64)
    # n-grams found in more benchmark (or held-out) items than this are boilerplate.
    max_item_frequency: int = Field(default=10, ge=1)
    heldout: bool = True  # check train records against this build's held-out rows
    # The dedup rule too: a train record in a near-duplicate cluster with a held-out record.
    near_duplicates: bool = True
    # Up to this many distinct held-out n-grams are sent to every task; more are joined with
    # the train n-grams by hash (a shuffle, linear in the train n-grams).
    broadcast_ngrams: int = Field(default=20_000_000, ge=0)
    benchmarks: list[BenchmarkRef] = Field(default_factory=list)

    @field_validator("benchmarks")
    @classmethod
    def _unique_names(cls, value: list[BenchmarkRef]) -> list[BenchmarkRef]:
        names = [benchmark.name for benchmark in value]
        if len(set(names)) != len(names):
            raise ValueError("two benchmarks have the same name")
        return value


class RenderLimits(Strict):
    """Per-record bounds on rendering, so one hostile template or record cannot exhaust a
    worker: a record past either bound is a reject (render_too_large, render_timeout)."""

    # instruction + response, per row; a row must fit an Arrow string (2 GiB of UTF-8)
    max_chars: int = Field(default=1_000_000, ge=1, le=500_000_000)
    max_seconds: float = Field(default=0.5, gt=0, le=3600)


class PipelineConfig(Strict):
    sources: list[str] = Field(min_length=1)
    output: str
    partition_by: list[Literal[PARTITION_COLUMNS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(DEFAULT_PARTITION_BY)
    )
    seed: int = 0
    templates_per_record: Annotated[int, Field(ge=1)] | Literal["all"] = 1
    rows_per_file: int = Field(default=500_000, ge=1)
    compression: COMPRESSIONS = "zstd"
    spark: dict[str, str | int | float | bool] = Field(default_factory=dict)
    langid: LangIdConfig = Field(default_factory=LangIdConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    # The task taxonomy and its crosswalks; default: conf/task_clusters.yaml of this package.
    taxonomy: str | None = None
    # Rows of these clusters get split 'heldout', every other row 'train'.
    heldout_clusters: list[str] = Field(default_factory=list)
    # Remove train records that share an origin dataset with held-out ones.
    exclude_shared_sources: bool = True
    # Shorthand: false turns every check of the decontamination section off.
    decontaminate: bool = True
    # Train records that share an n-gram with a held-out row or a benchmark item are removed,
    # and (near_duplicates) those in a dedup cluster with a held-out record, found with the
    # dedup settings even when dedup is disabled.
    decontamination: DecontaminationConfig = Field(default_factory=DecontaminationConfig)
    render: RenderLimits = Field(default_factory=RenderLimits)
    # Register the committed data as this partitioned catalog table (db.name), and the
    # rejects as db.name_rejects; --table overrides it.
    table: str | None = Field(default=None, pattern=TABLE_NAME)
    # A folder holding promptsource's templates/ tree, for `promptsource: DATASET` entries.
    # (or several: the first holding a dataset wins)
    promptsource_root: str | list[str] | None = None

    @field_validator("partition_by")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a column is listed twice")
        return value

    @model_validator(mode="after")
    def _shorthand_agrees(self) -> PipelineConfig:
        if not self.decontaminate and "decontamination" in self.model_fields_set:
            raise ValueError(
                "decontaminate: false turns decontamination off; remove it or the "
                "decontamination section"
            )
        return self
