"""Build the Hugging Face datasets fixtures under data/samples/hf/ from the sample files.

Uses the `datasets` library (a dev dependency) to WRITE them, exactly as a user's own
`save_to_disk` / `to_parquet` would; instructmill itself reads them without `datasets`
(format: hf). Every text comes from the samples in this folder (see README.md); the records
kept bad on purpose there (nli-en-046, nli-fr-046, qa-de-031) are left out.

    hf/xnli_en/, hf/xnli_fr/   DatasetDict.save_to_disk: validation (first 30) and test (rest)
    hf/rte_en/                 Dataset.save_to_disk in super_glue/rte's shape
    hf/reviews/                Dataset.save_to_disk in rotten_tomatoes' shape (text, label)
    hf/xquad_es/               Hub refs/convert/parquet layout: xquad.es/validation/0000.parquet
    hf/xnli_fr_parquet/        Hub data/ layout: data/{split}-00000-of-00001.parquet

Usage (from the repository root):

    .venv/bin/python data/samples/make_hf.py
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # writing local files never needs the Hub

import datasets
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
OUT = HERE / "hf"
VALIDATION_ROWS = 30
NLI_LABELS = ["entailment", "neutral", "contradiction"]
NLI = datasets.Features(
    {
        "premise": datasets.Value("string"),
        "hypothesis": datasets.Value("string"),
        "label": datasets.ClassLabel(names=NLI_LABELS),
    }
)
RTE = datasets.Features(
    {
        "premise": datasets.Value("string"),
        "hypothesis": datasets.Value("string"),
        "idx": datasets.Value("int32"),
        "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
    }
)
SQUAD = datasets.Features(
    {
        "id": datasets.Value("string"),
        "context": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answers": datasets.Sequence(
            {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}
        ),
    }
)


def nli_records(name: str) -> list[dict]:
    """The good records of an NLI sample file, in file order."""
    records = []
    for line in (HERE / name).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        good = isinstance(record.get("label"), int) and record["label"] in (0, 1, 2)
        if good and record.get("premise") and record.get("hypothesis"):
            records.append(record)
    assert len(records) == 45, f"{name}: expected 45 good records, found {len(records)}"
    return records


def columns(records: list[dict], names: list[str]) -> dict[str, list]:
    return {name: [record[name] for record in records] for name in names}


def stable_state(folder: Path) -> None:
    """datasets writes a random _fingerprint into state.json; a hash of the data files keeps
    re-running this script from changing the committed files."""
    for state_file in folder.rglob("state.json"):
        state = json.loads(state_file.read_text(encoding="utf-8"))
        digest = hashlib.sha256()
        for entry in state["_data_files"]:
            digest.update((state_file.parent / entry["filename"]).read_bytes())
        state["_fingerprint"] = digest.hexdigest()[:16]
        state_file.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")


def xnli(name: str) -> datasets.DatasetDict:
    records = nli_records(name)
    names = ["premise", "hypothesis", "label"]
    return datasets.DatasetDict(
        {
            "validation": datasets.Dataset.from_dict(
                columns(records[:VALIDATION_ROWS], names), features=NLI, split="validation"
            ),
            "test": datasets.Dataset.from_dict(
                columns(records[VALIDATION_ROWS:], names), features=NLI, split="test"
            ),
        }
    )


def rte() -> datasets.Dataset:
    records = nli_records("nli_en.jsonl")
    return datasets.Dataset.from_dict(
        {
            **columns(records, ["premise", "hypothesis"]),
            "idx": list(range(len(records))),
            "label": [0 if record["label"] == 0 else 1 for record in records],
        },
        features=RTE,
        split="validation",
    )


REVIEWS = datasets.Features(
    {
        "id": datasets.Value("string"),
        "lang": datasets.Value("string"),
        "text": datasets.Value("string"),
        "label": datasets.ClassLabel(names=["neg", "pos"]),
    }
)


def reviews() -> datasets.Dataset:
    """The well-formed records of sentiment_reviews.jsonl in rotten_tomatoes' shape (text,
    label 0 neg / 1 pos), with their id and language."""
    records = []
    for line in (HERE / "sentiment_reviews.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("label") in ("positive", "negative"):
            if isinstance(record.get("text"), str) and record["text"].strip() and record.get("id"):
                records.append(record)
    # 120 distinct reviews and the file's 3 planted (near-)duplicates, which dedup removes.
    assert len(records) == 123, f"expected 123 reviews, found {len(records)}"
    return datasets.Dataset.from_dict(
        {
            **columns(records, ["id", "lang", "text"]),
            "label": [int(record["label"] == "positive") for record in records],
        },
        features=REVIEWS,
        split="train",
    )


def xquad_es() -> datasets.Dataset:
    rows = [row for row in pq.read_table(HERE / "qa_es_de.parquet").to_pylist()
            if row["lang"] == "es"]  # fmt: skip
    assert len(rows) == 30 and all(row["answers"]["text"] for row in rows)
    return datasets.Dataset.from_dict(
        columns(rows, ["id", "context", "question", "answers"]), features=SQUAD, split="validation"
    )


def main() -> None:
    datasets.disable_progress_bars()
    for folder in ("xnli_en", "xnli_fr", "rte_en", "xquad_es", "xnli_fr_parquet", "reviews"):
        shutil.rmtree(OUT / folder, ignore_errors=True)
    xnli("nli_en.jsonl").save_to_disk(str(OUT / "xnli_en"))
    french = xnli("nli_fr.jsonl")
    french.save_to_disk(str(OUT / "xnli_fr"))
    rte().save_to_disk(str(OUT / "rte_en"))
    reviews().save_to_disk(str(OUT / "reviews"))
    for split, dataset in french.items():
        target = OUT / "xnli_fr_parquet" / "data" / f"{split}-00000-of-00001.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        dataset.to_parquet(str(target))
    target = OUT / "xquad_es" / "xquad.es" / "validation" / "0000.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    xquad_es().to_parquet(str(target))
    stable_state(OUT)
    size = sum(path.stat().st_size for path in OUT.rglob("*") if path.is_file())
    print(f"wrote {OUT} ({size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
