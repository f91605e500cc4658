"""The console progress bar, under the name of the step that started the work.

Spark's own bar says ``[Stage 3:====>  (2 + 2) / 7]``: a stage number that means nothing to a
person watching a build. This one polls the same status tracker and prints the step every job
of it was described with (``describe``), ``[instructmill build: render+sign+langid+tag |
stage 3 ====>  (2 + 2) / 7]``. On a terminal the line is redrawn in place; in a log (stderr
is not a terminal) a line is printed when a step's first stage starts and then at most every
``LOG_EVERY`` seconds, so a CI log gets a few lines per step, not one per poll.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

from pyspark import SparkContext

POLL_SECONDS = 0.5
LOG_EVERY = 15.0
BAR_WIDTH = 24
# INSTRUCTMILL_PROGRESS=0 turns the bar off (Spark's own stays off too).
ENV_SWITCH = "INSTRUCTMILL_PROGRESS"

_lock = threading.Lock()
_label = "instructmill"


def describe(context: SparkContext, label: str | None) -> None:
    """Name the Spark jobs this thread starts from now on (the Spark UI's description, and
    the progress bar's label); ``None`` goes back to no description."""
    global _label
    context.setJobDescription(label)  # type: ignore[arg-type]
    with _lock:
        _label = label or "instructmill"


def current_label() -> str:
    with _lock:
        return _label


def _bar(done: int, running: int, total: int) -> str:
    filled = BAR_WIDTH * done // total if total else 0
    body = "=" * filled + (">" if filled < BAR_WIDTH else "")
    return f"{body:<{BAR_WIDTH}} ({done} + {running}) / {total}"


def progress_line(context: SparkContext, label: str) -> str | None:
    """The active stages (at most three, lowest first) under ``label``; None when idle."""
    tracker = context.statusTracker()
    parts = []
    for stage_id in sorted(tracker.getActiveStageIds())[:3]:
        info = tracker.getStageInfo(stage_id)
        if info is None:
            continue
        bar = _bar(info.numCompletedTasks, info.numActiveTasks, info.numTasks)
        parts.append(f"stage {stage_id} {bar}")
    if not parts:
        return None
    return f"[{label} | {' | '.join(parts)}]"


class ConsoleProgress:
    """A daemon thread printing :func:`progress_line` to ``stream`` until :meth:`stop`."""

    def __init__(self, context: SparkContext, stream: TextIO | None = None) -> None:
        self.context = context
        self.stream = stream or sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="instructmill-progress")
        self._thread.daemon = True
        self._shown = ""  # what the terminal line holds now
        self._logged: tuple[str, float] = ("", 0.0)  # last label printed to a log, and when

    @staticmethod
    def wanted() -> bool:
        return os.environ.get(ENV_SWITCH, "1") not in ("0", "false", "no", "off")

    def start(self) -> ConsoleProgress:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._clear()

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                line = progress_line(self.context, current_label())
            except Exception:  # a stopping context: the bar must never fail the job
                return
            self._show(line)

    def _show(self, line: str | None) -> None:
        if self.interactive:
            if line is None:
                self._clear()
                return
            width = max(len(self._shown), len(line))
            self.stream.write("\r" + line.ljust(width))
            self.stream.flush()
            self._shown = line
            return
        if line is None:
            return
        label = current_label()
        last_label, last_time = self._logged
        now = time.monotonic()
        if label != last_label or now - last_time >= LOG_EVERY:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._logged = (label, now)

    def _clear(self) -> None:
        if self.interactive and self._shown:
            self.stream.write("\r" + " " * len(self._shown) + "\r")
            self.stream.flush()
            self._shown = ""
