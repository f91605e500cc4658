"""Generated templates in a build: a source's templates plus the variants written for them
(``variants/templates.yaml`` beside each template file, by ``instructmill templates``), each
used only once a person has marked it ``reviewed: true``, or when the source says
``unreviewed_templates: allow``. The ones left out are listed with why, for the manifest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jobs.config.loading import ConfigError
from jobs.config.models import DatasetRegistry
from jobs.variants.variant_files import variants_file
from udfs.language_codes import UnknownLanguageLabel, comparable, declared_code
from udfs.template_files import TemplateFileError, generated_by, load_promptsource_file
from udfs.templating import TemplateCompileError, TemplateSpec, compile_template

UNREVIEWED = "unreviewed"


def _discovered(file: Path, specs: Sequence[TemplateSpec]) -> list[TemplateSpec]:
    """The variants of these originals, from the variants file beside each one's file."""
    originals = {spec.template_id for spec in specs if generated_by(spec) is None}
    loaded = {spec.template_id for spec in specs}
    found: list[TemplateSpec] = []
    for path in dict.fromkeys(variants_file(Path(spec.origin)) for spec in specs if spec.origin):
        if not path.is_file():
            continue
        try:
            variants = load_promptsource_file(path)
            for variant in variants:
                compile_template(variant)
        except (TemplateFileError, TemplateCompileError) as exc:
            raise ConfigError(f"{file}: template variants: {exc}") from None
        found += [
            variant
            for variant in variants
            if (variant.metadata or {}).get("original_id") in originals
            and variant.template_id not in loaded
        ]
        loaded |= {variant.template_id for variant in found}
    return found


def _language_skip(registry: DatasetRegistry, spec: TemplateSpec) -> str | None:
    """A translation is for sources in its language; None when this source is one."""
    if generated_by(spec) != "translate":
        return None
    languages = list((spec.metadata or {}).get("languages") or [])
    if registry.language is None:
        return f"a translation into {languages}; the source's language is per record"
    try:
        wanted = comparable(declared_code(registry.language))
        if any(comparable(declared_code(str(code))) == wanted for code in languages):
            return None
    except UnknownLanguageLabel:
        pass
    return f"a translation into {languages}, not the source's {registry.language}"


def with_variants(
    file: Path, registry: DatasetRegistry, specs: Sequence[TemplateSpec]
) -> tuple[tuple[TemplateSpec, ...], tuple[tuple[str, str], ...]]:
    """(the templates the source renders with, (template id, why left out) of the others)."""
    candidates = list(specs)
    if registry.template_variants:
        candidates += _discovered(file, specs)
    kept: list[TemplateSpec] = []
    skipped: list[tuple[str, str]] = []
    for spec in candidates:
        kind = generated_by(spec)
        reviewed = (spec.metadata or {}).get("reviewed") is True
        language_skip = _language_skip(registry, spec) if kind is not None else None
        if kind is None or (language_skip is None and _allowed(registry, reviewed)):
            kept.append(spec)
        else:
            skipped.append((spec.template_id, language_skip or UNREVIEWED))
    if not kept:
        raise ConfigError(
            f"{file}: templates: every template is a generated one not yet reviewed; mark "
            "entries `reviewed: true` or set unreviewed_templates: allow"
        )
    return tuple(kept), tuple(skipped)


def _allowed(registry: DatasetRegistry, reviewed: bool) -> bool:
    return reviewed or registry.unreviewed_templates == "allow"
