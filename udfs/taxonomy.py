"""The task taxonomy: canonical clusters and the crosswalks from other collections' names.

``conf/task_clusters.yaml`` holds one canonical set of clusters (id -> one-line description)
and crosswalks from the names other collections use (FLAN 2021 clusters, Super-NaturalInstructions
categories, Aya ``task_type`` values, promptsource dataset names) to those ids. Names are
matched after ``match_key`` (lower case, whitespace collapsed), the same rule the Spark stage
applies to record values, so ``"Textual  Entailment"`` and ``"textual entailment"`` are one name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

UNASSIGNED = "unassigned"
CLUSTER_ID = re.compile(r"^[a-z0-9][a-z0-9_]*$")
# The key every crosswalk is merged under: names on which all crosswalks agree.
ANY_CROSSWALK = "*"


class TaxonomyError(ValueError):
    """The taxonomy file is wrong: the message names the file, the key and the fix."""


def match_key(name: str) -> str:
    # Spark's lower() and Python's lower() agree; casefold() would not (ß -> ss).
    return " ".join(name.split()).lower()


@dataclass(frozen=True)
class Taxonomy:
    file: str
    clusters: Mapping[str, str]  # id -> description
    crosswalks: Mapping[str, Mapping[str, str]]  # crosswalk -> match_key(name) -> cluster id

    def lookup(self, name: str | None, crosswalk: str | None = None) -> str | None:
        """The cluster a name maps to: a cluster id itself, else through the named crosswalk
        (or through the names all crosswalks agree on); None when nothing maps."""
        if name is None:
            return None
        key = match_key(name)
        if key in self.clusters:
            return key
        return self.merged(crosswalk).get(key)

    def merged(self, crosswalk: str | None = None) -> dict[str, str]:
        """One crosswalk, or every crosswalk's names that do not map to two clusters."""
        if crosswalk is not None and crosswalk != ANY_CROSSWALK:
            return dict(self.crosswalks[crosswalk])
        merged: dict[str, str] = {}
        conflicting: set[str] = set()
        for entries in self.crosswalks.values():
            for key, cluster in entries.items():
                if merged.setdefault(key, cluster) != cluster:
                    conflicting.add(key)
        return {key: cluster for key, cluster in merged.items() if key not in conflicting}

    def ambiguous(self) -> dict[str, set[str]]:
        """Names two crosswalks map to different clusters: only a named crosswalk maps them."""
        seen: dict[str, set[str]] = {}
        for entries in self.crosswalks.values():
            for key, cluster in entries.items():
                seen.setdefault(key, set()).add(cluster)
        return {key: clusters for key, clusters in seen.items() if len(clusters) > 1}

    def check_clusters(self, names: Iterable[str]) -> list[str]:
        return sorted({name for name in names if name not in self.clusters})


def _fail(file: Path, key: str, message: str) -> TaxonomyError:
    return TaxonomyError(f"{file}: {key}: {message}")


def _clusters(file: Path, raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw:
        raise _fail(file, "clusters", "give a mapping of cluster id -> one-line description")
    clusters: dict[str, str] = {}
    for cluster, description in raw.items():
        key = f"clusters.{cluster}"
        if not isinstance(cluster, str) or not CLUSTER_ID.match(cluster):
            raise _fail(file, key, "a cluster id is lower-case letters, digits and '_'")
        if cluster == UNASSIGNED:
            raise _fail(file, key, f"{UNASSIGNED!r} is reserved for rows that map to nothing")
        if not isinstance(description, str) or not description.strip():
            raise _fail(file, key, "give a one-line description")
        if "\n" in description.strip():
            raise _fail(file, key, "the description is one line")
        clusters[cluster] = description.strip()
    return clusters


def _crosswalk(file: Path, name: str, raw: Any, clusters: Mapping[str, str]) -> dict[str, str]:
    where = f"crosswalks.{name}"
    if not isinstance(raw, dict) or not isinstance(raw.get("map"), dict):
        raise _fail(file, where, "give 'description' and 'map' (name -> cluster id)")
    unknown = sorted(set(raw) - {"description", "map"})
    if unknown:
        raise _fail(file, where, f"unknown keys {unknown}; allowed: description, map")
    entries: dict[str, str] = {}
    spelled: dict[str, str] = {}
    for source_name, cluster in raw["map"].items():
        key = f"{where}.map.{source_name}"
        if not isinstance(source_name, str) or not source_name.strip():
            raise _fail(file, key, "a name is a non-empty string")
        if cluster not in clusters:
            raise _fail(file, key, f"maps to {cluster!r}, which is not a cluster under 'clusters'")
        matched = match_key(source_name)
        if matched in spelled:
            raise _fail(
                file,
                key,
                f"is the same name as {spelled[matched]!r} (names match ignoring case and spaces)",
            )
        spelled[matched] = source_name
        entries[matched] = cluster
    return entries


def load_taxonomy(path: str | Path) -> Taxonomy:
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaxonomyError(f"{file}: taxonomy file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TaxonomyError(f"{file}: cannot read the taxonomy: {exc}") from None
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{file}: expected the keys 'clusters' and 'crosswalks'")
    unknown = sorted(set(raw) - {"clusters", "crosswalks"})
    if unknown:
        raise TaxonomyError(f"{file}: unknown keys {unknown}; allowed: clusters, crosswalks")
    clusters = _clusters(file, raw.get("clusters"))
    walks = raw.get("crosswalks") or {}
    if not isinstance(walks, dict):
        raise _fail(file, "crosswalks", "give a mapping of crosswalk name -> description and map")
    crosswalks = {}
    for name, walk in walks.items():
        if not isinstance(name, str) or not CLUSTER_ID.match(name) or name == ANY_CROSSWALK:
            raise _fail(file, f"crosswalks.{name}", "a crosswalk name is lower-case and '_'")
        crosswalks[name] = _crosswalk(file, name, walk, clusters)
    return Taxonomy(str(file), clusters, crosswalks)
