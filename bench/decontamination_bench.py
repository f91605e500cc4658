"""Decontamination throughput, and field-aware dedup against whole-record dedup, on local[2].

    .venv/bin/python bench/decontamination_bench.py [--part decontamination|dedup|all]
        [--train 1000000] [--items 10000] [--dedup-records 200000]
        [--work out/bench-decontamination] [--spark K=V ...]

(a) decontamination: the build's n-gram stage (``jobs.stages.decontaminate.Decontamination``,
    13-grams, benchmark side only: every train row is ``split: train``) over ``--train``
    synthetic multilingual records (``bench/synthetic.py``: real UD sentences of 10 languages,
    one token in four substituted; ``dedup_text`` is text and title as two fields) against a
    benchmark of ``--items`` question/answer items (JSON Lines; the questions are synthetic
    texts of ~200 bytes from another seed, the answers one word of them). One train record in
    a thousand has an item's question planted inside its text: reported are the planted
    records found (and with the right item) and the clean records flagged.
(b) dedup: ``dedup_decisions`` with ``DedupConfig(match="fields")`` (the default) and with
    ``match="whole"`` on ``--dedup-records`` QA records: a passage of ~5 UD sentences
    (synthetic texts of ~550 bytes), 4-8 questions each (other UD sentences of the passage's
    language), an answer that is a word of the passage; ``dedup_text`` is passage, question
    and answer as three fields. 1% of the questions get a planted true duplicate (same
    passage and answer, the question with a one-letter typo). Reported per mode: records
    removed, planted duplicates found, distinct records removed.

Only the Spark work is timed (inputs are generated first, to Parquet under ``--work``, and
reused while their settings do not change); the Python workers are warmed up on a small file
first. Throughput is records per second per core (2 cores). Writes
bench/results/decontamination.json. Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pyspark  # noqa: E402
import synthetic  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from jobs.config import DecontaminationConfig, DedupConfig  # noqa: E402
from jobs.config.benchmarks import benchmark_plans  # noqa: E402
from jobs.config.models import BenchmarkRef  # noqa: E402
from jobs.io.staging import Staging  # noqa: E402
from jobs.runner import build_session  # noqa: E402
from jobs.stages.decontaminate import Decontamination, DecontaminationPlan  # noqa: E402
from jobs.stages.dedup import DedupPlan, dedup_decisions  # noqa: E402
from udfs.records import FIELD_SEPARATOR  # noqa: E402

MASTER = "local[2]"
CORES = 2
CHUNK = 50_000  # records per Parquet file written
ROW_GROUP = 10_000  # so Spark can split a file between tasks
WARMUP = 2_000  # records of the warm-up files
TRAIN_SEED = 20261202  # synthetic.py's default
ITEM_SEED = 777
PASSAGE_SEED = 4242
PLANT_RATE = 0.001  # train records with a benchmark question inside
TYPO_RATE = 0.01  # QA records with a planted near-duplicate (a one-letter typo)
ITEM_CHARS = 200
PASSAGE_CHARS = 550  # ~5 UD sentences
QUESTIONS = (4, 8)
MIN_QUESTION_TOKENS = 8  # words (characters for scripts without spaces: twice this)
SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "6g",
}
OUT = ROOT / "bench" / "results" / "decontamination.json"


# --- inputs ---------------------------------------------------------------------------------


class ChunkedParquet:
    """Rows to folder/part-NNNNN.parquet, CHUNK rows a file: memory stays flat."""

    def __init__(self, folder: Path, schema: pa.Schema) -> None:
        self.folder, self.schema = folder, schema
        self.rows: dict[str, list[Any]] = {name: [] for name in schema.names}
        self.files = 0
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, row: dict[str, Any]) -> None:
        for name, column in self.rows.items():
            column.append(row[name])
        if len(self.rows[self.schema.names[0]]) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.rows[self.schema.names[0]]:
            return
        table = pa.table(self.rows, schema=self.schema)
        path = self.folder / f"part-{self.files:05d}.parquet"
        pq.write_table(table, path, row_group_size=ROW_GROUP)
        self.files += 1
        self.rows = {name: [] for name in self.schema.names}


def _fresh(folder: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The stored summary of folder's inputs when they were made with these settings."""
    meta = folder / "inputs.json"
    if meta.exists():
        stored: dict[str, Any] = json.loads(meta.read_text())
        if stored.get("settings") == settings:
            return stored
    return None


