"""Peers on the same records: plain Python doing the build's UDF work, and datatrove.

    .venv/bin/python bench/peers.py --records 250000 [--rounds 3] [--work DIR] [--[no-]dedup]

Input: bench/synthetic.py's records (made once in WORK/synthetic-N, reused while its settings
match). Each round runs every system once, in a subprocess, in an order that turns every
round (a steady drift of this machine's speed favours none); figures are medians of rounds.

python_lid      one process pinned to one core: the build's own UDF bodies on Arrow batches
                of 10,000 lines (Spark's default Arrow batch): udfs.render_batches, then
                udfs.langid.detect_arrays with the plan's settings (instruction, response,
                content and target text of every row), as the render and language-ID stages.
python_lid_mh   the same, plus udfs.minhash.minhash_batch over each accepted record's
                dedup_text with the plan's dedup settings (256 permutations, 32 bands x 8
                rows at the defaults), as the dedup stage's signature UDF.
datatrove_tuned datatrove's LanguageFilter and MinhashDedupSignature configured for the same
                work (bench/peers_datatrove.py says how), LocalPipelineExecutor(tasks=2,
                workers=2) as local[2].
datatrove_defaults  the same two steps at datatrove's defaults.
datatrove_dedup the tuned steps and datatrove's whole MinHash dedup (labelled records written,
                signatures, buckets, clusters, filter writing the kept records); on by default
                at 250,000 records and more.

Neither Python floor reads through Spark or writes Parquet, nor does the floor run exact
groups, LSH joins or components; they are the UDF work alone, the floor for Spark's
overhead. Wall time is the subprocess's (model loads and pool start included); CPU seconds
are getrusage of its whole process tree (this process is made a subreaper, so datatrove's
forkserver workers are counted). Per core: rows / wall / cores used (1 for the floor, the
workers for datatrove). Writes bench/results/peers.json and prints a markdown table. The
datatrove venv, bench/.venv-datatrove, is made on first use. Never run as a test.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from synthetic import Settings, generate  # noqa: E402

from jobs.config import load_plan  # noqa: E402
from udfs.langid import detect_arrays, identifier  # noqa: E402
from udfs.minhash import lsh_params, minhash_batch, minhasher  # noqa: E402
from udfs.render_batches import FILE_COLUMN, JSON_TEXT_COLUMN, render_batches  # noqa: E402

BENCH = ROOT / "bench"
DATATROVE_VENV = BENCH / ".venv-datatrove"
DATATROVE_PYTHON = DATATROVE_VENV / "bin" / "python"
DATATROVE_REQUIREMENTS = ("datatrove[processing]==0.10.1", "orjson==3.13.0", "spacy==3.8.18")
RESULTS = BENCH / "results" / "peers.json"
BATCH_ROWS = 10_000  # spark.sql.execution.arrow.maxRecordsPerBatch's default
# The language-ID stage's inputs (jobs/stages/langid.py), in detect_arrays' order.
LANGID_INPUTS = ("instruction", "response", "content", "target_content", "language",
                 "target_language")  # fmt: skip
SCORES = ("instruction_lang_score", "response_lang_score", "detected_language_score")
PR_SET_CHILD_SUBREAPER = 36
SYSTEMS = {
    "python_lid": "render + language ID, plain Python, 1 core",
    "python_lid_mh": "render + language ID + MinHash signatures, plain Python, 1 core",
    "datatrove_tuned": "language ID + MinHash signatures, datatrove for the same work, 2 workers",
    "datatrove_defaults": "language ID + MinHash signatures, datatrove defaults, 2 workers",
    "datatrove_dedup": "language ID + whole MinHash dedup + write, datatrove tuned, 2 workers",
}


# --- the floor: one process, one core, the build's UDF bodies ---------------------------------


def line_batches(files: list[Path], rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The JSONL reader's frame (line bytes and file path), in batches of ``rows`` lines."""
    for file in files:
        with file.open("rb") as handle:
            lines: list[bytes] = []
            for line in handle:
                lines.append(line.rstrip(b"\n"))
                if len(lines) == rows:
                    yield _line_batch(lines, file)
                    lines = []
            if lines:
                yield _line_batch(lines, file)


def _line_batch(lines: list[bytes], file: Path) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {JSON_TEXT_COLUMN: pa.array(lines, pa.binary()), FILE_COLUMN: [file.as_uri()] * len(lines)}
    )


