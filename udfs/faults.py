"""Fault injection for the tests: a switch read from the environment, which only tests set.

``INSTRUCTMILL_FAULT=<action>:<point>[@<marker>]`` makes :func:`inject` act at ``point``:
``kill`` (SIGKILL this process: a Python worker, or the driver), ``fail`` (raise
:class:`InjectedFault`) or ``disk-full`` (raise ``OSError(ENOSPC)``). With ``@<marker>``, the
fault fires once: the first process to create the marker file acts, later ones (Spark's task
retry, the next run) pass. Unset, :func:`inject` is one dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal

FAULT_ENV = "INSTRUCTMILL_FAULT"
ACTIONS = ("kill", "fail", "disk-full")


class InjectedFault(RuntimeError):
    pass


def _armed(point: str) -> str | None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None
    action, _, rest = spec.partition(":")
    target, _, marker = rest.partition("@")
    if target != point or action not in ACTIONS:
        return None
    if marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return None
    return action


def inject(point: str) -> None:
    """Act on the fault armed for ``point``, if any."""
    action = _armed(point)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "fail":
        raise InjectedFault(f"fault injected at {point}")
    if action == "disk-full":
        raise OSError(errno.ENOSPC, f"No space left on device (injected at {point})")
