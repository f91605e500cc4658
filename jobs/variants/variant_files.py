"""Accepted variants as a promptsource ``templates.yaml`` in ``variants/`` beside the original:
new ids, the original's metadata plus where the variant came from and ``reviewed: false``.

A rerun adds what is new and keeps every entry already in the file as it is, so a reviewer's
``reviewed: true`` (or an edited wording) survives it. Ids are UUIDs derived from the original
id, the kind, the language and the text, so the same answer gets the same id on every run."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from udfs.template_files import TemplateFileError, promptsource_entries
from udfs.templating import TemplateSpec

VARIANTS_DIR = "variants"
VARIANTS_FILE = "templates.yaml"
# uuid5 namespace of every generated template id.
VARIANT_NAMESPACE = uuid.UUID("6f0b3c52-35e4-4f0e-9d1a-7c1e8a4b2d90")


def variants_file(template_file: Path) -> Path:
    return template_file.parent / VARIANTS_DIR / VARIANTS_FILE


@dataclass(frozen=True)
class Generated:
    """One accepted variant and what made it."""

    original: TemplateSpec
    jinja: str
    kind: str  # paraphrase | translate
    language: str | None
    model: str
    prompt_hash: str
    meta_prompt: str
    number: int  # 1-based, among the original's accepted variants of this kind and language

    @property
    def template_id(self) -> str:
        key = "\x1f".join((self.original.template_id, self.kind, self.language or "", self.jinja))
        return str(uuid.uuid5(VARIANT_NAMESPACE, key))

    @property
    def name(self) -> str:
        label = self.kind if self.language is None else f"{self.kind} {self.language}"
        return f"{self.original.name} ({label} {self.number})"

    def entry(self) -> dict[str, Any]:
        metadata = dict(self.original.metadata or {})
        if self.language is not None:
            metadata["languages"] = [self.language]
        metadata.update(
            generated_by=self.kind,
            original_id=self.original.template_id,
            original_name=self.original.name,
            model=self.model,
            prompt_hash=self.prompt_hash,
            meta_prompt=self.meta_prompt,
            reviewed=False,
        )
        entry: dict[str, Any] = {
            "id": self.template_id,
            "name": self.name,
            "jinja": self.jinja,
            "metadata": _Metadata(metadata),
            "reference": f"instructmill templates {self.kind} of {Path(self.original.origin).name}",
        }
        if self.original.answer_choices is not None:
            entry["answer_choices"] = self.original.answer_choices
        return entry


class _Template(dict):  # type: ignore[type-arg]
    """Written with promptsource's ``!Template`` tag."""


class _Metadata(dict):  # type: ignore[type-arg]
    """Written with promptsource's ``!TemplateMetadata`` tag."""


class _Dumper(yaml.SafeDumper):
    pass


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # Block style keeps a multi-line template readable to a reviewer (PyYAML falls back to
    # quoting where the text cannot be a block).
    return dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    )


_Dumper.add_representer(str, _text)
_Dumper.add_representer(_Template, lambda d, v: d.represent_mapping("!Template", dict(v)))
_Dumper.add_representer(_Metadata, lambda d, v: d.represent_mapping("!TemplateMetadata", dict(v)))


def _tagged(entry: dict[str, Any]) -> _Template:
    """Keys in promptsource's (alphabetical) order; the entries stay in the file's order."""
    metadata = entry.get("metadata")
    if isinstance(metadata, dict):
        entry = {**entry, "metadata": _Metadata(sorted(metadata.items()))}
    return _Template(sorted(entry.items()))


def existing_entries(path: Path) -> list[dict[str, Any]]:
    return promptsource_entries(path) if path.exists() else []


def write_variants(path: Path, generated: Sequence[Generated]) -> tuple[int, int]:
    """Merge into ``path``; returns (entries added, entries already there)."""
    try:
        entries = existing_entries(path)
    except TemplateFileError as exc:
        raise TemplateFileError(
            f"{exc}; fix or move the file and rerun (answers are cached)"
        ) from None
    by_id = {str(entry.get("id")): entry for entry in entries}
    added = 0
    for variant in generated:
        if variant.template_id not in by_id:
            by_id[variant.template_id] = variant.entry()
            added += 1
    document = {
        "dataset": path.parent.parent.name,
        "templates": {key: _tagged(entry) for key, entry in by_id.items()},
    }
    text = yaml.dump(document, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)
    write_text(path, text)
    return added, len(by_id) - added


def write_text(path: Path, text: str) -> None:
    """Whole or not at all: a killed run leaves the earlier file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)
