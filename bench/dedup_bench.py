"""Dedup: quality against exact Jaccard, agreement with datasketch, and scaling on local[2].

    .venv/bin/python bench/dedup_bench.py [--part quality|agreement|scaling|all]
                                          [--sizes 250000,500000,1000000,2000000]

(a) quality: a near-duplicate set made from real sentences (../shared/data/ud, 24 languages,
    three consecutive sentences a document) with planted edits (word or character deletions,
    insertions and substitutions at 0-35%). Truth is the exact Jaccard similarity of the
    shingle sets (``udfs.minhash.shingles``) >= the threshold, for every pair that shares a
    shingle. Reported: precision, recall and F1 over pairs (two documents predicted the same
    when they land in one cluster) and over documents (has a near-duplicate or not).
(b) agreement: the kept set of our Spark pipeline against datasketch's single-machine
    ``MinHashLSH`` (same signatures, bands and rows; candidates verified by the same
    estimated Jaccard, union-find, smallest id kept) on 20,000 records.
(c) scaling: time of the dedup stage (signatures, exact groups, LSH, verification,
    components, representatives) at each size, records of two UD sentences with 10%
    near-duplicates; and the driver process's peak memory.
Writes bench/results/dedup.json. Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from collections import defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from jobs.config import DedupConfig  # noqa: E402
from jobs.runner import build_session  # noqa: E402
from jobs.stages.dedup import DedupPlan, dedup_decisions  # noqa: E402
from udfs.minhash import estimated_jaccard, minhasher, to_datasketch  # noqa: E402
from udfs.scripts import letters_and_scripts  # noqa: E402
from udfs.shingles import normalise_for_dedup, shingles, uses_char_ngrams  # noqa: E402

UD = ROOT.parent / "shared" / "data" / "ud"
THRESHOLD = 0.7


def ud_sentences() -> dict[str, list[str]]:
    by_language: dict[str, list[str]] = defaultdict(list)
    for file in sorted(UD.glob("*.jsonl")):
        for line in file.open(encoding="utf-8"):
            record = json.loads(line)
            by_language[record["lang"]].append(record["text"].replace("\n", " "))
    return by_language


def edit(text: str, rate: float, rng: random.Random) -> str:
    """Delete, insert or substitute about ``rate`` of the tokens (words, or characters for
    scripts written without spaces)."""
    _, (script,) = letters_and_scripts([text])
    by_char = uses_char_ngrams(script)
    tokens = list(text) if by_char else text.split()
    out: list[str] = []
    for token in tokens:
        roll = rng.random()
        if roll < rate / 3:
            continue
        if roll < 2 * rate / 3:
            out.append(rng.choice(tokens))
        elif roll < rate:
            out.extend([token, rng.choice(tokens)])
        else:
            out.append(token)
    return ("" if by_char else " ").join(out) or text


def quality_set(seed: int = 20261121, held_out: bool = False) -> list[str]:
    """The development set: documents of three consecutive sentences, each with up to three
    variants by deletions, insertions and substitutions. ``held_out``: a second set built
    differently (two sentences a document from other offsets, edits by swapping neighbours
    and substituting), used only to check the defaults chosen on the first."""
    rng = random.Random(seed + 1 if held_out else seed)
    size, offset = (2, 1) if held_out else (3, 0)
    documents: list[str] = []
    for _, sentences in sorted(ud_sentences().items()):
        for start in range(offset, len(sentences) - size + 1, size):
            base = " ".join(sentences[start : start + size])
            documents.append(base)
            if rng.random() < 0.5:
                for _ in range(rng.randint(1, 3)):
                    rate = rng.uniform(0.0, 0.35)
                    change = shuffle_edit if held_out else edit
                    documents.append(change(base, rate, rng))
    return documents


def shuffle_edit(text: str, rate: float, rng: random.Random) -> str:
    """Swap about ``rate / 2`` of neighbouring token pairs and substitute ``rate / 2``."""
    _, (script,) = letters_and_scripts([text])
    by_char = uses_char_ngrams(script)
    tokens = list(text) if by_char else text.split()
    for i in range(len(tokens) - 1):
        roll = rng.random()
        if roll < rate / 2:
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
        elif roll < rate:
            tokens[i] = rng.choice(tokens)
    return ("" if by_char else " ").join(tokens) or text


def true_pairs(documents: list[str], threshold: float) -> set[tuple[int, int]]:
    sets = [set(shingles(text)) for text in documents]
    index: dict[bytes, list[int]] = defaultdict(list)
    for i, shingle_set in enumerate(sets):
        for shingle in shingle_set:
            index[shingle].append(i)
    candidates = {pair for members in index.values() for pair in combinations(members, 2)}
    return {
        (i, j)
        for i, j in candidates
        if len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= threshold
    }


def spark_clusters(spark: Any, documents: list[str], settings: DedupConfig) -> list[str]:
    """dup_cluster per document, in order."""
    frame = spark.createDataFrame(
        [
            ("bench", f"{i:08d}", f"{i:08d}", "und", "x", "y", text, None)
            for i, text in enumerate(documents)
        ],
        "source string, source_key string, id string, language string, instruction string, "
        "response string, dedup_text string, reason string",
    )
    decided = {
        row["source_key"]: row["dup_cluster"]
        for row in dedup_decisions(frame, DedupPlan.of(settings)).collect()
    }
    return [decided[f"{i:08d}"] for i in range(len(documents))]


def scores(predicted: set[tuple[int, int]], truth: set[tuple[int, int]]) -> dict[str, float]:
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def quality(spark: Any, settings: DedupConfig, held_out: bool = False) -> dict[str, Any]:
    documents = quality_set(held_out=held_out)
    truth = true_pairs(documents, THRESHOLD)
    clusters = spark_clusters(spark, documents, settings)
    members: dict[str, list[int]] = defaultdict(list)
    for i, cluster in enumerate(clusters):
        members[cluster].append(i)
    predicted = {pair for group in members.values() for pair in combinations(sorted(group), 2)}
    truly_duplicated = {i for pair in truth for i in pair}
    predicted_duplicated = {i for pair in predicted for i in pair}
    everyone = set(range(len(documents)))
    doc_truth = {(i, i) for i in truly_duplicated}
    doc_predicted = {(i, i) for i in predicted_duplicated}
    plan = DedupPlan.of(settings)
    return {
        "settings": {
            "num_perm": settings.num_perm,
            "bands": plan.bands,
            "rows": plan.rows,
            "threshold": settings.threshold,
        },
        "documents": len(documents),
        "true_pairs": len(truth),
        "predicted_pairs": len(predicted),
        "pairs": scores(predicted, truth),
        "documents_with_a_duplicate": scores(doc_predicted, doc_truth),
        "documents_without": len(everyone - truly_duplicated),
    }


class UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def agreement(spark: Any, size: int = 20_000) -> dict[str, Any]:
    from datasketch import MinHashLSH

    rng = random.Random(5)
    sentences = [s for group in ud_sentences().values() for s in group]
    documents: list[str] = []
    while len(documents) < size:
        if documents and rng.random() < 0.3:
            documents.append(edit(rng.choice(documents), rng.uniform(0.0, 0.3), rng))
        else:
            documents.append(" ".join(rng.sample(sentences, 2)))
    settings = DedupConfig(threshold=THRESHOLD)
    clusters = spark_clusters(spark, documents, settings)
    ours = {i for i, cluster in enumerate(clusters) if cluster == f"{i:08d}"}

    hasher = minhasher(settings.num_perm, settings.seed, settings.word_ngram, settings.char_ngram)
    signatures = hasher.signatures(documents)
    plan = DedupPlan.of(settings)
    bands, rows = plan.bands, plan.rows
    lsh = MinHashLSH(num_perm=settings.num_perm, params=(bands, rows))
    sketches = [to_datasketch(signature, seed=settings.seed) for signature in signatures]
    exact: dict[str, int] = {}
    union = UnionFind(len(documents))
    for i, (text, sketch) in enumerate(zip(documents, sketches, strict=True)):
        normalised = normalise_for_dedup(text)
        if normalised in exact:  # exact duplicates first, as the pipeline does
            union.union(exact[normalised], i)
            continue
        exact[normalised] = i
        lsh.insert(i, sketch)
    for i in set(exact.values()):
        for j in lsh.query(sketches[i]):
            if j != i and estimated_jaccard(signatures[i], signatures[j]) >= THRESHOLD:
                union.union(i, j)
    reference = {i for i in range(len(documents)) if union.find(i) == i}
    return {
        "records": len(documents),
        "bands": bands,
        "rows": rows,
        "kept_ours": len(ours),
        "kept_datasketch": len(reference),
        "kept_in_both": len(ours & reference),
        "kept_set_jaccard": round(len(ours & reference) / len(ours | reference), 5),
        "records_decided_differently": len(ours ^ reference),
    }


def scaling_input(folder: Path, size: int, seed: int = 11) -> Path:
    path = folder / f"records-{size}.parquet"
    if path.exists():
        return path
    rng = random.Random(seed)
    sentences = [s for group in ud_sentences().values() for s in group]
    texts: list[str] = []
    for i in range(size):
        if texts and rng.random() < 0.1:
            texts.append(edit(texts[rng.randrange(len(texts))], rng.uniform(0.0, 0.2), rng))
        else:
            texts.append(f"{i} " + " ".join(rng.sample(sentences, 2)))
    table = pa.table(
        {
            "source": ["bench"] * size,
            "source_key": [f"{i:09d}" for i in range(size)],
            "id": [f"{i:09d}" for i in range(size)],
            "language": ["und"] * size,
            "instruction": ["x"] * size,
            "response": ["y"] * size,
            "dedup_text": texts,
            "reason": pa.nulls(size, pa.string()),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=100_000)
    return path


def resident_mb() -> float:
    """The driver process's resident memory now (not its peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024)
    return float("nan")


