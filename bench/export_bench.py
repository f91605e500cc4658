"""Exports and the run report on a synthetic output: seconds and rows per second per core.

    .venv/bin/python bench/export_bench.py [--rows 1000000] [--shard-rows 200000]

The output is mixture_bench's synthetic pool (made by Spark from ``spark.range``: 8 sources,
60 tasks, 12 clusters, 20 languages, Zipf-like sizes), written in the build's layout. It is
exported in four formats (``trl-messages`` as JSON Lines and as Parquet, ``alpaca``, ``aya``),
each checked to reconcile (rows written, read back from the files, equal rows selected) and to
hold at most ``--shard-rows`` rows a file; then ``report.html`` is drawn for it. Results go to
``bench/results/export_report.json``. Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.mixture_bench import synthetic_pool, write_pool  # noqa: E402
from jobs.commands.export import run_export  # noqa: E402
from jobs.report import write_report  # noqa: E402
from jobs.runner import build_session, local_cores  # noqa: E402

EXPORTS = (
    ("trl-messages", "jsonl"),
    ("trl-messages", "parquet"),
    ("alpaca", "jsonl"),
    ("aya", "jsonl"),
)


def timed_export(
    spark: Any, source: str, out: Path, fmt: str, file_format: str, shard_rows: int
) -> dict[str, Any]:
    started = time.perf_counter()
    manifest = run_export(
        spark, source, str(out), fmt, shard_rows=shard_rows, file_format=file_format
    )
    seconds = time.perf_counter() - started
    splits = manifest["splits"]
    files = [entry for split in splits.values() for entry in split["files"]]
    return {
        "format": fmt,
        "file_format": file_format,
        "seconds": round(seconds, 1),
        "rows": manifest["totals"]["written"],
        "files": len(files),
        "largest_file_rows": max((entry["rows"] for entry in files), default=0),
        "reconciled": manifest["totals"]["reconciled"],
        "bytes": sum(path.stat().st_size for path in (out / "data").rglob("*") if path.is_file()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shard-rows", type=int, default=200_000)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    spark = build_session(
        "instructmill export bench",
        args.master,
        {"spark.driver.memory": "4g", "spark.ui.enabled": "false"},
    )
    spark.sparkContext.setLogLevel("ERROR")
    cores = local_cores(args.master)
    work = Path(tempfile.mkdtemp(prefix="export-bench-"))
    try:
        source = write_pool(synthetic_pool(spark, args.rows), work / "build", args.rows, None)
        exports = []
        for n, (fmt, file_format) in enumerate(EXPORTS):
            figures = timed_export(
                spark, source, work / f"export-{n}", fmt, file_format, args.shard_rows
            )
            figures["rows_per_s_per_core"] = round(figures["rows"] / figures["seconds"] / cores)
            exports.append(figures)
            print(json.dumps(figures), flush=True)
        started = time.perf_counter()
        page = Path(write_report(spark, source))
        report = {"seconds": round(time.perf_counter() - started, 1), "bytes": page.stat().st_size}
        print(json.dumps({"report": report}), flush=True)
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    ok = all(
        e["reconciled"] and e["rows"] == args.rows and e["largest_file_rows"] <= args.shard_rows
        for e in exports
    )
    results = Path(__file__).resolve().parent / "results" / "export_report.json"
    document = {"rows": args.rows, "master": args.master, "shard_rows": args.shard_rows,
                "exports": exports, "report": report, "checks_pass": ok}  # fmt: skip
    results.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
