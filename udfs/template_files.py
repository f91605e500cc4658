"""Load templates from disk: plain ``.jinja`` files and promptsource ``templates.yaml`` files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from udfs.templating import TemplateSpec

TEMPLATES_DIR_NAME = "templates"


class TemplateFileError(ValueError):
    """A template file that cannot be used; the message names the file and the fix."""


class _PromptsourceLoader(yaml.SafeLoader):
    """SafeLoader that reads promptsource's ``!Template`` / ``!TemplateMetadata`` tags as dicts,
    so its files load as they are without importing promptsource or running arbitrary tags."""


_PromptsourceLoader.add_multi_constructor(
    "!", lambda loader, _suffix, node: loader.construct_mapping(node, deep=True)
)


def jinja_template_id(path: Path) -> str:
    """Path relative to the nearest enclosing ``templates/`` folder, without the suffix
    (``templates/nli/can_we_infer.jinja`` -> ``nli/can_we_infer``)."""
    resolved = path.resolve()
    for parent in resolved.parents:
        if parent.name == TEMPLATES_DIR_NAME:
            return resolved.relative_to(parent).with_suffix("").as_posix()
    return f"{resolved.parent.name}/{resolved.stem}"


def load_jinja_file(path: Path) -> TemplateSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateFileError(f"{path}: cannot read template file: {exc}") from exc
    template_id = jinja_template_id(path)
    return TemplateSpec(template_id=template_id, name=template_id, jinja=text, origin=str(path))


def promptsource_entries(path: Path) -> list[dict[str, Any]]:
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_PromptsourceLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TemplateFileError(f"{path}: cannot read promptsource templates: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("templates"), dict):
        raise TemplateFileError(
            f"{path}: expected a promptsource file with a 'templates' mapping of id -> !Template"
        )
    entries = []
    for key, entry in doc["templates"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("jinja"), str):
            raise TemplateFileError(f"{path}: template {key!r} has no 'jinja' text")
        entries.append(entry)
    return entries


# What `instructmill templates paraphrase|translate` adds to a generated template's metadata:
# where it came from and whether a person has reviewed it (the build's gate).
GENERATED_KEYS = (
    "generated_by",
    "original_id",
    "original_name",
    "model",
    "prompt_hash",
    "meta_prompt",
    "reviewed",
)


def _plain_metadata(metadata: Any) -> dict[str, Any] | None:
    """promptsource's TemplateMetadata keys and ours, as JSON-ready values."""
    if not isinstance(metadata, dict):
        return None
    keys = ("original_task", "choices_in_prompt", "languages", "metrics", *GENERATED_KEYS)
    return {key: metadata[key] for key in keys if key in metadata}


def generated_by(spec: TemplateSpec) -> str | None:
    """``paraphrase`` or ``translate`` for a generated template, None for one written by hand."""
    kind = (spec.metadata or {}).get("generated_by")
    return str(kind) if kind else None


def load_promptsource_file(path: Path, names: Sequence[str] | None = None) -> list[TemplateSpec]:
    """All templates of a promptsource file in file order, or the ones named in ``names``
    (in the order given)."""
    specs = []
    for entry in promptsource_entries(path):
        choices = entry.get("answer_choices")
        metadata = entry.get("metadata")
        specs.append(
            TemplateSpec(
                template_id=str(entry.get("id") or ""),
                name=str(entry.get("name") or ""),
                jinja=entry["jinja"],
                answer_choices=None if choices is None else str(choices),
                origin=str(path),
                metadata=_plain_metadata(metadata),
            )
        )
    missing_ids = [spec.name for spec in specs if not spec.template_id]
    if missing_ids:
        raise TemplateFileError(f"{path}: templates without an 'id': {missing_ids}")
    if names is None:
        return specs
    by_name: dict[str, list[TemplateSpec]] = {}
    for spec in specs:
        by_name.setdefault(spec.name, []).append(spec)
    chosen = []
    for name in names:
        found = by_name.get(name, [])
        if len(found) != 1:
            problem = "no template" if not found else f"{len(found)} templates"
            raise TemplateFileError(
                f"{path}: names: {problem} named {name!r}; available: {sorted(by_name)}"
            )
        chosen.append(found[0])
    return chosen


def load_template_file(path: Path, names: Sequence[str] | None = None) -> list[TemplateSpec]:
    """Dispatch on the file kind: ``.yaml``/``.yml`` is promptsource, anything else plain Jinja."""
    if path.suffix in (".yaml", ".yml"):
        return load_promptsource_file(path, names)
    if names is not None:
        raise TemplateFileError(
            f"{path}: 'names' selects templates inside a promptsource templates.yaml; "
            "a plain template file holds exactly one template"
        )
    return [load_jinja_file(path)]
