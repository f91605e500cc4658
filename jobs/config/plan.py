"""The run plan: the validated models of a pipeline and its registries, plus what was resolved
from them (paths, compiled templates, the taxonomy, the language-ID model), built before Spark
starts. A plan holds the models themselves; everything else about them is derived."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.config.benchmarks import BenchmarkPlan, benchmark_plans
from jobs.config.langid_model import langid_model, langid_settings
from jobs.config.loading import ConfigError, load_model, load_yaml, validate
from jobs.config.mixture import MixtureConfig
from jobs.config.models import (
    CsvOptions,
    DatasetRegistry,
    DecontaminationConfig,
    DedupConfig,
    PipelineConfig,
)
from jobs.config.sources import (
    check_taxonomy_names,
    expand_local,
    is_uri,
    load_templates,
    registry_paths,
    resolve_path,
)
from jobs.config.template_variants import with_variants
from udfs.langid import LangIdSettings
from udfs.render_batches import RenderPlan
from udfs.taxonomy import Taxonomy, TaxonomyError, load_taxonomy
from udfs.template_files import generated_by
from udfs.templating import TemplateSpec, compile_template

DEFAULT_TAXONOMY = str(Path(__file__).resolve().parents[2] / "conf" / "task_clusters.yaml")


@dataclass(frozen=True)
class SourcePlan:
    registry: DatasetRegistry
    registry_file: str
    paths: tuple[str, ...]
    render: RenderPlan  # what the executors need to render the source's records
    # Generated templates left out: (template id, why), e.g. not yet reviewed.
    skipped_templates: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.registry.name

    @property
    def format(self) -> str:
        return self.registry.format

    @property
    def csv(self) -> CsvOptions:
        return self.registry.csv or CsvOptions()


@dataclass(frozen=True)
class RunPlan:
    conf_file: str
    pipeline: PipelineConfig
    output: str  # the conf's output, or the command line's, resolved
    sources: tuple[SourcePlan, ...]
    taxonomy: Taxonomy
    langid: LangIdSettings | None = None  # None: language ID is off
    langid_model: str | None = None  # the model file on the driver, shipped with SparkFiles
    benchmarks: tuple[BenchmarkPlan, ...] = ()

    @property
    def templates_per_record(self) -> int | None:
        return templates_per_record(self.pipeline)

    @property
    def writes_duplicates(self) -> bool:
        """Removed duplicates also go to duplicates/, for audit."""
        return self.dedup is not None and self.dedup.write_duplicates

    @property
    def spark_conf(self) -> dict[str, str]:
        return {
            key: str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in self.pipeline.spark.items()
        }

    @property
    def dedup(self) -> DedupConfig | None:
        """The dedup settings when duplicates are removed, else None."""
        return self.pipeline.dedup if self.pipeline.dedup.enabled else None

    @property
    def decontamination(self) -> DecontaminationConfig | None:
        """The decontamination settings, or None when ``decontaminate: false``."""
        return self.pipeline.decontamination if self.pipeline.decontaminate else None

    @property
    def decontaminating(self) -> bool:
        """Whether dedup flags train records in a cluster with a held-out record."""
        settings = self.decontamination
        return bool(self.pipeline.heldout_clusters) and bool(settings and settings.near_duplicates)

    @property
    def checks_ngrams(self) -> bool:
        """Whether train records are checked for n-grams of held-out rows or benchmarks."""
        settings = self.decontamination
        if settings is None:
            return False
        return bool(self.benchmarks) or (settings.heldout and bool(self.pipeline.heldout_clusters))

    @property
    def clustering(self) -> bool:
        """Whether dedup's clusters are computed: to remove duplicates, or to decontaminate
        (with the pipeline's dedup settings even when dedup is disabled)."""
        return self.dedup is not None or self.decontaminating

    def describe(self) -> dict[str, Any]:
        """The resolved config, as recorded in the manifest."""
        return {
            "conf_file": self.conf_file,
            "pipeline": self.pipeline.model_dump(mode="json"),
            "output": self.output,
            "partition_by": list(self.pipeline.partition_by),
            "seed": self.pipeline.seed,
            "templates_per_record": self.templates_per_record or "all",
            "taxonomy": self.taxonomy.file,
            "heldout_clusters": list(self.pipeline.heldout_clusters),
            "sources": {source.name: _describe_source(source) for source in self.sources},
        }


def _describe_source(source: SourcePlan) -> dict[str, Any]:
    return {
        "registry_file": source.registry_file,
        "paths": list(source.paths),
        "registry": source.registry.model_dump(mode="json", exclude_none=True),
        "templates": {
            spec.template_id: {
                "name": spec.name,
                "hash": spec.template_hash,
                "origin": spec.origin,
                # hand-written, or how it was generated (paraphrase, translate) and from which
                "kind": generated_by(spec) or "hand-written",
                **({"metadata": dict(spec.metadata)} if spec.metadata else {}),
            }
            for spec in source.render.templates
        },
        "templates_skipped": dict(source.skipped_templates),
    }


def templates_per_record(pipeline: PipelineConfig) -> int | None:
    """None: every template renders every record."""
    per_record = pipeline.templates_per_record
    return None if per_record == "all" else per_record


def _invert_pairs(
    file: Path, registry: DatasetRegistry, templates: tuple[TemplateSpec, ...]
) -> tuple[tuple[str, str], ...]:
    """(source field, target field) pairs an inverted row swaps: ``source_fields``, or the
    one field besides the target the templates insert."""
    if not registry.invert:
        return ()
    _check_invertible(file, registry, templates)
    if registry.source_fields:
        return tuple(zip(registry.source_fields, registry.target_fields, strict=True))
    not_text = {registry.id_field, registry.language_field, registry.target_language_field,
                registry.task_field, registry.categories_field, registry.origin_field}  # fmt: skip
    inserted = set().union(*(compile_template(spec).fields for spec in templates))
    others = sorted(inserted - not_text - set(registry.target_fields))
    if len(others) != 1 or len(registry.target_fields) != 1:
        raise ConfigError(
            f"{file}: invert: cannot tell which field pairs with {registry.target_fields} "
            f"(the templates insert {others} besides them); name them in source_fields"
        )
    return ((others[0], registry.target_fields[0]),)


def _check_invertible(
    file: Path, registry: DatasetRegistry, templates: tuple[TemplateSpec, ...]
) -> None:
    """An inverted row is right only when its template names the languages from the record:
    a template that says "into German" in its own words would say it the other way round."""
    fields = (registry.language_field, registry.target_language_field)
    if None in fields:
        raise ConfigError(
            f"{file}: invert: the languages must be record fields (language_field and "
            "target_language_field), so that an inverted row's template names them swapped"
        )
    for spec in templates:
        if not set(fields) & compile_template(spec).fields:
            raise ConfigError(
                f"{file}: invert: template {spec.name!r} ({spec.template_id}) inserts neither "
                f"{fields[0]!r} nor {fields[1]!r}: its inverted rows would name the wrong "
                "direction"
            )


def _check_formats(file: Path, registry: DatasetRegistry) -> None:
    if registry.superni is not None and registry.formats != ["zsnoopt"]:
        raise ConfigError(
            f"{file}: formats: a source with SuperNI demonstrations ('superni:') takes its "
            "rows' formats from superni.encodings; remove formats"
        )


def _render_plan(
    file: Path,
    registry: DatasetRegistry,
    pipeline: PipelineConfig,
    templates: tuple[TemplateSpec, ...],
) -> RenderPlan:
    _check_formats(file, registry)
    superni = registry.superni
    return RenderPlan(
        source=registry.name,
        record_format="json_text" if registry.format == "jsonl" else "columns",
        templates=templates,
        templates_per_record=templates_per_record(pipeline),
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
        max_chars=pipeline.render.max_chars,
        max_seconds=pipeline.render.max_seconds,
        formats=tuple(registry.formats),
        superni_encodings=tuple(superni.encodings) if superni is not None else (),
        max_demo_chars=superni.max_demo_chars if superni is not None else 2000,
        invert_pairs=_invert_pairs(file, registry, templates),
        comment_fields=registry.format == "conllu",
    )


def load_registry(
    file: Path, pipeline: PipelineConfig, taxonomy: Taxonomy, roots: Sequence[Path] = ()
) -> SourcePlan:
    registry = validate(file, DatasetRegistry, load_yaml(file, "dataset registry"))
    check_taxonomy_names(file, registry, taxonomy)
    paths = registry_paths(file, registry)
    templates, skipped = with_variants(file, registry, load_templates(file, registry, roots))
    render = _render_plan(file, registry, pipeline, templates)
    return SourcePlan(registry, str(file), paths, render, skipped)


def promptsource_roots(file: Path, pipeline: PipelineConfig) -> tuple[Path, ...]:
    given = pipeline.promptsource_root
    roots = [given] if isinstance(given, str) else list(given or [])
    resolved = tuple(Path(resolve_path(file.parent, root)) for root in roots)
    for index, root in enumerate(resolved):
        if not root.is_dir():
            raise ConfigError(f"{file}: promptsource_root[{index}]: {str(root)!r} is not a folder")
    return resolved


def _registry_files(file: Path, pipeline: PipelineConfig) -> list[str]:
    registry_files: list[str] = []
    for index, pattern in enumerate(pipeline.sources):
        registry_files.extend(
            expand_local(file, f"sources[{index}]", resolve_path(file.parent, pattern))
        )
    return list(dict.fromkeys(registry_files))


def _sources(
    registry_files: list[str],
    pipeline: PipelineConfig,
    taxonomy: Taxonomy,
    roots: Sequence[Path] = (),
) -> tuple[SourcePlan, ...]:
    sources: list[SourcePlan] = []
    names: dict[str, str] = {}
    for registry_file in registry_files:
        source = load_registry(Path(registry_file), pipeline, taxonomy, roots)
        if source.name in names:
            raise ConfigError(
                f"{registry_file}: name: source name {source.name!r} is already used by "
                f"{names[source.name]}; names must be unique"
            )
        names[source.name] = registry_file
        sources.append(source)
    return tuple(sources)


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


def _output(file: Path, pipeline: PipelineConfig, override: str | None) -> str:
    if override is None:
        return resolve_path(file.parent, pipeline.output)
    return override if is_uri(override) else str(Path(override).resolve())


def load_plan(conf_file: str | Path, output_override: str | None = None) -> RunPlan:
    """Validate the pipeline file, every registry it names and compile every template."""
    file = Path(conf_file).resolve()
    pipeline = validate(file, PipelineConfig, load_yaml(file, "pipeline"))
    registry_files = _registry_files(file, pipeline)
    taxonomy = _taxonomy(file, pipeline)
    sources = _sources(registry_files, pipeline, taxonomy, promptsource_roots(file, pipeline))
    model = langid_model(file, pipeline.langid)
    names = sorted(source.name for source in sources)
    unknown = sorted(set(pipeline.dedup.source_priority) - set(names))
    if unknown:
        raise ConfigError(
            f"{file}: dedup.source_priority: {unknown} are not sources of this pipeline; "
            f"sources: {names}"
        )
    return RunPlan(
        conf_file=str(file),
        pipeline=pipeline,
        output=_output(file, pipeline, output_override),
        sources=sources,
        taxonomy=taxonomy,
        langid=None if model is None else langid_settings(pipeline.langid, model),
        langid_model=model,
        benchmarks=benchmark_plans(file, list(pipeline.decontamination.benchmarks)),
    )


def load_dedup_config(conf_file: str | Path) -> DedupConfig:
    """The settings of ``instructmill dedup``: a pipeline conf's ``dedup:`` section, or a file
    holding just that mapping."""
    file = Path(conf_file).resolve()
    return validate(file, DedupConfig, _section(file, "dedup"))


def _section(file: Path, key: str) -> dict[str, Any]:
    """A pipeline file's ``key:`` section, or the file's whole mapping."""
    data = load_yaml(file, f"{key} config")
    if key in data:
        data = data[key]
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: {key}: expected a mapping of {key} settings")
    return data


@dataclass(frozen=True)
class DecontaminationRun:
    """The settings of ``instructmill decontaminate``, with its benchmarks resolved."""

    config: DecontaminationConfig
    benchmarks: tuple[BenchmarkPlan, ...]

    def describe(self) -> dict[str, Any]:
        return {
            **self.config.model_dump(mode="json"),
            "resolved_paths": {b.name: list(b.paths) for b in self.benchmarks},
        }


def load_decontamination_config(conf_file: str | Path) -> DecontaminationRun:
    """A pipeline conf's ``decontamination:`` section, or a file holding just that mapping;
    benchmark paths are relative to that file."""
    file = Path(conf_file).resolve()
    config = validate(file, DecontaminationConfig, _section(file, "decontamination"))
    if not config.benchmarks and not config.heldout:
        raise ConfigError(f"{file}: decontamination: nothing to check (no benchmarks, heldout off)")
    return DecontaminationRun(config, benchmark_plans(file, list(config.benchmarks)))


def load_mixture_config(conf_file: str | Path) -> MixtureConfig:
    return load_model(conf_file, MixtureConfig, "mixture")
