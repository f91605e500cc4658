"""Per build-stage metrics of one Spark application, read from its event log.

The build describes every Spark job by the stage that started it (``instructmill build:
render``); Spark copies the description into each job's and each stage's properties. Tasks are
attributed to the description of the stage they ran in, so a shuffle stage that a later job
reuses (and skips) is counted once, where it ran. A stage's wall time is the time its jobs
ran plus the time no job ran just before each of them (the driver planning them), so the
stages' wall times add up to the application's.

Standard library only (pyarrow, lazily, for a zstd-compressed log), so it runs in any venv.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DESCRIPTION = "spark.job.description"
NO_DESCRIPTION = "(no description)"
# Spark's timing accumulator for the Python side of pandas/Arrow UDFs (milliseconds): the JVM's
# executor CPU time does not include the Python workers, where most of the build's work is.
PYTHON_TIME = "time to execute Python code"


@dataclass
class StageMetrics:
    """One build stage (one job description): its Spark jobs, stages and task totals."""

    name: str
    jobs: int = 0
    spark_stages: int = 0
    tasks: int = 0
    failed_tasks: int = 0
    wall_s: float = 0.0  # jobs_s + idle_before_s: the stage's share of the application
    jobs_s: float = 0.0  # union of its jobs' run intervals
    # No job running just before one of this stage's jobs started (from the previous job's
    # end, or the application's start): the driver planning, listing files, starting things.
    idle_before_s: float = 0.0
    span_s: float = 0.0  # first job submitted to last job finished
    executor_run_s: float = 0.0
    executor_cpu_s: float = 0.0  # JVM threads only
    python_s: float = 0.0  # Python UDF code, summed over tasks and UDFs
    gc_s: float = 0.0
    input_bytes: int = 0
    output_bytes: int = 0
    shuffle_read_bytes: int = 0
    shuffle_write_bytes: int = 0
    spill_disk_bytes: int = 0
    first_job: int = -1  # orders the stages as they ran
    intervals: list[tuple[int, int]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Times from the job intervals, once they are all in."""
        self.jobs_s = union_seconds(self.intervals)
        self.wall_s = self.jobs_s + self.idle_before_s
        if self.intervals:
            first = min(start for start, _ in self.intervals)
            self.span_s = (max(end for _, end in self.intervals) - first) / 1000

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["intervals"], out["first_job"]
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 3)
        return out


@dataclass
class ApplicationMetrics:
    app_id: str | None = None
    app_s: float = 0.0  # application start to end, as Spark saw it
    stages: dict[str, StageMetrics] = field(default_factory=dict)

    def stage(self, description: str | None, prefix: str) -> StageMetrics:
        name = description or NO_DESCRIPTION
        name = name.removeprefix(prefix)
        if name not in self.stages:
            self.stages[name] = StageMetrics(name)
        return self.stages[name]

    def ordered(self) -> list[StageMetrics]:
        return sorted(self.stages.values(), key=lambda s: (s.first_job < 0, s.first_job))

    def totals(self) -> StageMetrics:
        total = StageMetrics("TOTAL")
        for stage in self.stages.values():
            for key, value in asdict(stage).items():
                if isinstance(value, (int, float)) and key != "first_job":
                    setattr(total, key, getattr(total, key) + value)
            total.intervals.extend(stage.intervals)
        total.close()
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "app_s": round(self.app_s, 3),
            "stages": [stage.to_dict() for stage in self.ordered()],
            "totals": self.totals().to_dict(),
        }


def event_files(folder: Path) -> list[Path]:
    """The one application's event log files under `folder`, in order: Spark 4 writes a
    rolling log (``eventlog_v2_<app>/events_<n>_<app>[.zstd]``), older ones a single file."""
    rolling = sorted(folder.glob("eventlog_v2_*"))
    if len(rolling) > 1:
        raise ValueError(f"{folder}: more than one application's event log: {rolling}")
    if rolling:
        files = [p for p in rolling[0].glob("events_*") if not p.name.startswith(".")]
        return sorted(files, key=lambda p: int(p.name.split("_")[1]))
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    if len(files) != 1:
        raise ValueError(f"{folder}: expected one event log file, found {files}")
    return files


def read_events(files: Iterable[Path]) -> Iterator[dict[str, Any]]:
    for path in files:
        for line in _lines(path):
            if line.strip():
                yield json.loads(line)


def _lines(path: Path) -> Iterator[bytes]:
    if path.suffix in ("", ".inprogress"):
        with path.open("rb") as handle:
            yield from handle
        return
    if path.suffix != ".zstd":
        raise ValueError(f"{path}: unsupported event log codec (set spark.eventLog.compress)")
    import pyarrow as pa  # only for compressed logs: the bench's own logs are plain

    with pa.CompressedInputStream(pa.OSFile(str(path)), "zstd") as stream:
        yield from stream.read().splitlines()


