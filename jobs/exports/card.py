"""The documents an export's consumers read, in pure Python over the export manifest and the
exported rows' counts (one aggregate by split, language, task cluster, source and license):

- ``README.md``, the Hub dataset card: a YAML header the Hub reads (``configs`` with each
  split's files, ``language``, ``license``, ``task_categories``, ``size_categories``) and a
  body with the counts, the selection, a warning for non-commercial licenses and how to load it;
- ``dataset_info.json`` for the LLaMA-Factory formats: one entry per split with files, as
  LLaMA-Factory's ``data/README.md`` documents them (``file_name`` is the split's folder).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

COUNT_KEYS = ("split", "language", "task_cluster", "source", "license")
Counts = Mapping[tuple[str, ...], int]  # COUNT_KEYS values -> rows

# The Hub's size buckets (datasets' size_categories.json): below each bound, its label.
SIZE_CATEGORIES = (
    (10**3, "n<1K"),
    (10**4, "1K<n<10K"),
    (10**5, "10K<n<100K"),
    (10**6, "100K<n<1M"),
    (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"),
    (10**9, "100M<n<1B"),
    (10**10, "1B<n<10B"),
    (10**11, "10B<n<100B"),
    (10**12, "100B<n<1T"),
)
# Every export is text generation (instruction in, response out); a cluster adds the Hub task
# its source data is known for. Clusters not listed add nothing.
TEXT_GENERATION = "text-generation"
HUB_TASKS = {
    "question-answering": (
        "extractive_qa", "closed_book_qa", "reading_comprehension", "conversational_qa",
        "question_answering",
    ),
    "text-classification": (
        "sentiment", "entailment", "topic_classification", "text_classification",
        "intent_classification", "toxicity_detection", "stance_detection", "fact_verification",
    ),
    "token-classification": ("named_entity_recognition", "linguistic_analysis"),
    "translation": ("translation",),
    "summarization": ("summarization",),
}  # fmt: skip
TASK_CATEGORIES = {cluster: task for task, clusters in HUB_TASKS.items() for cluster in clusters}
UNDETERMINED = "und"
# A Hub license id (cc-by-4.0, apache-2.0); a registry text that is not one is "other".
HUB_LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
DATASET_PREFIX = "instructmill"
LLAMA_FACTORY: dict[str, dict[str, Any]] = {
    "alpaca": {
        "formatting": "alpaca",
        "columns": {"prompt": "instruction", "query": "input", "response": "output"},
    },
    "sharegpt": {
        "formatting": "sharegpt",
        "columns": {"messages": "conversations"},
        "tags": {
            "role_tag": "from",
            "content_tag": "value",
            "user_tag": "human",
            "assistant_tag": "gpt",
        },
    },
}


def size_category(rows: int) -> str:
    return next((label for bound, label in SIZE_CATEGORIES if rows < bound), "n>1T")


def totals(counts: Counts, key: str) -> dict[str, int]:
    """Rows per value of ``key``, values sorted."""
    index = COUNT_KEYS.index(key)
    found: dict[str, int] = defaultdict(int)
    for values, rows in counts.items():
        found[str(values[index])] += rows
    return dict(sorted(found.items()))


def hub_license(name: str) -> str:
    lowered = name.strip().lower()
    return lowered if HUB_LICENSE_ID.match(lowered) else "other"


def non_commercial(names: Sequence[str]) -> list[str]:
    """Licenses with an ``nc`` part (cc-by-nc-4.0, cc-by-nc-sa-4.0), as written."""
    return sorted({n for n in names if "nc" in re.split(r"[^a-z0-9]+", n.lower())})


def task_categories(clusters: Sequence[str]) -> list[str]:
    found = {TASK_CATEGORIES[c] for c in clusters if c in TASK_CATEGORIES}
    return [TEXT_GENERATION, *sorted(found)]


def data_files(manifest: Mapping[str, Any]) -> list[dict[str, str]]:
    """The Hub's ``data_files`` of the default config: a glob per split with files."""
    return [
        {"split": split, "path": f"{entry['folder']}/{split}-*"}
        for split, entry in manifest["splits"].items()
        if entry["files"]
    ]


def card_metadata(manifest: Mapping[str, Any], counts: Counts) -> dict[str, Any]:
    """The YAML header of the dataset card."""
    metadata: dict[str, Any] = {}
    files = data_files(manifest)
    if files:
        metadata["configs"] = [{"config_name": "default", "data_files": files}]
    languages = [name for name in totals(counts, "language") if name != UNDETERMINED]
    if languages:
        metadata["language"] = languages
    licenses = sorted({hub_license(name) for name in totals(counts, "license")})
    if licenses:
        metadata["license"] = licenses[0] if len(licenses) == 1 else licenses
    metadata["task_categories"] = task_categories(list(totals(counts, "task_cluster")))
    metadata["size_categories"] = [size_category(manifest["totals"]["written"])]
    metadata["tags"] = ["instruction-tuning", DATASET_PREFIX]
    return metadata


