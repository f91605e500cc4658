"""Resume after a failed write: a clean build of N records, the same build failed in its data
write (``INSTRUCTMILL_FAULT=fail:write data``), then ``--resume`` of that run. Prints each
run's wall time, the manifest's step seconds, the datasets the resume reused, and whether its
rows equal the clean run's.

    .venv/bin/python bench/resume_bench.py [--records 20000] [--folder /tmp/resume-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.nightly_project import content, make_project, record, rows_of  # noqa: E402


def build(conf: Path, *extra: str, fault: str | None = None) -> tuple[int, float]:
    env = {key: value for key, value in os.environ.items() if key != "INSTRUCTMILL_FAULT"}
    if fault:
        env["INSTRUCTMILL_FAULT"] = fault
    command = [sys.executable, "-m", "jobs.cli", "build", "--conf", str(conf), *extra]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--master", "local[2]"], env=env, cwd=ROOT, capture_output=True, check=False
    )
    return done.returncode, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/resume-bench"))
    args = parser.parse_args()
    shutil.rmtree(args.folder, ignore_errors=True)
    conf = make_project(args.folder, [record(f"r{i}", i) for i in range(args.records)])
    out = args.folder / "out"
    _, clean_seconds = build(conf)
    clean: dict[str, Any] = json.loads((out / "_manifest.json").read_text())
    clean_rows = content(rows_of(out / "data"))
    failed_code, failed_seconds = build(conf, fault="fail:write data")
    (run_id,) = os.listdir(out / "_staging")
    resumed_code, resumed_seconds = build(conf, "--resume", run_id)
    resumed: dict[str, Any] = json.loads((out / "_manifest.json").read_text())
    datasets = resumed["stages"]["datasets"]
    print(json.dumps({
        "records": args.records,
        "seconds": {"clean": round(clean_seconds, 1), "failed": round(failed_seconds, 1),
                    "resumed": round(resumed_seconds, 1)},
        "exit_codes": {"failed": failed_code, "resumed": resumed_code},
        "steps_clean": clean["stages"]["seconds"],
        "steps_resumed": resumed["stages"]["seconds"],
        "reused": sorted(name for name, fate in datasets.items() if fate == "reused"),
        "same_rows": content(rows_of(out / "data")) == clean_rows,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
