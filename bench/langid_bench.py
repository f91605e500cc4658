"""Language ID: accuracy on real sentences, and throughput of the Spark stage vs the raw model.

    .venv/bin/python bench/langid_bench.py [--rows 300000] [--rounds 9] [--partitions 4]

(a) Accuracy per language on ../shared/data/ud (24 languages, sentences nobody here tuned on):
    our identifier against the raw fastText model's own predict on the same strings. Texts
    under `min_letters` are `und` for us; on the texts we judge, the two must agree exactly.
(b) Throughput: the raw model's batch predict per core (texts/s; on one core with the other
    idle, and on both cores at once) against the language-ID stage in Spark local[2] (texts
    predicted per second per core, three texts a row), measured in alternating rounds; the
    figures are the median ratios.
Writes bench/results/langid.json. Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from jobs.config import DEFAULT_LID_MODEL, shipped_model_name  # noqa: E402
from jobs.runner import build_session  # noqa: E402
from jobs.stages.langid import langid_stage, ship_model  # noqa: E402
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


def _raw_on_one_core(texts: int, ready: Any, results: Any) -> None:
    """One of the processes of :func:`raw_on_every_core`."""
    model = identifier(str(DEFAULT_LID_MODEL))
    pool = long_texts(LangIdSettings(model_file="-").min_letters)
    batch = (pool * (texts // len(pool) + 1))[:texts]
    raw_seconds(model, batch[:20_000])
    ready.wait()
    results.put(texts / raw_seconds(model, batch))


def raw_on_every_core(texts: int, cores: int) -> float:
    """The raw model's batch predict per core with every core busy, one process each (the
    load the stage puts on the machine): mean texts/s of the processes."""
    context = multiprocessing.get_context("spawn")
    ready, results = context.Barrier(cores), context.Queue()
    workers = [
        context.Process(target=_raw_on_one_core, args=(texts, ready, results)) for _ in range(cores)
    ]
    for worker in workers:
        worker.start()
    rates = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    return statistics.mean(rates)


def process_cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of this machine's JVMs and PySpark workers (Linux /proc): where
    a stage run's time goes. Empty elsewhere."""
    totals: dict[str, float] = defaultdict(float)
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        kind = "jvm" if "java" in command else "python_workers" if "pyspark" in command else None
        if kind:
            totals[kind] += (int(fields[11]) + int(fields[12])) / tick
    return dict(totals)


def rendered_rows(texts: list[str], rows: int, work: Path) -> Path:
    """``rows`` rendered rows as Parquet, three texts each, cycling through ``texts``."""
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
    return path


def one_round(
    round_: int, measures: dict[str, Callable[[], Any]], predicted: int
) -> dict[str, Any]:
    """The three measures of one round; the order turns every round, so a steady drift
    favours none of them."""
    figures: dict[str, Any] = {}
    names = list(measures)
    for name in names[round_ % 3 :] + names[: round_ % 3]:
        figures[name] = measures[name]()
    seconds, cpu = figures["stage"]
    per_core = predicted / seconds / 2
    return {
        "raw_texts_per_s_one_core": round(figures["raw_one_core"]),
        "raw_texts_per_s_per_core_every_core_busy": round(figures["raw_every_core"]),
        "stage_texts_per_s_per_core": round(per_core),
        "ratio": round(per_core / figures["raw_one_core"], 3),
        "ratio_same_load": round(per_core / figures["raw_every_core"], 3),
        "stage_seconds": round(seconds, 2),
        "stage_cpu_seconds": cpu,
    }


def throughput(
    texts: list[str],
    rows: int,
    work: Path,
    settings: LangIdSettings,
    rounds: int,
    partitions: int,
) -> dict[str, object]:
    """Raw model and Spark stage, measured in alternation: this machine's speed drifts by up
    to 40% over minutes, so each round measures all three under the same conditions (and
    the order turns, so a steady drift favours none). The raw model runs while Spark is
    idle, once in one process on one core and once in one process per core at the same time
    (the load the stage puts on the machine); the stage predicts three texts a row on
    local[2], so its rate per core is texts / seconds / 2. Each task costs about 40 ms of
    Python-UDF setup, so the rows go in ``partitions`` of 75,000 by default, where a 128 MB
    input split of this Parquet holds about 370,000: the figure is the stage's steady rate,
    not task start-up."""
    path = rendered_rows(texts, rows, work)
    predicted = 3 * rows
    # The same core-seconds of work as the stage: half its texts on one core.
    model = identifier(str(DEFAULT_LID_MODEL))
    batch = (texts * (predicted // 2 // len(texts) + 1))[: predicted // 2]
    spark = build_session(
        "instructmill-langid-bench",
        master="local[2]",
        conf={"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"},
    )
    measured = []
    try:
        ship_model(spark, str(DEFAULT_LID_MODEL), settings)
        frame = spark.read.parquet(str(path)).repartition(partitions).cache()
        frame.count()
        stage = langid_stage(settings)
        raw_seconds(model, batch[:20_000])
        # The first run starts the Python workers and loads the model in each.
        frame.transform(stage).write.format("noop").mode("overwrite").save()

        def stage_run() -> tuple[float, dict[str, float]]:
            before = process_cpu_seconds()
            start = time.perf_counter()
            frame.transform(stage).write.format("noop").mode("overwrite").save()
            seconds = time.perf_counter() - start
            after = process_cpu_seconds()
            return seconds, {k: round(after[k] - before.get(k, 0.0), 2) for k in after}

        measures = {
            "raw_one_core": lambda: len(batch) / raw_seconds(model, batch),
            "raw_every_core": lambda: raw_on_every_core(len(batch), 2),
            "stage": stage_run,
        }
        for round_ in range(rounds):
            measured.append(one_round(round_, measures, predicted))
            print(json.dumps(measured[-1]), flush=True)
    finally:
        spark.stop()
    ratios = [round_["ratio"] for round_ in measured]
    same_load = [round_["ratio_same_load"] for round_ in measured]
    return {
        "rows": rows,
        "partitions": partitions,
        "texts_predicted_per_stage_run": predicted,
        "raw_texts_per_run": len(batch),
        "rounds": measured,
        "stage_vs_raw_per_core_median": statistics.median(ratios),
        "stage_vs_raw_per_core_min": min(ratios),
        "stage_vs_raw_per_core_max": max(ratios),
        "stage_vs_raw_every_core_busy_median": statistics.median(same_load),
        "stage_vs_raw_every_core_busy_min": min(same_load),
        "stage_vs_raw_every_core_busy_max": max(same_load),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--partitions", type=int, default=4)
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
    results["throughput"] = throughput(
        texts, args.rows, args.work, settings, args.rounds, args.partitions
    )
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