def _clear(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    folder.mkdir(parents=True, exist_ok=True)


TRAIN_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("source_key", pa.string()),
        ("id", pa.string()),
        ("split", pa.string()),
        ("language", pa.string()),
        ("response", pa.string()),
        ("dedup_text", pa.string()),
    ]
)


def _insert(text: str, question: str, rng: random.Random) -> str:
    """``question`` inside ``text``, at a space (anywhere in a text without spaces)."""
    spaces = [i for i, char in enumerate(text) if char == " "]
    cut = rng.choice(spaces) if spaces else rng.randrange(len(text) + 1)
    return f"{text[:cut]} {question} {text[cut:]}"


def _answer_word(text: str, lang: str, rng: random.Random) -> str:
    if lang in synthetic.NO_SPACES:
        start = rng.randrange(max(1, len(text) - 3))
        return text[start : start + rng.randint(2, 3)]
    return rng.choice(text.split())


def decontamination_inputs(work: Path, train: int, items: int) -> dict[str, Any]:
    """work/benchmark/{items.jsonl, conf.yaml}, work/train/*.parquet and
    work/train-warmup/*.parquet; the planted records (source_key -> item id) in the summary."""
    folder = work / "decontamination"
    settings = {"train": train, "items": items, "plant_rate": PLANT_RATE, "version": 1}
    if (stored := _fresh(folder, settings)) is not None:
        return stored
    start = time.perf_counter()
    _clear(folder)
    rng = random.Random(99)
    questions: list[str] = []
    bench = folder / "benchmark"
    bench.mkdir(parents=True)
    with (bench / "items.jsonl").open("w", encoding="utf-8") as handle:
        for n, record in enumerate(
            synthetic.texts(
                synthetic.Settings(items, seed=ITEM_SEED, mean_chars=ITEM_CHARS, dup_rate=0.0)
            )
        ):
            questions.append(record["text"])
            answer = _answer_word(record["text"], record["lang"], rng)
            line = {"qid": f"q{n:06d}", "question": record["text"], "answer": answer}
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    (bench / "conf.yaml").write_text("# stands for the pipeline file the benchmark is named in\n")
    count = max(1, round(train * PLANT_RATE)) if train else 0
    planted = dict.fromkeys(sorted(rng.sample(range(train), count)), 0)
    for index in planted:
        planted[index] = rng.randrange(items)
    writers = [
        ChunkedParquet(folder / "train", TRAIN_SCHEMA),
        ChunkedParquet(folder / "train-warmup", TRAIN_SCHEMA),
    ]
    text_bytes = 0
    for i, record in enumerate(synthetic.texts(synthetic.Settings(train, seed=TRAIN_SEED))):
        text = record["text"]
        if i in planted:
            text = _insert(text, questions[planted[i]], rng)
        row = {
            "source": "bench",
            "source_key": f"{i:09d}",
            "id": f"{i:09d}",
            "split": "train",
            "language": record["lang"],
            "response": record["title"],
            "dedup_text": f"{text}{FIELD_SEPARATOR}{record['title']}",
        }
        text_bytes += len(row["dedup_text"].encode("utf-8"))
        writers[0].add(row)
        if i < WARMUP:
            writers[1].add(row)
    for writer in writers:
        writer.flush()
    summary = {
        "settings": settings,
        "planted": {f"{i:09d}": f"q{item:06d}" for i, item in planted.items()},
        "train_text_bytes": text_bytes,
        "generation_seconds": round(time.perf_counter() - start, 1),
    }
    (folder / "inputs.json").write_text(json.dumps(summary) + "\n")
    return summary


def _typo(question: str, rng: random.Random, lang: synthetic.Corpus) -> str:
    """One letter of ``question`` replaced by another letter (of the language's tokens for
    scripts without spaces); the token count stays the same."""
    letters = [i for i, char in enumerate(question) if char.isalpha()]
    if not letters:
        return question + "x"
    where = rng.choice(letters)
    while True:
        if lang.separator:
            new = rng.choice([c for c in question if c.isalpha()] + list("aeiou"))
        else:
            new = rng.choice(lang.pool)
        if new != question[where]:
            return question[:where] + new + question[where + 1 :]