class Floor:
    """The render, language-ID and signature UDF bodies for one plan, timed per stage."""

    def __init__(self, conf: Path, minhash: bool) -> None:
        plan = load_plan(conf)
        if plan.langid is None or plan.langid_model is None:
            raise SystemExit(f"{conf}: language ID is off; the floor measures it")
        (source,) = plan.sources
        self.render_plan, self.settings = source.render, plan.langid
        self.files = [Path(path) for path in source.paths]
        self.model = identifier(plan.langid_model)
        dedup = plan.pipeline.dedup
        self.bands, self.rows = lsh_params(
            dedup.threshold, dedup.num_perm, dedup.false_positive_weight,
            dedup.false_negative_weight,
        )  # fmt: skip
        self.hasher = minhasher(dedup.num_perm, dedup.seed, dedup.word_ngram, dedup.char_ngram)
        self.minhash = minhash
        self.seconds = dict.fromkeys(("read", "render", "langid", "minhash"), 0.0)
        self.counts = dict.fromkeys(("records", "rows", "texts_predicted", "signed"), 0)

    def run(self) -> dict[str, Any]:
        clock = time.perf_counter()
        for batch in line_batches(self.files):
            clock = self._lap("read", clock)
            self.counts["records"] += batch.num_rows
            (rendered,) = render_batches(self.render_plan, [batch])
            clock = self._lap("render", clock)
            result = detect_arrays(
                self.model, self.settings, *[rendered.column(name) for name in LANGID_INPUTS]
            )
            clock = self._lap("langid", clock)
            self._count(rendered, result)
            if self.minhash:
                self._signatures(rendered, result)
                clock = self._lap("minhash", clock)
        return {"seconds": {k: round(v, 3) for k, v in self.seconds.items()}, **self.counts}

    def _lap(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - start
        return now

    def _count(self, rendered: pa.RecordBatch, result: pa.StructArray) -> None:
        self.counts["rows"] += rendered.num_rows
        fields = [result.field(name) for name in SCORES]
        self.counts["texts_predicted"] += sum(len(f) - f.null_count for f in fields)

    def _signatures(self, rendered: pa.RecordBatch, result: pa.StructArray) -> None:
        """The dedup stage's signature UDF on one dedup_text per accepted record."""
        accepted = np.asarray(
            rendered.column("reason").is_null().to_numpy(zero_copy_only=False)
            & result.field("drop_reason").is_null().to_numpy(zero_copy_only=False)
        )
        columns = [rendered.column(name).to_pylist() for name in ("source", "source_key")]
        keys = zip(*columns, strict=True)
        texts = rendered.column("dedup_text").to_pylist()
        records = {key: text for key, text, ok in zip(keys, texts, accepted, strict=True) if ok}
        texts_of_records = pa.array(list(records.values()), pa.string())
        minhash_batch(texts_of_records, self.hasher, self.bands, self.rows)
        self.counts["signed"] += len(records)


def floor_main(conf: Path, minhash: bool, core: int) -> int:
    os.sched_setaffinity(0, {core})
    start = time.perf_counter()
    floor = Floor(conf, minhash)
    setup = time.perf_counter() - start
    result = floor.run()
    print(json.dumps({"setup_seconds": round(setup, 3), "core": core, **result}), flush=True)
    return 0


# --- the systems, measured as subprocesses -----------------------------------------------------


def ensure_datatrove_venv() -> None:
    """bench/.venv-datatrove with datatrove from PyPI, made once."""
    check = [str(DATATROVE_PYTHON), "-c", "import datatrove, fasttext, orjson, spacy"]
    if DATATROVE_PYTHON.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return
    subprocess.run([sys.executable, "-m", "venv", str(DATATROVE_VENV)], check=True)
    pip = [str(DATATROVE_PYTHON), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *DATATROVE_REQUIREMENTS], check=True)


def synthetic_input(work: Path, records: int) -> tuple[Path, dict[str, Any]]:
    """The pipeline conf of WORK/synthetic-N (generated unless complete with these settings)
    and the generator's summary."""
    folder = work / f"synthetic-{records}"
    summary_file = folder / "synthetic.json"
    if summary_file.exists():
        summary = json.loads(summary_file.read_text())
        if summary["settings"] == asdict(Settings(records)) and (folder / "pipeline.yaml").exists():
            return folder / "pipeline.yaml", summary
    conf = generate(folder, Settings(records))
    return conf, json.loads(summary_file.read_text())


