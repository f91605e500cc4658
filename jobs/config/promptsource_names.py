"""Templates by promptsource dataset name (``promptsource: super_glue/rte``): found under the
pipeline's ``promptsource_root`` folders (each holding promptsource's ``templates/`` tree, as
the promptsource repository and its forks lay it out), filtered by name and metadata."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from jobs.config.loading import ConfigError
from jobs.config.source_options import TemplateRef
from udfs.template_files import TEMPLATES_DIR_NAME, TemplateFileError, load_promptsource_file
from udfs.templating import TemplateSpec

_FILE = "templates.yaml"
_SHOWN = 5


def _templates_dir(root: Path) -> Path:
    """A root is the folder holding templates/, or that templates/ folder itself."""
    return root if root.name == TEMPLATES_DIR_NAME else root / TEMPLATES_DIR_NAME


def dataset_names(roots: Sequence[Path]) -> list[str]:
    """Every dataset (``name`` or ``name/subset``) the roots hold, in a stable order."""
    names: set[str] = set()
    for root in roots:
        base = _templates_dir(root)
        for file in base.glob(f"**/{_FILE}"):
            names.add(file.parent.relative_to(base).as_posix())
    return sorted(names)


def nearest(name: str, choices: Sequence[str]) -> list[str]:
    close = difflib.get_close_matches(name, choices, n=_SHOWN, cutoff=0.5)
    if close:
        return close
    head = name.split("/")[0]
    return [choice for choice in choices if choice.split("/")[0] == head][:_SHOWN]


def _dataset_file(where: str, dataset: str, roots: Sequence[Path]) -> Path:
    if not roots:
        raise ConfigError(
            f"{where}: promptsource: {dataset!r} needs promptsource_root in the pipeline "
            "file (a folder holding promptsource's templates/ tree)"
        )
    for root in roots:
        file = _templates_dir(root) / dataset / _FILE
        if file.is_file():
            return file
    near = nearest(dataset, dataset_names(roots))
    hint = f"; nearest: {', '.join(near)}" if near else ""
    raise ConfigError(
        f"{where}: promptsource: no dataset {dataset!r} under {[str(r) for r in roots]}{hint}"
    )


def template_matches(spec: TemplateSpec, ref: TemplateRef) -> bool:
    metadata = spec.metadata or {}
    if ref.original_task is not None and metadata.get("original_task") != ref.original_task:
        return False
    if ref.languages is not None:
        languages = metadata.get("languages") or []
        return bool(set(ref.languages) & set(languages))
    return True


def _named(where: str, dataset: str, specs: list[TemplateSpec], names: list[str]) -> list[str]:
    """The unknown names of ``names``, each with the nearest names the dataset has."""
    available = sorted({spec.name for spec in specs})
    problems = []
    for name in names:
        if name not in available:
            near = difflib.get_close_matches(name, available, n=3, cutoff=0.3)
            problems.append(f"{name!r} (nearest: {', '.join(map(repr, near)) or 'none'})")
    if problems:
        raise ConfigError(
            f"{where}: promptsource {dataset!r} has no template named {'; '.join(problems)}"
        )
    return names


def promptsource_templates(
    where: str, ref: TemplateRef, roots: Sequence[Path]
) -> list[TemplateSpec]:
    """The dataset's templates that pass the ref's filters, in file order (or in the order of
    ``names``); none left is a config error."""
    assert ref.promptsource is not None
    file = _dataset_file(where, ref.promptsource, roots)
    try:
        specs = load_promptsource_file(file)
        if ref.names is not None:
            specs = load_promptsource_file(file, _named(where, ref.promptsource, specs, ref.names))
    except TemplateFileError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    kept = [spec for spec in specs if template_matches(spec, ref)]
    if not kept:
        raise ConfigError(
            f"{where}: promptsource {ref.promptsource!r}: no template of {file} passes "
            f"original_task={ref.original_task} languages={ref.languages}"
        )
    return kept