def _table(counts: Counts, key: str, splits: Sequence[str]) -> list[str]:
    split_index, index = COUNT_KEYS.index("split"), COUNT_KEYS.index(key)
    cells: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for values, rows in counts.items():
        cells[str(values[index])][str(values[split_index])] += rows
    lines = [f"| {key} | {' | '.join(splits)} | total |", f"|---|{'---:|' * (len(splits) + 1)}"]
    for value in sorted(cells):
        row = [cells[value].get(split, 0) for split in splits]
        lines.append(f"| {value} | {' | '.join(f'{n:,}' for n in row)} | {sum(row):,} |")
    return lines


def _source_licenses(counts: Counts) -> dict[str, list[str]]:
    source, license_ = COUNT_KEYS.index("source"), COUNT_KEYS.index("license")
    found: dict[str, set[str]] = defaultdict(set)
    for values in counts:
        found[str(values[source])].add(str(values[license_]))
    return {name: sorted(licenses) for name, licenses in sorted(found.items())}


def _warning(counts: Counts) -> list[str]:
    by_source = _source_licenses(counts)
    flagged = non_commercial([name for names in by_source.values() for name in names])
    if not flagged:
        return []
    sources = [s for s, names in by_source.items() if set(names) & set(flagged)]
    rows = sum(n for values, n in counts.items() if values[COUNT_KEYS.index("license")] in flagged)
    return [
        f"> **Non-commercial licenses.** {rows:,} rows come from sources under "
        f"{', '.join(flagged)} ({', '.join(sources)}): they may not be used for commercial "
        "purposes, and neither may a model trained on them where the license reaches it. "
        'Export without them (`--where "source NOT IN (...)"`) for commercial use.',
        "",
    ]


def _loading(manifest: Mapping[str, Any]) -> list[str]:
    builder = "parquet" if manifest["file_format"] == "parquet" else "json"
    files = {entry["split"]: entry["path"] for entry in data_files(manifest)}
    lines = [
        "```python",
        "from datasets import load_dataset",
        "",
        "# this folder, downloaded or on the Hub: the header above names each split's files",
        'dataset = load_dataset("path/to/this/folder")  # or "user/dataset" on the Hub',
        "# or the files themselves",
        f'dataset = load_dataset("{builder}", data_files={json.dumps(files)})',
        "```",
    ]
    if manifest["format"] in LLAMA_FACTORY:
        names = [f"{DATASET_PREFIX}_{split}" for split in files]
        lines += [
            "",
            "LLaMA-Factory: `dataset_info.json` here describes each split with files "
            f"({', '.join(f'`{n}`' for n in names)}); in the training YAML:",
            "",
            "```yaml",
            "dataset_dir: path/to/this/folder",
            f"dataset: {names[0] if names else DATASET_PREFIX + '_train'}",
            "```",
        ]
    return lines


def _overview(manifest: Mapping[str, Any]) -> list[str]:
    kind = "mixture" if manifest.get("input_job") == "mix" else "build"
    run = manifest.get("input_run_id") or "(no run id in its manifest)"
    file_kind = "Parquet" if manifest["file_format"] == "parquet" else "JSON Lines"
    if manifest.get("compression"):
        file_kind += f", {manifest['compression']}"
    selection = [
        f"split `{manifest['split']}`",
        f"filter `{manifest['where']}`" if manifest.get("where") else "no filter",
    ]
    extra = manifest.get("columns") or []
    return [
        f"# instructmill export ({manifest['format']})",
        "",
        f"{manifest['totals']['written']:,} instruction/response pairs exported by instructmill "
        f"from the {kind} output `{manifest['input']}` ({kind} run `{run}`), "
        f"{', '.join(selection)}.",
        "",
        f"Format `{manifest['format']}` ({file_kind}): {manifest['format_summary']}."
        + (f" Kept beside the pair: {', '.join(f'`{c}`' for c in extra)}." if extra else ""),
        "",
    ]


def _splits(manifest: Mapping[str, Any]) -> list[str]:
    lines = ["| split | rows | files |", "|---|---:|---:|"]
    for split, entry in manifest["splits"].items():
        lines.append(f"| {split} | {entry['written']:,} | {len(entry['files'])} |")
    return lines


def dataset_card(manifest: Mapping[str, Any], counts: Counts) -> str:
    """The ``README.md`` text: the YAML header between ``---`` lines, then the body."""
    header = yaml.safe_dump(
        card_metadata(manifest, counts), sort_keys=False, allow_unicode=True, width=1000
    )
    splits = list(manifest["splits"])
    body = [*_overview(manifest), *_warning(counts), "## Splits", "", *_splits(manifest), ""]
    body += ["## Loading", "", *_loading(manifest), ""]
    for key, title in (("language", "language"), ("task_cluster", "task cluster")):
        body += [f"## Rows per {title}", "", *_table(counts, key, splits), ""]
    body += ["## Rows per source", "", *_table(counts, "source", splits), ""]
    licenses = _source_licenses(counts)
    body += ["Licenses: " + "; ".join(f"{s}: {', '.join(n)}" for s, n in licenses.items()), ""]
    return f"---\n{header}---\n\n" + "\n".join(body)


def dataset_info(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """LLaMA-Factory's ``dataset_info.json`` for its formats (None for the others)."""
    entry = LLAMA_FACTORY.get(manifest["format"])
    if entry is None:
        return None
    return {
        f"{DATASET_PREFIX}_{split}": {"file_name": split_entry["folder"], **entry}
        for split, split_entry in manifest["splits"].items()
        if split_entry["files"]
    }