def _questions(lang: synthetic.Corpus) -> list[str]:
    least = MIN_QUESTION_TOKENS * (1 if lang.separator else 2)
    return [lang.separator.join(s) for s in lang.sentences if len(s) >= least]


QA_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("source_key", pa.string()),
        ("id", pa.string()),
        ("language", pa.string()),
        ("response", pa.string()),
        ("dedup_text", pa.string()),
        ("split", pa.string()),
    ]
)


def _qa_records(size: int) -> Iterator[tuple[dict[str, str], str | None]]:
    """(record, the source_key of the record it is a planted duplicate of, or None)."""
    rng = random.Random(PASSAGE_SEED)
    pools: dict[str, list[str]] = {}
    made = 0
    # More passages than needed: the generator stops at `size` records.
    for p, passage in enumerate(
        synthetic.texts(
            synthetic.Settings(size, seed=PASSAGE_SEED, mean_chars=PASSAGE_CHARS, dup_rate=0.0)
        )
    ):
        code = passage["lang"]
        lang = synthetic.corpus(code)
        pool = pools.setdefault(code, _questions(lang))
        asked = rng.sample(pool, min(len(pool), rng.randint(*QUESTIONS)))
        copies = []
        for q, question in enumerate(asked):
            answer = _answer_word(passage["text"], code, rng)
            key = f"{p:08d}-{q:02d}"
            copies.append((question, answer, key))
            yield _qa_row(key, code, passage["text"], question, answer), None
            made += 1
            if made == size:
                return
        for n, (question, answer, key) in enumerate(copies):
            if rng.random() < TYPO_RATE:
                copy_key = f"{p:08d}-{50 + n:02d}"  # after the originals: the copy is removed
                row = _qa_row(copy_key, code, passage["text"], _typo(question, rng, lang), answer)
                yield row, key
                made += 1
                if made == size:
                    return


def _qa_row(key: str, code: str, passage: str, question: str, answer: str) -> dict[str, str]:
    return {
        "source": "qa",
        "source_key": key,
        "id": key,
        "language": code,
        "response": answer,
        "dedup_text": FIELD_SEPARATOR.join([passage, question, answer]),
        "split": "train",
    }


def dedup_inputs(work: Path, size: int) -> dict[str, Any]:
    """work/dedup/qa/*.parquet and work/dedup/qa-warmup/*.parquet; the planted pairs."""
    folder = work / "dedup"
    settings = {"records": size, "typo_rate": TYPO_RATE, "version": 1}
    if (stored := _fresh(folder, settings)) is not None:
        return stored
    start = time.perf_counter()
    _clear(folder)
    writers = [
        ChunkedParquet(folder / "qa", QA_SCHEMA),
        ChunkedParquet(folder / "qa-warmup", QA_SCHEMA),
    ]
    planted: dict[str, str] = {}
    passages: set[str] = set()
    for i, (row, original) in enumerate(_qa_records(size)):
        writers[0].add(row)
        if i < WARMUP:
            writers[1].add(row)
        passages.add(row["source_key"][:8])
        if original is not None:
            planted[row["source_key"]] = original
    for writer in writers:
        writer.flush()
    summary = {
        "settings": settings,
        "passages": len(passages),
        "planted": planted,
        "generation_seconds": round(time.perf_counter() - start, 1),
    }
    (folder / "inputs.json").write_text(json.dumps(summary) + "\n")
    return summary


# --- (a) decontamination --------------------------------------------------------------------


def train_frame(spark: SparkSession, path: Path) -> DataFrame:
    """The staged rows' columns the stage reads and rewrites (no stage rejected any yet)."""
    none = F.lit(None).cast("string")
    return spark.read.parquet(str(path)).select(
        "source", "source_key", "id", "split", "language", "dedup_text", "response",
        F.lit("x").alias("instruction"),
        none.alias("reason"), none.alias("detail"), none.alias("stage"), none.alias("record"),
    )  # fmt: skip


def decontamination_plan(folder: Path) -> DecontaminationPlan:
    ref = BenchmarkRef(
        name="bench-qa", path="items.jsonl", format="jsonl", id_field="qid",
        fields=["question", "answer"],
    )  # fmt: skip
    benchmarks = benchmark_plans(folder / "benchmark" / "conf.yaml", [ref])
    return DecontaminationPlan(DecontaminationConfig(heldout=False), benchmarks, heldout=False)


