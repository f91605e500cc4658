"""Config models and loading: YAML in, a validated RunPlan out, before Spark starts.

Every error names the file, the key and what was expected. Unknown keys are errors (a typo in a
threshold must not silently fall back to a default on a 500-node run).
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from udfs.records import FIELD_TYPES
from udfs.render_batches import READER_COLUMNS, RenderPlan
from udfs.template_files import TemplateFileError, load_template_file
from udfs.templating import TemplateCompileError, TemplateSpec, compile_template

PARTITION_COLUMNS = ("language", "task_cluster", "task", "source", "license")
UNASSIGNED_CLUSTER = "unassigned"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB_CHARS = re.compile(r"[*?\[]")


class ConfigError(ValueError):
    """A config problem, reported before any Spark work starts."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TemplateRef(_Strict):
    path: str
    names: list[str] | None = Field(default=None, min_length=1)


class CsvOptions(_Strict):
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote: str = Field(default='"', min_length=1, max_length=1)
    # RFC 4180 escapes a quote by doubling it; Spark's own default is a backslash.
    escape: str = Field(default='"', min_length=1, max_length=1)
    multiline: bool = False
    encoding: str = "UTF-8"


class DatasetRegistry(_Strict):
    """One source: where its records are, what they are, and which templates render them."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$")
    description: str | None = None
    path: str | list[str]
    format: Literal["jsonl", "parquet", "csv"]
    id_field: str | None = None
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}([_-][a-z0-9]{2,8})*$")
    language_field: str | None = None
    task: str = Field(min_length=1)
    task_cluster: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_]*$")
    license: str = Field(min_length=1)
    templates: list[str | TemplateRef] = Field(min_length=1)
    rename: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, Literal[FIELD_TYPES]] = Field(default_factory=dict)  # type: ignore[valid-type]
    allow_empty: bool = False  # render null/blank fields as they are instead of rejecting
    csv: CsvOptions | None = None

    @model_validator(mode="after")
    def _one_language_source(self) -> DatasetRegistry:
        if self.language is not None and self.language_field is not None:
            raise ValueError("give either 'language' (one code) or 'language_field', not both")
        if self.csv is not None and self.format != "csv":
            raise ValueError("'csv' options apply only to format: csv")
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
    task: str
    task_cluster: str
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

    def describe(self) -> dict[str, Any]:
        """The resolved config, as recorded in the manifest."""
        return {
            "conf_file": self.conf_file,
            "pipeline": self.pipeline,
            "output": self.output,
            "partition_by": list(self.partition_by),
            "seed": self.seed,
            "templates_per_record": self.templates_per_record or "all",
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


def _key_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("str", "TemplateRef", "int", "constrained-int", "literal['all']"):
            continue  # union branch names, not keys
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _format_validation(file: Path, model: type[BaseModel], exc: ValidationError) -> ConfigError:
    lines = []
    seen = set()
    for error in exc.errors():
        key = _key_path(error["loc"])
        if error["type"] == "extra_forbidden":
            message = (
                f"unknown key; allowed keys here: {', '.join(_allowed_keys(model, error['loc']))}"
            )
        elif error["type"] == "missing":
            message = "required key is missing"
        else:
            message = f"{error['msg']} (got {error.get('input')!r})"
        if (key, message) not in seen:
            seen.add((key, message))
            lines.append(f"{file}: {key}: {message}")
    return ConfigError("\n".join(lines))


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: type[BaseModel] = model
    for part in loc[:-1]:
        if isinstance(part, int) or part not in current.model_fields:
            continue
        annotation = current.model_fields[part].annotation
        for candidate in getattr(annotation, "__args__", (annotation,)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                current = candidate
    return sorted(current.model_fields)


def _load_yaml(file: Path, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
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
        return matches
    if not Path(pattern).exists():
        raise ConfigError(f"{file}: {key}: {pattern!r} does not exist")
    return [pattern]


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


def load_registry(file: Path, pipeline: PipelineConfig) -> SourcePlan:
    raw = _load_yaml(file, "dataset registry")
    registry: DatasetRegistry = _validate(file, DatasetRegistry, raw)
    patterns = [registry.path] if isinstance(registry.path, str) else registry.path
    if not patterns:
        raise ConfigError(f"{file}: path: give at least one path")
    paths: list[str] = []
    for index, pattern in enumerate(patterns):
        key = "path" if isinstance(registry.path, str) else f"path[{index}]"
        paths.extend(_expand_local(file, key, resolve_path(file.parent, pattern)))
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
        renames=tuple(registry.rename.items()),
        field_types=tuple(registry.fields.items()),
        allow_empty=registry.allow_empty,
    )
    return SourcePlan(
        name=registry.name,
        registry_file=str(file),
        paths=tuple(dict.fromkeys(paths)),
        format=registry.format,
        task=registry.task,
        task_cluster=registry.task_cluster or UNASSIGNED_CLUSTER,
        license=registry.license,
        csv=registry.csv or CsvOptions(),
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
    sources: list[SourcePlan] = []
    names: dict[str, str] = {}
    for registry_file in dict.fromkeys(registry_files):
        source = load_registry(Path(registry_file), pipeline)
        if source.name in names:
            raise ConfigError(
                f"{registry_file}: name: source name {source.name!r} is already used by "
                f"{names[source.name]}; names must be unique"
            )
        names[source.name] = registry_file
        sources.append(source)
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
    )