def union_seconds(intervals: list[tuple[int, int]]) -> float:
    """Length of the union of [start, end] millisecond intervals, in seconds."""
    total, reach = 0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total / 1000


class _Reader:
    """Folds the events into an ApplicationMetrics; one method per event kind."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.app = ApplicationMetrics()
        self.app_start: int | None = None
        self.job_stage: dict[int, StageMetrics] = {}
        self.job_start: dict[int, int] = {}
        self.spark_stage: dict[tuple[int, int], StageMetrics] = {}

    def feed(self, event: dict[str, Any]) -> None:
        handler = getattr(self, "on_" + event["Event"].rsplit(".", 1)[-1], None)
        if handler is not None:
            handler(event)

    def on_SparkListenerApplicationStart(self, event: dict[str, Any]) -> None:
        self.app.app_id = event.get("App ID")
        self.app_start = event["Timestamp"]

    def on_SparkListenerApplicationEnd(self, event: dict[str, Any]) -> None:
        if self.app_start is not None:
            self.app.app_s = (event["Timestamp"] - self.app_start) / 1000

    def on_SparkListenerJobStart(self, event: dict[str, Any]) -> None:
        job = event["Job ID"]
        stage = self.app.stage((event.get("Properties") or {}).get(DESCRIPTION), self.prefix)
        stage.jobs += 1
        if stage.first_job < 0:
            stage.first_job = job
        self.job_stage[job] = stage
        self.job_start[job] = event["Submission Time"]

    def on_SparkListenerJobEnd(self, event: dict[str, Any]) -> None:
        job = event["Job ID"]
        stage = self.job_stage.get(job)
        if stage is not None and job in self.job_start:
            stage.intervals.append((self.job_start[job], event["Completion Time"]))

    def on_SparkListenerStageSubmitted(self, event: dict[str, Any]) -> None:
        info = event["Stage Info"]
        description = (event.get("Properties") or {}).get(DESCRIPTION)
        stage = self.app.stage(description, self.prefix)
        stage.spark_stages += 1
        self.spark_stage[(info["Stage ID"], info["Stage Attempt ID"])] = stage

    def on_SparkListenerTaskEnd(self, event: dict[str, Any]) -> None:
        key = (event["Stage ID"], event["Stage Attempt ID"])
        stage = self.spark_stage.get(key) or self.app.stage(None, self.prefix)
        add_task(stage, event)


def add_task(stage: StageMetrics, event: dict[str, Any]) -> None:
    stage.tasks += 1
    if (event.get("Task End Reason") or {}).get("Reason") != "Success":
        stage.failed_tasks += 1
    metrics = event.get("Task Metrics") or {}
    stage.executor_run_s += metrics.get("Executor Run Time", 0) / 1e3
    stage.executor_cpu_s += metrics.get("Executor CPU Time", 0) / 1e9
    stage.gc_s += metrics.get("JVM GC Time", 0) / 1e3
    stage.input_bytes += (metrics.get("Input Metrics") or {}).get("Bytes Read", 0)
    stage.output_bytes += (metrics.get("Output Metrics") or {}).get("Bytes Written", 0)
    read = metrics.get("Shuffle Read Metrics") or {}
    stage.shuffle_read_bytes += read.get("Remote Bytes Read", 0) + read.get("Local Bytes Read", 0)
    written = metrics.get("Shuffle Write Metrics") or {}
    stage.shuffle_write_bytes += written.get("Shuffle Bytes Written", 0)
    stage.spill_disk_bytes += metrics.get("Disk Bytes Spilled", 0)
    for accumulable in (event.get("Task Info") or {}).get("Accumulables", []):
        if accumulable.get("Name") == PYTHON_TIME:
            stage.python_s += int(accumulable.get("Update") or 0) / 1e3


def application_metrics(folder: Path, prefix: str = "instructmill build: ") -> ApplicationMetrics:
    """Per-description metrics of the application whose event log is under `folder`; the
    description's `prefix` is dropped from the stage names."""
    reader = _Reader(prefix)
    for event in read_events(event_files(folder)):
        reader.feed(event)
    add_idle_time(reader.app, reader.app_start)
    for stage in reader.app.stages.values():
        stage.close()
    return reader.app


def add_idle_time(app: ApplicationMetrics, app_start: int | None) -> None:
    jobs = sorted(
        ((start, end, stage) for stage in app.stages.values() for start, end in stage.intervals),
        key=lambda job: job[:2],
    )
    reach = app_start if app_start is not None else (jobs[0][0] if jobs else 0)
    for start, end, stage in jobs:
        stage.idle_before_s += max(0, start - reach) / 1000
        reach = max(reach, end)
