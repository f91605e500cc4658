"""Whole-build scaling: the full `instructmill build` on synthetic input from 250k to 4M records.

    .venv/bin/python bench/scale.py [--sizes 250000,500000,1000000,2000000,4000000]
        [--master local[2]] [--work out/bench-scale] [--rounds 1] [--results bench/results]
        [--keep-output]

For each size the input comes from bench/synthetic.py (10 languages in 7 scripts, Zipf-sized,
~860-byte texts, 5% planted near-duplicates), cached in the work folder under a key of its
settings. Each build runs as its own process, exactly as a user runs it, with the project's
defaults: the run's conf only adds the Spark event log (spark.eventLog.*), no memory or
partition tuning. While it runs, the peak RSS and the CPU time of its whole process tree
(the Python driver, its JVM, the Python workers) are sampled from /proc. Afterwards the event
log gives per build stage (Spark jobs grouped by their description, "instructmill build:
<stage>"): wall time, executor run and CPU time, Python UDF time, input, output and shuffle
bytes (bench/spark_metrics.py).

Prints markdown tables, writes bench/results/scale.json and bench/results/scale.png (log-log
time and shuffle bytes against records, drawn by matplotlib in its own venv bench/.venv-plot,
created on first use, so the project's runtime dependencies stay as they are), and the
scaling exponent (log-log slope of wall time against records) with the check that 4x the
records costs at most 4.6x the time. Never run as a test: the big sizes take long on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import spark_metrics  # noqa: E402
import synthetic  # noqa: E402

INSTRUCTMILL = ROOT / ".venv" / "bin" / "instructmill"
PLOT_VENV = HERE / ".venv-plot"
MATPLOTLIB = "matplotlib>=3.8,<4"
DEFAULT_SIZES = "250000,500000,1000000,2000000,4000000"
FOUR_X_LIMIT = 4.6  # time(4n) / time(n) at most this: near-linear, some room for shuffles
SAMPLE_EVERY = 0.25  # seconds between /proc samples of the build's process tree
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- input and run folders


def input_conf(work: Path, records: int) -> Path:
    """The synthetic input of `records` records (default settings), generated once: a folder
    is reused only when its synthetic.json holds the same settings, which generate() writes
    last."""
    settings = asdict(synthetic.Settings(records))
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    folder = work / "inputs" / f"records-{records}-{key}"
    summary = folder / "synthetic.json"
    if summary.exists() and json.loads(summary.read_text())["settings"] == settings:
        return folder / "pipeline.yaml"
    print(f"generating {records:,} records into {folder}", flush=True)
    conf = synthetic.generate(folder, synthetic.Settings(records))
    print(f"  {json.loads(summary.read_text())['seconds']} s", flush=True)
    return conf


def run_conf(source_conf: Path, run: Path, extra: dict[str, str] | None = None) -> Path:
    """The input's pipeline conf with absolute sources and the event log switched on (and
    ``extra`` Spark settings: only for a comparison run, never for the defaults' figures)."""
    import yaml  # the project's venv has it; the plot venv never gets here

    conf = yaml.safe_load(source_conf.read_text())
    conf["sources"] = [str((source_conf.parent / s).resolve()) for s in conf["sources"]]
    events = run / "events"
    events.mkdir(parents=True)
    conf["spark"] = {
        "spark.eventLog.enabled": True,
        "spark.eventLog.dir": events.as_uri(),
        # Plain JSON lines: Spark 4 compresses the log with zstd by default.
        "spark.eventLog.compress": False,
        **(extra or {}),
    }
    path = run / "pipeline.yaml"
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    return path


# ---------------------------------------------------------------- process tree sampling


