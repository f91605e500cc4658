"""Language ID: accuracy on real sentences, and throughput of the Spark stage vs the raw model.

    .venv/bin/python bench/langid_bench.py [--rows 300000] [--rounds 5]

(a) Accuracy per language on ../shared/data/ud (24 languages, sentences nobody here tuned on):
    our identifier against the raw fastText model's own predict on the same strings. Texts
    under `min_letters` are `und` for us; on the texts we judge, the two must agree exactly.
(b) Throughput: the raw model's batch predict on one core (texts/s) against the language-ID
    stage in Spark local[2] (texts predicted per second per core, three texts a row),
    measured in alternating rounds; the figure is the median ratio.
Writes bench/results/langid.json. Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import unicodedata
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from jobs.config import DEFAULT_LID_MODEL, shipped_model_name  # noqa: E402
from jobs.langid import langid_stage, ship_model  # noqa: E402
from jobs.session import build_session  # noqa: E402
from udfs.langid import LangIdSettings, LanguageIdentifier, identifier  # noqa: E402
from udfs.render_batches import RENDER_SCHEMA  # noqa: E402
from udfs.scripts import letter_counts  # noqa: E402

UD = ROOT.parent / "shared" / "data" / "ud"


def load_ud() -> list[tuple[str, str]]:
    pairs = []
    for file in sorted(UD.glob("*.jsonl")):
        for line in file.open(encoding="utf-8"):
            record = json.loads(line)
            pairs.append((record["lang"], record["text"]))
    return pairs


def accuracy(settings: LangIdSettings, perturb: bool = False) -> dict[str, object]:
    """Per language; with ``min_letters: 0`` nothing is ``und`` and ours must equal raw.
    ``perturb``: the same sentences decomposed (NFD) and joined with no-break spaces, as text
    scraped from the web often is; the raw model sees them as they are."""
    model = identifier(str(DEFAULT_LID_MODEL))
    pairs = load_ud()
    if perturb:
        pairs = [
            (lang, unicodedata.normalize("NFD", text).replace(" ", "\u00a0"))
            for lang, text in pairs
        ]
    texts = [text for _, text in pairs]
    raw_labels, _ = model.raw_predict([text.replace("\n", " ") for text in texts])
    raw = [model.labels[label][0] for label in raw_labels]
    ours = model.detect(texts, settings.min_letters).codes
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (lang, _), raw_code, our_code in zip(pairs, raw, ours, strict=True):
        row = per[lang]
        row["n"] += 1
        row["raw_correct"] += raw_code == lang
        row["ours_correct"] += our_code == lang
        if our_code == "und":
            row["und"] += 1
            continue
        row["judged"] += 1
        row["raw_correct_judged"] += raw_code == lang
        row["agree_judged"] += raw_code == our_code
    table = {}
    for lang, row in sorted(per.items()):
        table[lang] = {
            "n": row["n"],
            "raw_accuracy": round(row["raw_correct"] / row["n"], 4),
            "ours_accuracy": round(row["ours_correct"] / row["n"], 4),
            "und": row["und"],
            "raw_accuracy_judged": round(row["raw_correct_judged"] / max(row["judged"], 1), 4),
            "ours_accuracy_judged": round(row["ours_correct"] / max(row["judged"], 1), 4),
            "agreement_judged": round(row["agree_judged"] / max(row["judged"], 1), 4),
        }
    judged = sum(row["judged"] for row in per.values())
    return {
        "sentences": len(pairs),
        "languages": len(per),
        "raw_accuracy": round(sum(r["raw_correct"] for r in per.values()) / len(pairs), 4),
        "ours_accuracy": round(sum(r["ours_correct"] for r in per.values()) / len(pairs), 4),
        "judged": judged,
        "raw_accuracy_judged": round(
            sum(r["raw_correct_judged"] for r in per.values()) / judged, 4
        ),
        "ours_accuracy_judged": round(sum(r["ours_correct"] for r in per.values()) / judged, 4),
        "agreement_judged": round(sum(r["agree_judged"] for r in per.values()) / judged, 4),
        "per_language": table,
    }


def long_texts(min_letters: int) -> list[str]:
    texts = [text.replace("\n", " ") for _, text in load_ud()]
    letters = letter_counts(texts)
    return [text for text, count in zip(texts, letters, strict=True) if count >= min_letters]


def raw_seconds(model: LanguageIdentifier, batch: list[str]) -> float:
    """The raw model's batch predict on one core, 10,000 texts a call."""
    start = time.perf_counter()
    for offset in range(0, len(batch), 10_000):
        model.raw_predict(batch[offset : offset + 10_000])
    return time.perf_counter() - start


