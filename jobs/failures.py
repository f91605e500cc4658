"""Failures in one readable line: which stage failed, and why.

A Spark failure reaches Python as ``Py4JJavaError: An error occurred while calling
o3547.collectToPython`` with the reason several Java causes deep, or, for a task, inside a
Python traceback inside a Java message. :func:`explain` digs out the line a person needs: the
Python error a task raised (and where), the root Java cause, a crashed Python worker with what to
do about it, and the file involved when the message names one. Each pipeline stage wraps its
failure as :class:`StageError` (see :func:`in_stage`), so the log says ``build failed in stage
'write data': ...``; the full traceback stays available at debug level.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from py4j.protocol import Py4JError, Py4JJavaError
from pyspark.errors import PySparkException

from jobs.config import ConfigError

MAX_CHARS = 600
_MAX_CAUSES = 32  # a cause chain that loops (Java allows it) stops somewhere

_TRACEBACK = "Traceback (most recent call last):"
_CRASHED = "Python worker exited unexpectedly (crashed)"
_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>.+)$')
_URI = re.compile(r"\b(?:file|hdfs|s3a?|s3n|gs|abfss?|wasbs?|viewfs|dbfs):/[^\s'\"`,;()\[\]]+")
_ATTEMPTS = re.compile(r"failed (\d+) times?\b")
_LOST_TASK = re.compile(r"most recent failure: Lost task [^)]*\)(?: \([^)]*\))?: (.+)")
_SQLSTATE = re.compile(r"\s*SQLSTATE: \w+;?")
# Spark's error messages end in generic advice ("Please check ...", "If necessary, ...").
_ADVICE = re.compile(r"(?<=\.)\s+(?:Please|If|Consider|You can|To )\b.*$")
# Wrappers whose class name says nothing the message does not.
_GENERIC = {"SparkException", "RuntimeException", "Exception", "Throwable", "ExecutionException"}


class StageError(RuntimeError):
    """A pipeline stage failed: ``command`` (build, dedup, ...), ``stage`` (its name in the log
    and in Spark's UI) and ``cause`` (:func:`explain` of the original, which is ``__cause__``)."""

    def __init__(self, command: str, stage: str, cause: str) -> None:
        super().__init__(f"{command} failed in stage {stage!r}: {cause}")
        self.command = command
        self.stage = stage
        self.cause = cause


@contextmanager
def in_stage(command: str, stage: str) -> Iterator[None]:
    """``with in_stage("build", "write data"): ...``: any failure inside becomes a
    :class:`StageError` raised from it. A config error (exit code 2) and a stage error from an
    inner stage pass through unchanged."""
    try:
        yield
    except (ConfigError, StageError):
        raise
    except Exception as exc:
        raise StageError(command, stage, explain(exc)) from exc


@dataclass(frozen=True)
class _Throwable:
    kind: str  # the Java class's simple name
    message: str


def _java_chain(exc: BaseException) -> list[_Throwable]:
    """The Java throwable behind ``exc`` and its causes, outermost first."""
    # Py4JJavaError holds it as java_exception; pyspark's converted exceptions as _origin.
    java: Any = getattr(exc, "java_exception", None)
    if java is None:
        java = getattr(exc, "_origin", None)
    chain: list[_Throwable] = []
    try:
        while java is not None and len(chain) < _MAX_CAUSES:
            chain.append(_Throwable(str(java.getClass().getSimpleName()), java.getMessage() or ""))
            java = java.getCause()
    except Exception:  # the JVM is gone: what was read so far is all there is
        pass
    return chain


def _python_side_text(exc: BaseException) -> str:
    if isinstance(exc, Py4JJavaError):
        return ""  # its text is the Java chain's, with every stack frame
    # pyspark appends the JVM stack trace when spark.sql.pyspark.jvmStacktrace.enabled is set.
    return str(exc).split("\n\nJVM stacktrace:", 1)[0]


def _python_error(text: str) -> str | None:
    """The last Python traceback in ``text`` as 'XxxError: message (at file.py:12 in f)'."""
    if _TRACEBACK not in text:
        return None
    where, error = "", None
    for line in text.rsplit(_TRACEBACK, 1)[1].splitlines():
        if line.startswith("\t"):  # the Java frames after the Python traceback
            break
        frame = _FRAME.match(line)
        if frame:
            name = PurePath(frame["file"]).name
            where, error = f" (at {name}:{frame['line']} in {frame['func']})", None
        elif error is None and line.strip() and not line.startswith(" "):
            error = line.strip()
    return f"{error}{where}" if error else None


def _first_file(texts: list[str]) -> str | None:
    for text in texts:
        found = _URI.search(text)
        if found:
            return found.group(0).rstrip(".:")
    return None


def _clean(message: str) -> str:
    line = (message.strip().splitlines() or [""])[0]
    return _ADVICE.sub("", _SQLSTATE.sub("", line)).strip()


def _crashed(texts: list[str], file: str | None) -> str:
    attempts = next((int(m[1]) for t in texts for m in _ATTEMPTS.finditer(t)), None)
    where = f" while reading {file}" if file and "/_temporary/" not in file else ""
    line = f"a Python worker crashed (killed, or out of memory){where}"
    if attempts is not None and attempts > 1:
        return (
            f"{line}; the task failed all {attempts} attempts: give the Python workers more "
            "memory (spark.executor.memory, spark.executor.pyspark.memory) or smaller Arrow "
            "batches (spark.sql.execution.arrow.maxRecordsPerBatch)"
        )
    tried = "; the task was tried once" if attempts == 1 else ""
    return (
        f"{line}{tried}: local mode retries a task only when the master names its attempts, "
        "local[N,F] (instructmill's default is local[*,4]); on a cluster see "
        "spark.task.maxFailures"
    )


def _root_cause(chain: list[_Throwable]) -> str:
    informative = [
        t for t in chain if t.message and not t.message.startswith("Job aborted due to stage")
    ]
    if not informative:  # only the scheduler's summary, e.g. an executor lost on a cluster
        summary = chain[-1].message if chain else ""
        lost = _LOST_TASK.search(summary)
        return _clean(lost.group(1) if lost else summary) or (chain[-1].kind if chain else "")
    root = informative[-1]
    message = _clean(root.message)
    if message.startswith("[") or root.kind in _GENERIC:
        return message
    return f"{root.kind}: {message}"


def _spark_explanation(exc: BaseException) -> str:
    chain = _java_chain(exc)
    texts = [t.message for t in reversed(chain)] + [_python_side_text(exc)]
    if not chain and isinstance(exc, Py4JJavaError):
        texts.append(exc.errmsg)  # no JVM to ask (its str() would ask it): this is all there is
    file = _first_file(texts)
    if any(_CRASHED in text for text in texts):
        return _crashed(texts, file)
    line = next((found for text in texts if (found := _python_error(text))), None)
    if line is None:
        line = _root_cause(chain) if chain else _clean(next((t for t in texts if t), repr(exc)))
    if file and file not in line and "/_temporary/" not in file:
        line += f" (file {file})"
    return line


def _python_explanation(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    line = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    if frames:
        line += (
            f" (at {PurePath(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})"
        )
    cause = exc.__cause__
    if isinstance(cause, (Py4JError, PySparkException)):
        line += f": {explain(cause)}"
    return line


def _explanation(exc: BaseException) -> str:
    if isinstance(exc, StageError):
        return exc.cause
    if isinstance(exc, (Py4JJavaError, PySparkException)):
        return _spark_explanation(exc)
    if isinstance(exc, Py4JError):
        return (
            f"the Spark JVM stopped answering ({_clean(str(exc))}): it may have run out of "
            "memory (spark.driver.memory) or been killed"
        )
    return _python_explanation(exc)


def explain(exc: BaseException) -> str:
    """One line saying why ``exc`` happened, for the log and the exit message."""
    try:
        line = " ".join(_explanation(exc).split())
    except Exception:  # explaining must never hide the failure it explains
        line = f"{type(exc).__name__} (see the traceback at debug level)"
    return line if len(line) <= MAX_CHARS else line[: MAX_CHARS - 3] + "..."