def command(system: str, conf: Path, work: Path, model: str, workers: int) -> list[str]:
    if system.startswith("python_"):
        stage = "minhash" if system == "python_lid_mh" else "langid"
        core = min(os.sched_getaffinity(0))
        return [sys.executable, __file__, "--floor", stage, "--conf", str(conf),
                "--core", str(core)]  # fmt: skip
    mode = system.removeprefix("datatrove_")
    return [
        str(DATATROVE_PYTHON), str(BENCH / "peers_datatrove.py"), "--mode", mode,
        "--data", str(conf.parent / "data"), "--model", model,
        "--work", str(work / f"datatrove-{mode}"), "--tasks", str(workers),
        "--workers", str(workers),
    ]  # fmt: skip


def reap_orphans(timeout: float = 60.0) -> None:
    """Wait for the descendants that outlived their parents (a forkserver, a resource
    tracker): they were re-parented here, and only a wait counts their CPU time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)
    print("warning: descendants still running; their CPU time is not counted", file=sys.stderr)


def cpu_of_children() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def measure(cmd: list[str], log: Path) -> dict[str, Any]:
    """Wall and CPU seconds of one subprocess and everything it started; its JSON line."""
    reap_orphans()
    user, system = cpu_of_children()
    start = time.perf_counter()
    with log.open("a") as errors:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    reap_orphans()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}); see {log}")
    after_user, after_system = cpu_of_children()
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(after_user - user + after_system - system, 3),
        "user_seconds": round(after_user - user, 3),
        "detail": json.loads(done.stdout.strip().splitlines()[-1]),
    }


RAW_FASTTEXT = """
import json, sys, time, glob, os
os.sched_setaffinity(0, {int(sys.argv[3])})
import fasttext.FastText as F
model = F._FastText(sys.argv[1])
texts = []
for line in open(sorted(glob.glob(sys.argv[2] + "/*.jsonl"))[0], encoding="utf-8"):
    texts.append(json.loads(line)["text"].replace("\\n", " "))
    if len(texts) == 2000:
        break
best = float("inf")
for _ in range(3):
    start = time.perf_counter()
    for text in texts:
        model.predict(text, k=1)
    best = min(best, time.perf_counter() - start)
print(round(best / len(texts) * 1e6, 1))
"""


def raw_fasttext_us(model: str, data: Path) -> dict[str, float]:
    """Microseconds per text of each venv's fastText binding on the same texts, one core: the
    two venvs' bindings differ (fasttext-numpy2 here, fasttext-numpy2-wheel for datatrove)."""
    core = str(min(os.sched_getaffinity(0)))
    figures = {}
    for name, python in (("project", sys.executable), ("datatrove", str(DATATROVE_PYTHON))):
        cmd = [python, "-c", RAW_FASTTEXT, model, str(data), core]
        figures[name] = float(subprocess.run(cmd, capture_output=True, check=True).stdout)
    return figures


# --- rounds, figures, table --------------------------------------------------------------------


def run_rounds(
    systems: list[str],
    rounds: int,
    commands: dict[str, list[str]],
    log: Path,
    on_round: Callable[[dict[str, list[dict[str, Any]]]], None],
) -> None:
    """Every system once a round; the order turns every round. ``on_round`` gets the runs so
    far after every round (so a stopped run still leaves its figures)."""
    measured: dict[str, list[dict[str, Any]]] = {system: [] for system in systems}
    for round_ in range(rounds):
        shift = round_ % len(systems)
        for system in systems[shift:] + systems[:shift]:
            figures = measure(commands[system], log)
            measured[system].append(figures)
            print(f"round {round_ + 1}: {system} {figures['seconds']} s wall, "
                  f"{figures['cpu_seconds']} CPU s", flush=True)  # fmt: skip
        on_round(measured)


def lid_texts_per_record(detail: dict[str, Any], records: int) -> float:
    """Texts the system gave the language model, per input record."""
    if "texts_predicted" in detail:
        return round(detail["texts_predicted"] / records, 2)
    steps = detail["stages"][0]["steps"]
    predicted = next(step for step in steps if "Language ID" in step["step"])["counts"]["total"]
    return round(predicted / records, 2)


