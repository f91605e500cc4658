"""The Aya-scale cost model, from measured figures only.

    .venv/bin/python bench/cost_model.py [--scale bench/results/scale.json]
        [--records 513000000] [--text-bytes 700]

Takes the largest build of ``bench/scale.py`` (per stage: wall time on its cores, shuffle
bytes, peak memory) and projects a build of ``--records`` records of ``--text-bytes`` bytes
(Aya's ~500 characters are about 700 UTF-8 bytes in a mix of scripts):
stages whose work follows the text (the staged pass: render, signatures, language ID; the
writes) scale with text length, the rest with the record count. Prints markdown tables for
docs/scale.md and writes bench/results/cost_model.json. Reads JSON only: never starts Spark.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Stages whose cost follows the bytes of text, not the count of records.
TEXT_STAGES = ("sign", "langid", "write data", "write rejects", "write duplicates")
NIGHTLY_HOURS = 1.0
# Share of a cluster's core time that does task work (scheduling, stragglers, start-up).
CLUSTER_EFFICIENCY = 0.75


def _largest(scale: dict[str, Any]) -> dict[str, Any]:
    runs = [run for run in scale["runs"] if run["exit_code"] == 0]
    return max(runs, key=lambda run: run["records"])


def _text_bound(name: str) -> bool:
    return any(part in name for part in TEXT_STAGES)


def stage_costs(
    run: dict[str, Any], records: int, text_bytes: int, measured_bytes: float
) -> list[dict[str, Any]]:
    measured, cores = run["records"], run["cores"]
    text_ratio = text_bytes / measured_bytes
    rows = []
    for stage in run["spark"]["stages"]:
        per_record = stage["wall_s"] * cores / measured
        ratio = text_ratio if _text_bound(stage["name"]) else 1.0
        shuffle = (stage["shuffle_write_bytes"] + stage["shuffle_read_bytes"]) / measured
        rows.append(
            {
                "stage": stage["name"],
                "core_us_per_record": round(per_record * 1e6, 1),
                "scales_with": "text" if ratio != 1.0 else "records",
                "core_hours": round(per_record * ratio * records / 3600, 2),
                "shuffle_bytes_per_record": round(shuffle, 1),
                "shuffle_tb": round(shuffle * ratio * records / 1e12, 3),
            }
        )
    return rows


def model(scale: dict[str, Any], records: int, text_bytes: int) -> dict[str, Any]:
    run = _largest(scale)
    measured_bytes = scale["synthetic"]["mean_chars"]  # mean UTF-8 bytes of a record's text
    stages = stage_costs(run, records, text_bytes, measured_bytes)
    core_hours = sum(row["core_hours"] for row in stages)
    cores = math.ceil(core_hours / NIGHTLY_HOURS / CLUSTER_EFFICIENCY)
    memory_per_core_mb = run["peak_pss_mb"] / run["cores"]
    return {
        "measured_at_records": run["records"],
        "measured_mean_text_bytes": measured_bytes,
        "projected_records": records,
        "projected_text_bytes": text_bytes,
        "stages": stages,
        "core_hours": round(core_hours, 1),
        "cores_for_a_one_hour_load": cores,
        "executors_of_4_cores": math.ceil(cores / 4),
        "memory_per_core_mb_measured": round(memory_per_core_mb),
        "shuffle_tb": round(sum(row["shuffle_tb"] for row in stages), 2),
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| stage | core-µs per record (measured) | scales with | core-hours at "
        f"{result['projected_records']:,} | shuffle written + read B/record | shuffle TB |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["stages"]:
        lines.append(
            f"| {row['stage']} | {row['core_us_per_record']:,} | {row['scales_with']} | "
            f"{row['core_hours']:,} | {row['shuffle_bytes_per_record']:,} | {row['shuffle_tb']} |"
        )
    lines.append(f"| **total** | | | **{result['core_hours']:,}** | | **{result['shuffle_tb']}** |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=Path, default=HERE / "results" / "scale.json")
    parser.add_argument("--records", type=int, default=513_000_000)
    parser.add_argument("--text-bytes", type=int, default=700)
    args = parser.parse_args()
    result = model(json.loads(args.scale.read_text()), args.records, args.text_bytes)
    print(table(result))
    print(
        f"\n{result['core_hours']} core-hours; a one-hour load needs "
        f"{result['cores_for_a_one_hour_load']} cores ({result['executors_of_4_cores']} "
        f"executors of 4 cores at {CLUSTER_EFFICIENCY:.0%} efficiency); measured peak memory "
        f"{result['memory_per_core_mb_measured']} MB per core"
    )
    out = HERE / "results" / "cost_model.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