@dataclass
class TreeSample:
    peak_rss_bytes: int = 0  # largest sum over the tree at one instant
    # The same with PSS: forked Python workers share pages with their daemon, which a sum of
    # RSS counts once per process; PSS splits shared pages between their sharers.
    peak_pss_bytes: int = 0
    peak_process_rss_bytes: int = 0  # largest single process (the driver JVM, usually)
    processes: int = 0  # distinct processes seen
    cpu_ticks: dict[int, int] = field(default_factory=dict)  # last utime+stime per pid

    @property
    def cpu_s(self) -> float:
        # Processes that end between two samples lose their last interval: a lower bound.
        return sum(self.cpu_ticks.values()) / TICKS


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                tree.setdefault(int(stat[1]), []).append(int(entry.name))
    return tree


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces): state is [0],
    ppid [1], utime [11], stime [12]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def sample_tree(root: int, sample: TreeSample) -> None:
    tree = _children()
    pending, rss_total, pss_total = [root], 0, 0
    while pending:
        pid = pending.pop()
        pending.extend(tree.get(pid, ()))
        stat = _stat(pid)
        if stat is None:
            continue
        rss = _rss(pid)
        rss_total += rss
        pss_total += _pss(pid)
        sample.peak_process_rss_bytes = max(sample.peak_process_rss_bytes, rss)
        sample.cpu_ticks[pid] = int(stat[11]) + int(stat[12])
    sample.peak_rss_bytes = max(sample.peak_rss_bytes, rss_total)
    sample.peak_pss_bytes = max(sample.peak_pss_bytes, pss_total)
    sample.processes = len(sample.cpu_ticks)


def watch(process: subprocess.Popen[bytes], sample: TreeSample) -> threading.Thread:
    def loop() -> None:
        while process.poll() is None:
            sample_tree(process.pid, sample)
            time.sleep(SAMPLE_EVERY)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------- one build


