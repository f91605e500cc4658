"""What a registry points at, resolved on the driver before Spark starts: paths and globs,
CSV headers, template files (compiled), taxonomy names."""

from __future__ import annotations

import csv
import glob
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jobs.config.loading import ConfigError
from jobs.config.models import CsvOptions, DatasetRegistry
from jobs.config.promptsource_names import promptsource_templates, template_matches
from jobs.config.source_options import TemplateRef
from udfs.hf_layout import HfLayoutError, resolve_hf
from udfs.taxonomy import Taxonomy
from udfs.template_files import TemplateFileError, load_template_file
from udfs.templating import TemplateCompileError, TemplateSpec, compile_template

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB_CHARS = re.compile(r"[*?\[]")
_HADOOP_GLOB_CHARS = re.compile(r"[{}\[\]*?\\]")


def is_uri(path: str) -> bool:
    return bool(_URI.match(path))


def resolve_path(base: Path, path: str) -> str:
    """URIs (s3a://, hdfs://, file://) pass through; local paths are relative to ``base``."""
    if is_uri(path):
        return path
    return str((base / Path(path).expanduser()).resolve()) if not Path(path).is_absolute() else path


def expand_local(file: Path, key: str, pattern: str) -> list[str]:
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


def _file_templates(file: Path, key: str, ref: str | TemplateRef) -> list[TemplateSpec]:
    path, names = (ref, None) if isinstance(ref, str) else (ref.path, ref.names)
    assert path is not None
    resolved = Path(resolve_path(file.parent, path))
    if not resolved.is_file():
        raise ConfigError(f"{file}: {key}: template file {str(resolved)!r} does not exist")
    try:
        loaded = load_template_file(resolved, names)
    except TemplateFileError as exc:
        raise ConfigError(f"{file}: {key}: {exc}") from None
    if isinstance(ref, TemplateRef) and (ref.original_task is not None or ref.languages):
        loaded = [spec for spec in loaded if template_matches(spec, ref)]
        if not loaded:
            raise ConfigError(f"{file}: {key}: no template of {resolved} passes its filters")
    return loaded


def load_templates(
    file: Path, registry: DatasetRegistry, promptsource_roots: Sequence[Path] = ()
) -> tuple[TemplateSpec, ...]:
    specs: list[TemplateSpec] = []
    for index, ref in enumerate(registry.templates):
        key = f"templates[{index}]"
        if isinstance(ref, TemplateRef) and ref.promptsource is not None:
            loaded = promptsource_templates(f"{file}: {key}", ref, promptsource_roots)
        else:
            loaded = _file_templates(file, key, ref)
        try:
            for spec in loaded:
                compile_template(spec)
        except TemplateCompileError as exc:
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


def check_taxonomy_names(file: Path, registry: DatasetRegistry, taxonomy: Taxonomy) -> None:
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


def registry_paths(file: Path, registry: DatasetRegistry) -> tuple[str, ...]:
    """The registry's paths and globs, expanded and checked; each file once, in order."""
    patterns = [registry.path] if isinstance(registry.path, str) else registry.path
    if not patterns:
        raise ConfigError(f"{file}: path: give at least one path")
    paths: list[str] = []
    for index, pattern in enumerate(patterns):
        key = "path" if isinstance(registry.path, str) else f"path[{index}]"
        paths.extend(expand_local(file, key, resolve_path(file.parent, pattern)))
    if registry.format == "csv":
        _check_csv_headers(file, paths, registry.csv or CsvOptions())
    if registry.format == "hf":
        _check_hf_folder(file, paths, registry.split)
    return tuple(dict.fromkeys(paths))


def _check_hf_folder(file: Path, paths: list[str], split: str | None) -> None:
    """A Hugging Face dataset is one folder whose layout and split are known before Spark
    starts (a URI is resolved by the reader)."""
    if len(paths) != 1:
        raise ConfigError(f"{file}: path: format hf reads one dataset folder, not {len(paths)}")
    if is_uri(paths[0]):
        return
    try:
        resolve_hf(paths[0], split)
    except HfLayoutError as exc:
        raise ConfigError(f"{file}: path: {exc}") from None
