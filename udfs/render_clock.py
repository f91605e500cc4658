"""The time bound of one record's render: a deadline, and in the main thread a timer.

A Python worker renders in its main thread, where ``setitimer(ITIMER_PROF)`` delivers
``SIGPROF`` after ``max_seconds`` of the process's CPU time; the handler raises
:class:`~udfs.render_bounds.TooSlow` between two bytecodes of whatever the template is doing, so
a loop with no output and no call
(``{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}``) stops
as well. Elsewhere only the deadline checks of :mod:`udfs.render_bounds` apply. CPU time, not
wall time: a worker that waits for a busy host, a GC pause of its JVM or a slow disk renders the
same records as an idle one, so the same input gives the same rejects.

Installing a signal handler costs two system calls, so :func:`alarm_scope` installs it once
for a run of records (one input batch) and :class:`bounded` only sets and clears the timer;
outside a scope, :class:`bounded` installs and restores the handler itself.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType

from udfs.render_bounds import RECORD_BOUNDS, Bounds, timed_out

_HAS_TIMER = hasattr(signal, "setitimer") and hasattr(signal, "SIGPROF")  # not on Windows
_SIGNAL = getattr(signal, "SIGPROF", 0)
_TIMER = getattr(signal, "ITIMER_PROF", 0)
_clock = time.process_time


class _Alarm:
    armed = False


def timer_armed() -> bool:
    """Whether the alarm will stop the record being rendered now."""
    return _Alarm.armed and threading.get_ident() == threading.main_thread().ident


def _can_alarm() -> bool:
    return _HAS_TIMER and threading.get_ident() == threading.main_thread().ident


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    # Not while bounded() cleans up: the exception would skip the rest of the cleanup.
    if _Alarm.armed and (frame is None or frame.f_code not in _CLEANUP):
        _Alarm.armed = False
        raise timed_out()


def _swallow_pending() -> None:
    """A Python call: an alarm that arrived while disarming runs its (now inert) handler."""


@contextmanager
def alarm_scope() -> Iterator[None]:
    """Keep the SIGPROF handler installed across many :class:`bounded` records. Someone
    else's timer is held meanwhile and given back, with what was left of it, at the end."""
    if not _can_alarm() or signal.getsignal(_SIGNAL) is _on_alarm:
        yield
        return
    previous = signal.signal(_SIGNAL, _on_alarm)
    started = _clock()
    earlier_delay, earlier_interval = signal.setitimer(_TIMER, 0)
    try:
        yield
    finally:
        _Alarm.armed = False
        signal.setitimer(_TIMER, 0)
        _swallow_pending()
        signal.signal(_SIGNAL, previous)
        if earlier_delay:
            left = earlier_delay - (_clock() - started)
            signal.setitimer(_TIMER, max(left, 1e-6), earlier_interval)


class bounded:
    """``with bounded(max_chars, max_seconds):`` renders one record under these bounds."""

    __slots__ = ("_bounds", "_scope", "_timer", "_token")

    def __init__(self, max_chars: int, max_seconds: float) -> None:
        self._bounds = Bounds(max_chars, max_seconds, _clock() + max_seconds)
        self._scope: object | None = None
        self._timer = False

    def __enter__(self) -> None:
        self._token = RECORD_BOUNDS.set(self._bounds)
        if _can_alarm():
            if signal.getsignal(_SIGNAL) is not _on_alarm:
                scope = alarm_scope()
                scope.__enter__()
                self._scope = scope
            self._timer = True
            _Alarm.armed = True
            signal.setitimer(_TIMER, self._bounds.max_seconds)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        _Alarm.armed = False
        if self._timer:
            signal.setitimer(_TIMER, 0)
            _swallow_pending()
            if self._scope is not None:
                self._scope.__exit__(None, None, None)  # type: ignore[attr-defined]
        RECORD_BOUNDS.reset(self._token)


_CLEANUP = frozenset({bounded.__exit__.__code__, alarm_scope.__wrapped__.__code__})