def build(
    conf: Path, output: Path, master: str, run: Path, code: Path | None = None
) -> dict[str, Any]:
    """Runs the build as its own process; wall time, exit code and the tree's resources.
    ``code``: another checkout of the project (an earlier commit, for before/after figures),
    run with this venv's dependencies."""
    command = [str(INSTRUCTMILL), "build", "--conf", str(conf), "--output", str(output)]
    env = dict(os.environ)
    if code is not None:
        command = [sys.executable, "-m", "jobs.cli", *command[1:]]
        env["PYTHONPATH"] = str(code)
    command += ["--master", master]
    sample = TreeSample()
    with (run / "stdout.log").open("wb") as out, (run / "stderr.log").open("wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=code or ROOT, env=env)
        watcher = watch(process, sample)
        code = process.wait()
        wall = time.perf_counter() - start
        watcher.join()
    return {
        "command": command,
        "exit_code": code,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(sample.peak_rss_bytes / 2**20),
        "peak_pss_mb": round(sample.peak_pss_bytes / 2**20),
        "peak_process_rss_mb": round(sample.peak_process_rss_bytes / 2**20),
        "tree_cpu_s": round(sample.cpu_s, 1),
        "processes": sample.processes,
    }


def manifest_counts(output: Path) -> dict[str, Any]:
    path = output / "_manifest.json"
    if not path.exists():
        return {}
    manifest = json.loads(path.read_text())
    totals = manifest["totals"]
    mismatched = sum(s.get("langid", {}).get("mismatched", 0) for s in manifest["sources"].values())
    keys = ("read", "written", "rejected", "duplicates", "reconciled")
    return {**{key: totals.get(key) for key in keys}, "lang_mismatch": mismatched}


def cores(master: str) -> int:
    inside = master[len("local[") : -1] if master.startswith("local[") else "*"
    count = inside.split(",")[0]
    return (os.cpu_count() or 1) if count == "*" else int(count)


def run_once(work: Path, records: int, round_: int, args: argparse.Namespace) -> dict[str, Any]:
    source = input_conf(work, records)
    run = work / "runs" / f"records-{records}-round-{round_}-{time.strftime('%Y%m%dT%H%M%S')}"
    output = run / "out"
    extra = dict(setting.split("=", 1) for setting in args.spark)
    conf = run_conf(source, run, extra)
    print(f"build {records:,} records (round {round_}) -> {run}", flush=True)
    result = {
        "records": records,
        "round": round_,
        "run": str(run),
        "code": str(args.code) if args.code else "this checkout",
        "extra_spark_settings": extra,
        **build(conf, output, args.master, run, args.code),
    }
    result["counts"] = manifest_counts(output)
    if result["exit_code"] != 0:
        tail = (run / "stderr.log").read_text(errors="replace").splitlines()[-15:]
        result["error"] = "\n".join(tail)
        print(f"  FAILED (exit {result['exit_code']}):\n" + result["error"], flush=True)
    else:
        result.update(throughput(source, records, result["wall_s"], cores(args.master)))
    try:
        result["spark"] = spark_metrics.application_metrics(run / "events").to_dict()
    except (ValueError, OSError) as exc:  # a build that died before Spark started
        result["spark"] = {"error": str(exc)}
    if not args.keep_output:
        shutil.rmtree(output, ignore_errors=True)  # 4M records write gigabytes
    print(f"  {result['wall_s']} s, exit {result['exit_code']}", flush=True)
    return result


def throughput(source: Path, records: int, wall: float, used: int) -> dict[str, Any]:
    input_bytes = sum(p.stat().st_size for p in (source.parent / "data").glob("*.jsonl"))
    return {
        "cores": used,
        "input_bytes": input_bytes,
        "rows_per_s_per_core": round(records / wall / used, 1),
        "mb_per_s_per_core": round(input_bytes / 1e6 / wall / used, 3),
    }


def add_shuffle_per_record(result: dict[str, Any]) -> None:
    totals = result.get("spark", {}).get("totals")
    if totals and result["exit_code"] == 0:
        for kind in ("shuffle_write_bytes", "shuffle_read_bytes"):
            result[f"{kind}_per_record"] = round(totals[kind] / result["records"], 1)


# ---------------------------------------------------------------- summary and fit


def summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per size: the successful round with the median wall time."""
    rows = []
    for records in sorted({run["records"] for run in runs}):
        good = [r for r in runs if r["records"] == records and r["exit_code"] == 0]
        if not good:
            rows.append({"records": records, "failed": True})
            continue
        run = sorted(good, key=lambda r: r["wall_s"])[(len(good) - 1) // 2]
        totals = run["spark"].get("totals", {})
        rows.append(
            {
                "records": records,
                "rounds": len(good),
                "wall_s": run["wall_s"],
                "wall_s_rounds": [r["wall_s"] for r in good],
                "app_s": run["spark"].get("app_s"),
                "rows_per_s_per_core": run["rows_per_s_per_core"],
                "mb_per_s_per_core": run["mb_per_s_per_core"],
                "shuffle_write_bytes": totals.get("shuffle_write_bytes"),
                "shuffle_read_bytes": totals.get("shuffle_read_bytes"),
                "shuffle_bytes_per_record": run.get("shuffle_write_bytes_per_record"),
                "peak_rss_mb": run["peak_rss_mb"],
                "peak_pss_mb": run["peak_pss_mb"],
                "tree_cpu_s": run["tree_cpu_s"],
                **run["counts"],
                "stages": {s["name"]: s["wall_s"] for s in run["spark"].get("stages", [])},
            }
        )
    return rows


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(y) against log(x)."""
    if len(points) < 2:
        return None
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else None


def scaling(rows: list[dict[str, Any]]) -> dict[str, Any]:
    wall = {r["records"]: r["wall_s"] for r in rows if not r.get("failed")}
    ratios = {
        f"{4 * n}/{n}": round(wall[4 * n] / wall[n], 3) for n in sorted(wall) if 4 * n in wall
    }
    exponent = slope(sorted(wall.items()))
    shuffle = [
        (r["records"], r["shuffle_write_bytes"]) for r in rows if r.get("shuffle_write_bytes")
    ]
    return {
        "time_exponent": None if exponent is None else round(exponent, 3),
        "shuffle_exponent": None if (s := slope(shuffle)) is None else round(s, 3),
        "time_ratio_for_4x_records": ratios,
        "four_x_limit": FOUR_X_LIMIT,
        "four_x_within_limit": all(v <= FOUR_X_LIMIT for v in ratios.values()) if ratios else None,
    }


# ---------------------------------------------------------------- tables


def markdown(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


BUILD_COLUMNS = (
    ("records", "records"), ("wall s", "wall_s"), ("rows/s/core", "rows_per_s_per_core"),
    ("MB/s/core", "mb_per_s_per_core"), ("shuffle B/record", "shuffle_bytes_per_record"),
    ("peak RSS MB", "peak_rss_mb"), ("peak PSS MB", "peak_pss_mb"),
    ("tree CPU s", "tree_cpu_s"), ("written", "written"), ("duplicates", "duplicates"),
    ("lang mismatch", "lang_mismatch"), ("reconciled", "reconciled"),
)  # fmt: skip
STAGE_COLUMNS = (
    ("stage", "name"), ("jobs", "jobs"), ("tasks", "tasks"), ("wall s", "wall_s"),
    ("jobs s", "jobs_s"), ("idle before s", "idle_before_s"),
    ("exec run s", "executor_run_s"), ("exec CPU s", "executor_cpu_s"),
    ("python s", "python_s"), ("input MB", "input_bytes"), ("output MB", "output_bytes"),
    ("shuffle read MB", "shuffle_read_bytes"), ("shuffle write MB", "shuffle_write_bytes"),
    ("spill MB", "spill_disk_bytes"),
)  # fmt: skip


def build_table(rows: list[dict[str, Any]]) -> str:
    body = []
    for row in rows:
        if row.get("failed"):
            body.append([row["records"], "FAILED"] + [None] * (len(BUILD_COLUMNS) - 2))
        else:
            body.append([row.get(key) for _, key in BUILD_COLUMNS])
    return markdown([name for name, _ in BUILD_COLUMNS], body)


def stage_table(run: dict[str, Any]) -> str:
    stages = [*run["spark"].get("stages", []), run["spark"].get("totals")]
    body = [
        [s[key] / 1e6 if key.endswith("_bytes") else s[key] for _, key in STAGE_COLUMNS]
        for s in stages
        if s
    ]
    return markdown([name for name, _ in STAGE_COLUMNS], body)


def stage_wall_table(rows: list[dict[str, Any]]) -> str:
    """Wall seconds of each build stage across the sizes: which stage grows fastest."""
    good = [r for r in rows if not r.get("failed")]
    names = list(dict.fromkeys(name for r in good for name in r["stages"]))
    header = ["stage", *(f"{r['records']:,}" for r in good)]
    return markdown(header, [[n, *(r["stages"].get(n) for r in good)] for n in names])


def report(runs: list[dict[str, Any]], rows: list[dict[str, Any]], fit: dict[str, Any]) -> str:
    parts = ["## Whole build", build_table(rows), "", "## Stage wall time (s) by records"]
    parts += [stage_wall_table(rows), ""]
    for run in runs:
        if run.get("spark", {}).get("stages"):
            parts += [f"## {run['records']:,} records, round {run['round']}", stage_table(run), ""]
    ratios = ", ".join(f"{k}: {v}x" for k, v in fit["time_ratio_for_4x_records"].items())
    parts += [
        f"time exponent (log-log slope): {fit['time_exponent']}; "
        f"shuffle exponent: {fit['shuffle_exponent']}",
        f"4x records: {ratios or 'no pair of sizes 4x apart'}; "
        f"within {FOUR_X_LIMIT}x: {_cell(fit['four_x_within_limit'])}",
    ]
    return "\n".join(parts)


# ---------------------------------------------------------------- chart (in its own venv)


def plot_python() -> Path:
    """bench/.venv-plot/bin/python with matplotlib, made on first use: the chart's only
    dependency stays out of the project's venv."""
    python = PLOT_VENV / "bin" / "python"
    probe = [str(python), "-c", "import matplotlib"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    base = shutil.which("python3") or sys.executable
    print(f"creating {PLOT_VENV} with {MATPLOTLIB} (first chart only)", flush=True)
    subprocess.run([base, "-m", "venv", str(PLOT_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, MATPLOTLIB], check=True)
    return python


def draw(results: Path, png: Path) -> None:
    """Runs in the plot venv: wall time (whole build and its largest stages) and shuffle
    bytes against records, log-log, each with a slope-1 line for linear scaling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(results.read_text())
    rows = [r for r in data["summary"] if not r.get("failed")]
    xs = [r["records"] for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    left.plot(xs, [r["wall_s"] for r in rows], "o-", lw=2, label="whole build")
    biggest = sorted(rows[-1]["stages"].items(), key=lambda kv: -(kv[1] or 0))[:5]
    for name, _ in biggest:
        left.plot(xs, [r["stages"].get(name) or math.nan for r in rows], ".--", label=name)
    _linear(left, xs, rows[0]["wall_s"])
    left.set(
        xlabel="records",
        ylabel="seconds",
        title=f"wall time (exponent {data['scaling']['time_exponent']})",
    )
    for key, label in (
        ("shuffle_write_bytes", "shuffle write"),
        ("shuffle_read_bytes", "shuffle read"),
    ):
        right.plot(xs, [r[key] for r in rows], "o-", label=label)
    _linear(right, xs, rows[0]["shuffle_write_bytes"])
    right.set(
        xlabel="records",
        ylabel="bytes",
        title=f"shuffle (exponent {data['scaling']['shuffle_exponent']})",
    )
    for axes in (left, right):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(f"instructmill build, {data['master']}, {data['machine']}")
    figure.savefig(png, dpi=120)


def _linear(axes: Any, xs: list[int], first: float) -> None:
    axes.plot(xs, [first * x / xs[0] for x in xs], ":", color="grey", label="linear")


def chart(results: Path, png: Path) -> None:
    try:
        python = plot_python()
        subprocess.run([str(python), __file__, "--plot", str(results), str(png)], check=True)
        print(f"chart: {png}")
    except (subprocess.CalledProcessError, OSError) as exc:  # the numbers matter more
        print(f"no chart ({exc}); the results are in {results}", file=sys.stderr)


# ---------------------------------------------------------------- main


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated record counts")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-scale")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--results", type=Path, default=HERE / "results", help="scale.json/png")
    parser.add_argument("--keep-output", action="store_true", help="keep each build's output")
    parser.add_argument("--code", type=Path, help="run another checkout (e.g. a git worktree)")
    parser.add_argument(
        "--spark", action="append", default=[], metavar="KEY=VALUE",
        help="an extra Spark setting (comparison runs only: the figures are for the defaults)",
    )  # fmt: skip
    parser.add_argument("--name", default="scale", help="results file stem (scale.json/png)")
    parser.add_argument(
        "--plot", nargs=2, type=Path, metavar=("JSON", "PNG"), help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.plot:  # inside the plot venv
        draw(*args.plot)
        return 0
    sizes = sorted(int(size) for size in args.sizes.split(","))
    work = args.work.resolve()
    runs = []
    for records in sizes:
        for round_ in range(1, args.rounds + 1):
            run = run_once(work, records, round_, args)
            add_shuffle_per_record(run)
            runs.append(run)
    rows = summary(runs)
    fit = scaling(rows)
    results = {
        "master": args.master,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "synthetic": asdict(synthetic.Settings(0)) | {"records": "per size"},
        "summary": rows,
        "scaling": fit,
        "runs": runs,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"{args.name}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(report(runs, rows, fit))
    print(f"results: {out}")
    chart(out, args.results / f"{args.name}.png")
    return 0 if all(run["exit_code"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
