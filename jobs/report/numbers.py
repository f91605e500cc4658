"""The report's numbers that come from the manifest. Build, mix, dedup and decontaminate
manifests differ (and older outputs lack newer sections), so every reader here answers None
for what its manifest does not have instead of failing: the page leaves that section out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

# The per-source columns of the page's table, in this order, where the manifest has them.
SOURCE_FIELDS = (
    "read", "rows", "written", "rejected", "duplicates", "contaminated", "contaminates_heldout",
    "shared_ids", "unassigned", "langid.mismatched", "langid.mismatch_rate",
)  # fmt: skip
# The chart of per-source counts: the flow of rows, not its by-products.
FLOW_FIELDS = ("read", "written", "rejected", "duplicates", "contaminated", "contaminates_heldout")
# Sections of a manifest whose scalar (and one level of nested) values are headline numbers.
HEADLINE_SECTIONS = ("totals", "counts", "total")
RUN_FIELDS = ("job", "run_id", "started", "finished", "seconds", "load_date", "input")

Number = int | float


def lookup(document: Any, path: str) -> Any:
    """``document``'s value at a dotted path, or None where any step is missing."""
    for step in path.split("."):
        if not isinstance(document, Mapping) or step not in document:
            return None
        document = document[step]
    return document


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def job_kind(manifest: Mapping[str, Any]) -> str:
    """The manifest's ``job``; a build's manifest names none but has its run and sources."""
    if isinstance(manifest.get("job"), str):
        return str(manifest["job"])
    if "run_id" in manifest and "sources" in manifest:
        return "build"
    return "unknown"


def sources(manifest: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = manifest.get("sources")
    if not isinstance(found, Mapping):
        return {}
    return {str(name): entry for name, entry in found.items() if isinstance(entry, Mapping)}


def source_table(manifest: Mapping[str, Any]) -> tuple[list[str], dict[str, dict[str, Number]]]:
    """The SOURCE_FIELDS some source has, and each source's numbers among them."""
    entries = sources(manifest)
    fields = [
        field
        for field in SOURCE_FIELDS
        if any(is_number(lookup(entry, field)) for entry in entries.values())
    ]
    table = {
        name: {f: lookup(entry, f) for f in fields if is_number(lookup(entry, f))}
        for name, entry in entries.items()
    }
    return fields, table


def rejects_by_reason(manifest: Mapping[str, Any]) -> dict[str, int] | None:
    """Rejected rows per reason summed over sources; None when no source lists reasons."""
    totals: dict[str, int] = defaultdict(int)
    listed = False
    for entry in sources(manifest).values():
        reasons = entry.get("rejected_by_reason")
        if isinstance(reasons, Mapping):
            listed = True
            for reason, count in reasons.items():
                totals[str(reason)] += int(count) if is_number(count) else 0
    return dict(totals) if listed else None


def mismatch_rates(manifest: Mapping[str, Any]) -> dict[str, float] | None:
    rates = {
        name: float(lookup(entry, "langid.mismatch_rate"))
        for name, entry in sources(manifest).items()
        if is_number(lookup(entry, "langid.mismatch_rate"))
    }
    return rates or None


def dedup_histogram(manifest: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The cluster-size buckets with a number of clusters (size label, clusters, records)."""
    histogram = lookup(manifest, "dedup_clusters.histogram")
    if not isinstance(histogram, list):
        return None
    entries = [
        {"size": str(entry.get("size")), "clusters": entry["clusters"],
         "records": entry.get("records") if is_number(entry.get("records")) else 0}
        for entry in histogram
        if isinstance(entry, Mapping) and is_number(entry.get("clusters"))
    ]  # fmt: skip
    return entries or None


def template_counts(manifest: Mapping[str, Any]) -> dict[tuple[str, str], tuple[int, int]] | None:
    """(applied, rejected) per (source, template); None when no source lists templates."""
    found: dict[tuple[str, str], tuple[int, int]] = {}
    for name, entry in sources(manifest).items():
        templates = entry.get("templates")
        if not isinstance(templates, Mapping):
            continue
        for template, counts in templates.items():
            applied, rejected = lookup(counts, "applied"), lookup(counts, "rejected")
            found[(name, str(template))] = (
                int(applied) if is_number(applied) else 0,
                int(rejected) if is_number(rejected) else 0,
            )
    return found or None


def _label(field: str) -> str:
    """``totals.splits.heldout`` as "splits: heldout"; a mixture's ``total.*`` keep "total"."""
    section, *rest = field.split(".")
    words = [part.replace("_", " ") for part in (rest if section == "totals" else [section, *rest])]
    return ": ".join(words)


def _flattened(prefix: str, section: Mapping[str, Any]) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for key, value in section.items():
        if isinstance(value, Mapping):
            found += [
                (f"{prefix}.{key}.{inner}", v)
                for inner, v in value.items()
                if is_number(v) or isinstance(v, bool)
            ]
        elif is_number(value) or isinstance(value, bool):
            found.append((f"{prefix}.{key}", value))
    return found


def headline(manifest: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """(dotted field, label, value) of the manifest's totals (a mixture's counts and total)."""
    found: list[tuple[str, Any]] = []
    for name in HEADLINE_SECTIONS:
        section = manifest.get(name)
        if isinstance(section, Mapping):
            found += _flattened(name, section)
    return [(field, _label(field), value) for field, value in found]


def run_facts(manifest: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """What identifies the run: its own fields (the page has no timestamp of its own)."""
    facts = [("job", job_kind(manifest))]
    facts += [
        (key, manifest[key])
        for key in RUN_FIELDS[1:]
        if isinstance(manifest.get(key), (str, int, float)) and manifest.get(key) != ""
    ]
    return facts


def share_tables(manifest: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """A mixture's target vs achieved tables (``groups``, ``languages``), where present."""
    return {
        key: [row for row in manifest[key] if isinstance(row, Mapping)]
        for key in ("groups", "languages")
        if isinstance(manifest.get(key), list) and manifest[key]
    }


def decontamination_sets(manifest: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = lookup(manifest, "decontamination.sets")
    if not isinstance(found, Mapping):
        return {}
    return {str(name): entry for name, entry in found.items() if isinstance(entry, Mapping)}