def throughput(
    texts: list[str], rows: int, work: Path, settings: LangIdSettings, rounds: int
) -> dict[str, object]:
    """Raw model and Spark stage, measured in alternation: this machine's speed drifts by
    10-20% over minutes, so each round compares the two under the same conditions. The raw
    model runs in the driver while Spark is idle; the stage predicts three texts a row on
    local[2], so its rate per core is texts / seconds / 2."""
    n = len(texts)
    columns = {name: [None] * rows for name in RENDER_SCHEMA.names}
    columns["source"] = ["ud"] * rows
    columns["source_key"] = [str(i) for i in range(rows)]
    columns["id"] = columns["source_key"]
    columns["template_id"] = columns["template_hash"] = ["t"] * rows
    columns["language"] = ["und"] * rows
    columns["instruction"] = [texts[i % n] for i in range(rows)]
    columns["response"] = [texts[(i * 7 + 3) % n] for i in range(rows)]
    columns["content"] = [texts[(i * 13 + 5) % n] for i in range(rows)]
    table = pa.Table.from_pydict(columns, schema=RENDER_SCHEMA).append_column(
        "stage", pa.array(["render"] * rows)
    )
    path = work / "rendered.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=50_000)
    predicted = 3 * rows
    # The same core-seconds of work as the stage: half its texts on one core.
    model = identifier(str(DEFAULT_LID_MODEL))
    batch = (texts * (predicted // 2 // n + 1))[: predicted // 2]
    spark = build_session(
        "instructmill-langid-bench",
        master="local[2]",
        conf={"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"},
    )
    measured = []
    try:
        ship_model(spark, str(DEFAULT_LID_MODEL), settings)
        frame = spark.read.parquet(str(path)).repartition(8).cache()
        frame.count()
        stage = langid_stage(settings)
        raw_seconds(model, batch[:20_000])
        # The first run starts the Python workers and loads the model in each.
        frame.transform(stage).write.format("noop").mode("overwrite").save()
        for _ in range(rounds):
            raw = len(batch) / raw_seconds(model, batch)
            start = time.perf_counter()
            frame.transform(stage).write.format("noop").mode("overwrite").save()
            per_core = predicted / (time.perf_counter() - start) / 2
            measured.append(
                {
                    "raw_texts_per_s_one_core": round(raw),
                    "stage_texts_per_s_per_core": round(per_core),
                    "ratio": round(per_core / raw, 3),
                }
            )
    finally:
        spark.stop()
    ratios = [round_["ratio"] for round_ in measured]
    return {
        "rows": rows,
        "texts_predicted_per_stage_run": predicted,
        "raw_texts_per_run": len(batch),
        "rounds": measured,
        "stage_vs_raw_per_core_median": statistics.median(ratios),
        "stage_vs_raw_per_core_min": min(ratios),
        "stage_vs_raw_per_core_max": max(ratios),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-langid")
    args = parser.parse_args()
    settings = LangIdSettings(model_file=shipped_model_name(str(DEFAULT_LID_MODEL)))
    results: dict[str, object] = {"model": str(DEFAULT_LID_MODEL.relative_to(ROOT))}
    results["accuracy"] = accuracy(settings)
    results["accuracy_min_letters_0"] = accuracy(
        LangIdSettings(model_file=settings.model_file, min_letters=0)
    )
    results["accuracy_nfd_nbsp_min_letters_0"] = accuracy(
        LangIdSettings(model_file=settings.model_file, min_letters=0), perturb=True
    )
    texts = long_texts(settings.min_letters)
    results["throughput"] = throughput(texts, args.rows, args.work, settings, args.rounds)
    out = ROOT / "bench" / "results" / "langid.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    summary = {k: v for k, v in results.items() if not k.startswith("accuracy")}
    for key in ("accuracy", "accuracy_min_letters_0"):
        summary[key] = {k: v for k, v in results[key].items() if k != "per_language"}  # type: ignore[union-attr]
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