def run_decontamination(
    spark: SparkSession, frame: DataFrame, plan: DecontaminationPlan, staging: Staging
) -> tuple[Decontamination, int, dict[str, float]]:
    stage = Decontamination(plan, staging)
    start = time.perf_counter()
    flagged = stage.stage(frame)  # items, entries, matches and the reject table: staged here
    staged = time.perf_counter()
    rejects = flagged.where(F.col("stage") == "decontamination").count()
    end = time.perf_counter()
    return stage, rejects, {"stage_seconds": staged - start, "apply_count_seconds": end - staged}


def decontamination(spark: SparkSession, work: Path, train: int, items: int) -> dict[str, Any]:
    inputs = decontamination_inputs(work, train, items)
    folder = work / "decontamination"
    plan = decontamination_plan(folder)
    warm = Staging(spark, str(work / "_staging" / "warmup"))
    run_decontamination(spark, train_frame(spark, folder / "train-warmup"), plan, warm)
    warm.remove()
    staging = Staging(spark, str(work / "_staging" / "decontamination"))
    load_before = os.getloadavg()
    stage, rejects, times = run_decontamination(
        spark, train_frame(spark, folder / "train"), plan, staging
    )
    load_after = os.getloadavg()
    seconds = times["stage_seconds"] + times["apply_count_seconds"]
    assert stage.found is not None
    ids = stage.found.items.select("item_key", "item_id")
    found = {
        row["source_key"]: row["item_id"]
        for row in stage.found.matches.join(ids, "item_key", "left").collect()
    }
    report = stage.report()
    staging.remove()
    planted: dict[str, str] = inputs["planted"]
    hits = [key for key in planted if key in found]
    return {
        "train_records": train,
        "train_text_mb": round(inputs["train_text_bytes"] / 1e6, 1),
        "benchmark_items": items,
        "settings": plan.settings.model_dump(exclude={"benchmarks"}),
        "benchmark_ngrams": report["sets"]["bench-qa"]["ngrams"],
        "planted": len(planted),
        "planted_found": len(hits),
        "planted_found_with_its_item": sum(found[key] == planted[key] for key in hits),
        "recall": round(len(hits) / len(planted), 4) if planted else None,
        "clean_flagged": sum(key not in planted for key in found),
        "rejected_rows": rejects,
        **{key: round(value, 1) for key, value in times.items()},
        "seconds": round(seconds, 1),
        "records_per_s": round(train / seconds),
        "records_per_s_per_core": round(train / seconds / CORES),
        "text_mb_per_s_per_core": round(inputs["train_text_bytes"] / 1e6 / seconds / CORES, 2),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "input_generation_seconds": inputs["generation_seconds"],
    }


# --- (b) dedup ------------------------------------------------------------------------------


def run_dedup(spark: SparkSession, path: Path, match: str, staging: Staging) -> tuple[Any, float]:
    rows = spark.read.parquet(str(path))
    plan = DedupPlan.of(DedupConfig(match=match))  # type: ignore[arg-type]
    start = time.perf_counter()
    decided = dedup_decisions(rows, plan, staging, one_row_per_record=True)  # staged
    decided.where("is_duplicate").count()
    seconds = time.perf_counter() - start
    return decided.select("source_key", "dup_cluster", "is_duplicate").toArrow(), seconds


def dedup(spark: SparkSession, work: Path, size: int) -> dict[str, Any]:
    inputs = dedup_inputs(work, size)
    folder = work / "dedup"
    planted: dict[str, str] = inputs["planted"]
    results: dict[str, Any] = {
        "records": size,
        "passages": inputs["passages"],
        "planted_duplicates": len(planted),
        "input_generation_seconds": inputs["generation_seconds"],
    }
    for match in ("fields", "whole"):
        warm = Staging(spark, str(work / "_staging" / "warmup"))
        run_dedup(spark, folder / "qa-warmup", match, warm)
        warm.remove()
        staging = Staging(spark, str(work / "_staging" / f"dedup-{match}"))
        load_before = os.getloadavg()
        table, seconds = run_dedup(spark, folder / "qa", match, staging)
        load_after = os.getloadavg()
        keys = table.column("source_key").to_pylist()
        cluster = dict(zip(keys, table.column("dup_cluster").to_pylist(), strict=True))
        removed = {
            key for key, dup in zip(keys, table.column("is_duplicate").to_pylist(), strict=True)
            if dup
        }  # fmt: skip
        staging.remove()
        results[match] = {
            "seconds": round(seconds, 1),
            "records_per_s": round(size / seconds),
            "records_per_s_per_core": round(size / seconds / CORES),
            "removed": len(removed),
            "planted_found": sum(
                cluster[copy] == cluster[original] for copy, original in planted.items()
            ),
            "distinct_removed": len(removed - planted.keys()),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
        }
    return results


