"""Build throughput: the demo conf, and a synthetic N-row JSONL source (default 1M) on local[2].

    .venv/bin/python bench/build_throughput.py [--rows 1000000] [--master local[2]]

Reports wall time and rows/s of the whole build (read count, render, write, read-back counts,
manifest), and for reference the pure renderer's single-core rate on the same records. Writes
bench/results/build_throughput.json. Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobs.commands.build import run_build, run_context  # noqa: E402
from jobs.config import load_plan  # noqa: E402
from jobs.runner import build_session, configure_logging  # noqa: E402
from udfs.render_batches import JSON_TEXT_COLUMN, render_rows  # noqa: E402

WORDS = tuple(
    (
        "river market winter engine garden letter window doctor island silver morning station "
        "bridge village teacher music forest harbor candle mountain paper summer coffee castle "
        "museum rocket valley orange pencil jacket ocean thunder library garden planet tiger "
    ).split()
)


def synthetic_source(folder: Path, rows: int, seed: int = 7) -> Path:
    """NLI-shaped records with distinct content (about 200 characters each), 8 files."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    files = [(data / f"part-{i:02d}.jsonl").open("w", encoding="utf-8") for i in range(8)]
    try:
        for i in range(rows):
            premise = " ".join(rng.choices(WORDS, k=22)).capitalize() + "."
            hypothesis = " ".join(rng.choices(WORDS, k=8)).capitalize() + "."
            record = {
                "id": f"syn-{i}",
                "premise": premise,
                "hypothesis": hypothesis,
                "label": rng.randrange(3),
            }
            files[i % 8].write(json.dumps(record) + "\n")
    finally:
        for handle in files:
            handle.close()
    (folder / "datasets").mkdir(exist_ok=True)
    (folder / "datasets" / "synthetic.yaml").write_text(
        f"name: synthetic_nli\npath: {data}/*.jsonl\nformat: jsonl\nid_field: id\nlanguage: en\n"
        "task: nli\ntask_cluster: entailment\nlicense: CC0-1.0\nfields: {label: int}\n"
        f"templates:\n  - {ROOT}/templates/nli/entailment_label.jinja\n"
        f"  - path: {ROOT}/templates/nli/templates.yaml\n"
    )
    conf = folder / "pipeline.yaml"
    conf.write_text("sources: [datasets/*.yaml]\noutput: out\nseed: 42\ntemplates_per_record: 1\n")
    return conf


def timed_build(spark: object, conf: Path, output: Path) -> dict[str, float]:
    plan = load_plan(conf, output_override=str(output))
    start = time.perf_counter()
    manifest = run_build(spark, plan, run_context(plan, None)).to_dict()  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    rows = manifest["totals"]["rows"]
    assert manifest["totals"]["reconciled"], manifest["totals"]
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds)}


def renderer_rate(conf: Path, sample: int = 50_000) -> dict[str, float]:
    """The pure renderer (no Spark) on one core: the ceiling per core for the render stage."""
    plan = load_plan(conf).sources[0].render
    files = sorted((conf.parent / "data").glob("*.jsonl"))
    lines = []
    with files[0].open(encoding="utf-8") as handle:
        for line in handle:
            lines.append({JSON_TEXT_COLUMN: line.rstrip("\n")})
            if len(lines) == sample:
                break
    start = time.perf_counter()
    count = sum(1 for _ in render_rows(plan, lines))
    seconds = time.perf_counter() - start
    return {"rows": count, "seconds": round(seconds, 2), "rows_per_s": round(count / seconds)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench")
    args = parser.parse_args()
    work = args.work
    configure_logging()
    spark = build_session(
        "instructmill-bench",
        master=args.master,
        conf={
            "spark.driver.memory": "6g",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": "8",
        },
    )
    try:
        results = {
            "master": args.master,
            "machine": platform.machine(),
            "python": sys.version.split()[0],
        }
        timed_build(spark, ROOT / "conf" / "demo.yaml", work / "demo-warmup")
        results["demo"] = timed_build(spark, ROOT / "conf" / "demo.yaml", work / "demo")
        start = time.perf_counter()
        conf = synthetic_source(work / "synthetic", args.rows)
        results["synthetic_generation_seconds"] = round(time.perf_counter() - start, 1)
        results["synthetic"] = timed_build(spark, conf, work / "synthetic-out")
        results["renderer_one_core"] = renderer_rate(conf)
    finally:
        spark.stop()
    out = ROOT / "bench" / "results" / "build_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