def summarise(runs: list[dict[str, Any]], records: int, input_bytes: int, cores: int) -> dict:
    seconds = statistics.median(run["seconds"] for run in runs)
    cpu = statistics.median(run["cpu_seconds"] for run in runs)
    per_core = [records / run["seconds"] / cores for run in runs]
    return {
        "cores": cores,
        "seconds_median": round(seconds, 2),
        "cpu_seconds_median": round(cpu, 2),
        "rows_per_s_per_core": round(records / seconds / cores),
        "rows_per_s_per_core_min_max": [round(min(per_core)), round(max(per_core))],
        "mb_per_s_per_core": round(input_bytes / 1e6 / seconds / cores, 2),
        "rows_per_cpu_second": round(records / cpu),
        "lid_texts_per_record": lid_texts_per_record(runs[0]["detail"], records),
        "runs": runs,
    }


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| system | what | rows/s/core | MB/s/core | rows/CPU-s | wall s | CPU s | LID texts/row |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for system, row in summary.items():
        lines.append(
            f"| {system} | {SYSTEMS[system]} | {row['rows_per_s_per_core']:,} | "
            f"{row['mb_per_s_per_core']} | {row['rows_per_cpu_second']:,} | "
            f"{row['seconds_median']} | {row['cpu_seconds_median']} | "
            f"{row['lid_texts_per_record']} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=250_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-peers")
    parser.add_argument("--workers", type=int, default=2, help="datatrove's tasks and workers")
    parser.add_argument(
        "--dedup",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also datatrove's whole MinHash dedup (default: at 250,000 records and more)",
    )
    parser.add_argument(
        "--systems", help=f"comma-separated subset of {','.join(SYSTEMS)} (default: all)"
    )
    parser.add_argument("--floor", choices=("langid", "minhash"), help=argparse.SUPPRESS)
    parser.add_argument("--conf", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def chosen_systems(args: argparse.Namespace) -> list[str]:
    dedup = args.records >= 250_000 if args.dedup is None else args.dedup
    names = args.systems.split(",") if args.systems else list(SYSTEMS)
    unknown = sorted(set(names) - set(SYSTEMS))
    if unknown:
        raise SystemExit(f"unknown systems {unknown}; choose from {list(SYSTEMS)}")
    return [name for name in SYSTEMS if name in names and (dedup or name != "datatrove_dedup")]


def become_subreaper() -> None:
    """Orphaned descendants (datatrove's forkserver and its workers) become this process's
    children, so waiting for them counts their CPU time in RUSAGE_CHILDREN."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("prctl(PR_SET_CHILD_SUBREAPER) failed: CPU time could not be counted")


def main() -> int:
    args = parse_args()
    if args.floor:
        return floor_main(args.conf, args.floor == "minhash", args.core)
    become_subreaper()
    ensure_datatrove_venv()
    work = args.work.resolve()
    conf, synthetic = synthetic_input(work, args.records)
    model = str(load_plan(conf).langid_model)
    systems = chosen_systems(args)
    commands = {name: command(name, conf, work, model, args.workers) for name in systems}
    results: dict[str, Any] = {
        "records": args.records,
        "input_bytes": synthetic["input_bytes"],
        "synthetic": synthetic,
        "machine": {"cpus": os.cpu_count(), "arch": platform.machine()},
        "python": sys.version.split()[0],
        "raw_fasttext_us_per_text_one_core": raw_fasttext_us(model, conf.parent / "data"),
        "systems": {name: SYSTEMS[name] for name in systems},
        "commands": commands,
    }

    def write(measured: dict[str, list[dict[str, Any]]]) -> None:
        cores = {name: 1 if name.startswith("python_") else args.workers for name in measured}
        results["rounds"] = len(next(iter(measured.values())))
        results["summary"] = {
            name: summarise(runs, args.records, synthetic["input_bytes"], cores[name])
            for name, runs in measured.items()
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    log = work / "peers.log"
    log.write_text("")
    run_rounds(systems, args.rounds, commands, log, write)
    print(table(results["summary"]))
    print(f"raw fastText µs/text, one core: {results['raw_fasttext_us_per_text_one_core']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