# --- the run --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    memory = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
         if line.startswith("MemTotal:")),
        None,
    )  # fmt: skip
    return {
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "memory_gb": round(int(memory) / 1024**2, 1) if memory else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pyspark": pyspark.__version__,
    }


def spark_settings(spark: SparkSession, asked: dict[str, str]) -> dict[str, Any]:
    conf = dict(spark.sparkContext.getConf().getAll())
    keys = [
        "spark.master", "spark.driver.memory", "spark.sql.shuffle.partitions",
        "spark.sql.files.maxPartitionBytes", "spark.sql.execution.arrow.pyspark.enabled",
        "spark.sql.execution.arrow.maxRecordsPerBatch", "spark.python.worker.reuse",
    ]  # fmt: skip
    effective = {key: conf.get(key, spark.conf.get(key, None)) for key in keys}
    return {"asked": asked, "effective": effective}


def table(results: dict[str, Any]) -> str:
    lines = []
    if "decontamination" in results:
        d = results["decontamination"]
        lines += [
            f"decontamination: {d['train_records']:,} records ({d['train_text_mb']} MB) x "
            f"{d['benchmark_items']:,} items ({d['benchmark_ngrams']:,} n-grams)",
            f"  {d['seconds']} s (stage {d['stage_seconds']} s + apply {d['apply_count_seconds']}"
            f" s), {d['records_per_s_per_core']:,} records/s/core, "
            f"{d['text_mb_per_s_per_core']} MB/s/core",
            f"  planted {d['planted']}, found {d['planted_found']} "
            f"({d['planted_found_with_its_item']} with its item), clean flagged "
            f"{d['clean_flagged']}",
        ]
    if "dedup" in results:
        d = results["dedup"]
        lines.append(
            f"dedup: {d['records']:,} QA records, {d['passages']:,} passages, "
            f"{d['planted_duplicates']} planted duplicates"
        )
        lines.append(
            f"  {'match':<7} {'seconds':>8} {'rec/s/core':>11} {'removed':>8} {'planted':>8} "
            f"{'distinct':>9}"
        )
        for match in ("fields", "whole"):
            m = d[match]
            lines.append(
                f"  {match:<7} {m['seconds']:>8} {m['records_per_s_per_core']:>11,} "
                f"{m['removed']:>8,} {m['planted_found']:>8,} {m['distinct_removed']:>9,}"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", default="all", choices=["decontamination", "dedup", "all"])
    parser.add_argument("--train", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--dedup-records", type=int, default=200_000)
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-decontamination")
    parser.add_argument("--spark", action="append", default=[], metavar="K=V")
    args = parser.parse_args()
    asked = dict(SPARK_CONF)
    for setting in args.spark:
        key, sep, value = setting.partition("=")
        if not sep:
            parser.error(f"--spark {setting!r}: expected K=V")
        asked[key] = value
    work = args.work.resolve()
    # Inputs first, so no Spark time is spent waiting on them (and a rerun reuses them).
    if args.part in ("decontamination", "all"):
        decontamination_inputs(work, args.train, args.items)
    if args.part in ("dedup", "all"):
        dedup_inputs(work, args.dedup_records)
    results: dict[str, Any] = {"machine": machine()}
    spark = build_session("instructmill-decontamination-bench", master=MASTER, conf=asked)
    try:
        results["spark"] = spark_settings(spark, asked)
        if args.part in ("decontamination", "all"):
            results["decontamination"] = decontamination(spark, work, args.train, args.items)
            print(json.dumps(results["decontamination"]), flush=True)
        if args.part in ("dedup", "all"):
            results["dedup"] = dedup(spark, work, args.dedup_records)
            print(json.dumps(results["dedup"]), flush=True)
    finally:
        spark.stop()
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # A run of one part keeps the other part's last figures.
    earlier = json.loads(OUT.read_text()) if OUT.exists() else {}
    OUT.write_text(json.dumps({**earlier, **results}, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