def scaling(spark: Any, sizes: list[int], work: Path) -> dict[str, Any]:
    plan = DedupPlan.of(DedupConfig(threshold=THRESHOLD))
    # Inputs are generated in a child process, so the driver's memory is only the job's.
    missing = [size for size in sizes if not (work / f"records-{size}.parquet").exists()]
    if missing:
        subprocess.run(
            [sys.executable, __file__, "--part", "generate", "--sizes",
             ",".join(map(str, missing)), "--work", str(work)],
            check=True,
        )  # fmt: skip
    # Python workers start and load on the first job: not part of any size's time.
    dedup_decisions(spark.read.parquet(str(scaling_input(work, 10_000))), plan).count()
    results = []
    for size in sizes:
        path = scaling_input(work, size)
        frame = spark.read.parquet(str(path))
        start = time.perf_counter()
        decided = dedup_decisions(frame, plan)
        duplicates = decided.where("is_duplicate").count()
        seconds = time.perf_counter() - start
        results.append(
            {
                "records": size,
                "seconds": round(seconds, 1),
                "records_per_s": round(size / seconds),
                "duplicates": duplicates,
                "driver_python_rss_mb": resident_mb(),
                "driver_python_peak_rss_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                ),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    by_size = {entry["records"]: entry["seconds"] for entry in results}
    ratios = {
        f"{4 * size}/{size}": round(by_size[4 * size] / by_size[size], 2)
        for size in by_size
        if 4 * size in by_size
    }
    return {"runs": results, "time_ratio_for_4x_records": ratios}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--part", default="all", choices=["quality", "agreement", "scaling", "all", "generate"]
    )
    parser.add_argument("--sizes", default="250000,500000,1000000,2000000")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-dedup")
    args = parser.parse_args()
    if args.part == "generate":
        for size in (int(size) for size in args.sizes.split(",")):
            scaling_input(args.work, size)
        return 0
    out = ROOT / "bench" / "results" / "dedup.json"
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    spark = build_session(
        "instructmill-dedup-bench",
        master="local[2]",
        conf={
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.memory": "8g",
            "spark.sql.shuffle.partitions": "16",
        },
    )
    try:
        if args.part in ("quality", "all"):
            results["quality"] = quality(spark, DedupConfig(threshold=THRESHOLD))
            print(json.dumps(results["quality"], indent=2), flush=True)
            results["quality_held_out"] = quality(
                spark, DedupConfig(threshold=THRESHOLD), held_out=True
            )
            print(json.dumps(results["quality_held_out"], indent=2), flush=True)
        if args.part in ("agreement", "all"):
            results["agreement"] = agreement(spark)
            print(json.dumps(results["agreement"], indent=2), flush=True)
        if args.part in ("scaling", "all"):
            sizes = [int(size) for size in args.sizes.split(",")]
            results["scaling"] = scaling(spark, sizes, args.work)
            print(json.dumps(results["scaling"], indent=2), flush=True)
    finally:
        spark.stop()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
