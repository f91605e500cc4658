"""Per-record bounds on rendering: output size and time, enforced inside one Python process.

A template is code. ``{{ 'a' * 10**9 }}`` asks for a gigabyte in one C call, and two nested
loops over ``range(100000)`` run for hours; a thread or a process per record would cost more
than the render. So:

- size: every step that can grow a value at once (operators, ``~``, literals, growth filters
  and methods, printing, joining a buffer) is sized *before* it runs, and refused when the
  result would pass ``max_chars`` (:class:`TooLarge`). A C call cannot be interrupted, so a
  check after it would come too late;
- time: a ``SIGPROF`` CPU-time timer (``setitimer``, :mod:`udfs.render_clock`) around each record in
  the main thread, where a Python worker renders, plus deadline reads on calls, checked
  filters and every 256th output chunk, and off the main thread on every 256th loop step, the
  only bound left there (:class:`TooSlow`).

The checks read the bounds of the record being rendered from a context variable, so the one
Jinja environment of the process serves every plan's limits.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from contextvars import ContextVar
from typing import Any, NamedTuple

from jinja2.utils import Namespace

DEFAULT_MAX_CHARS = 1_000_000
DEFAULT_MAX_SECONDS = 0.5
# Fixed limits, not per plan: no prompt needs more, and the values are what keep one step cheap.
MAX_RANGE = 100_000  # jinja2.sandbox.MAX_RANGE
MAX_INT_BITS = 1 << 16
_MAX_DEPTH = 64
_TICK_EVERY = 256  # loop steps between two reads of the clock


class BoundExceeded(Exception):
    """A record's render passed a bound; ``reason`` is its reject reason."""

    reason = "render_bound"

    def __init__(self, message: str, setting: str | None) -> None:
        super().__init__(message)
        self.setting = setting  # the pipeline setting that raises the limit; None: fixed


class TooLarge(BoundExceeded):
    reason = "render_too_large"


class TooSlow(BoundExceeded):
    reason = "render_timeout"


class Bounds(NamedTuple):
    max_chars: int = DEFAULT_MAX_CHARS
    max_seconds: float = DEFAULT_MAX_SECONDS
    deadline: float = math.inf  # time.process_time() value; inf outside bounded()


_DEFAULT = Bounds()
# Set per record by udfs.render_clock.bounded.
RECORD_BOUNDS: ContextVar[Bounds] = ContextVar("instructmill_render_bounds")


def current() -> Bounds:
    """The bounds of the record being rendered; the defaults (and no deadline) outside one."""
    return RECORD_BOUNDS.get(_DEFAULT)


def too_large(what: str, size: float) -> TooLarge:
    limit = current().max_chars
    return TooLarge(
        f"{what} would make {size:,.0f} characters, more than render.max_chars ({limit:,})",
        "render.max_chars",
    )


def check_chars(size: float, what: str) -> None:
    if size > current().max_chars:
        raise too_large(what, size)


def check_int_bits(bits: float) -> None:
    if bits > MAX_INT_BITS:
        raise TooLarge(
            f"an integer of about {bits:,.0f} bits, more than the {MAX_INT_BITS:,} allowed", None
        )


def timed_out() -> TooSlow:
    seconds = current().max_seconds
    return TooSlow(
        f"rendering took more than render.max_seconds ({seconds:g} s)", "render.max_seconds"
    )


def tick() -> None:
    """Raise :class:`TooSlow` once the record's deadline has passed."""
    if time.process_time() > current().deadline:
        raise timed_out()


def printed_size(value: Any, budget: int | None = None) -> int:
    """About ``len(str(value))`` (an overestimate), counted without building it. Stops once
    past ``budget``: a list that holds one list twice, sixty levels deep, prints 2**60 times
    its memory, so it is never walked to the end, and each object is sized once."""
    if type(value) is str:
        return len(value)
    return _size(value, current().max_chars if budget is None else budget, 0, {})


def nesting(value: Any, depth: int = 0) -> int:
    """How many containers deep a value goes (up to 64: deeper is a reject anyway)."""
    if depth > _MAX_DEPTH or _leaf_size(value) is not None:
        return depth
    if isinstance(value, Namespace):
        value = value._Namespace__attrs
    items = value.values() if isinstance(value, Mapping) else value
    return max((nesting(item, depth + 1) for item in items), default=depth + 1)


def _leaf_size(value: Any) -> int | None:
    """The printed size of a value that holds no others; None for a container."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    if value is None or isinstance(value, float):
        return 24
    if isinstance(value, (bytes, bytearray)):
        return 4 * len(value) + 3
    if isinstance(value, (Mapping, list, tuple, set, frozenset, KeysView, ValuesView, ItemsView)):
        return None
    if isinstance(value, Namespace):  # prints its attributes
        return None
    try:
        return len(value) + 2  # BlankValue, Undefined-like objects with a length
    except Exception:
        return 100  # a macro, loop, cycler, generator...: a short repr


def _size(value: Any, budget: int, depth: int, seen: dict[int, int]) -> int:
    leaf = _leaf_size(value)
    if leaf is not None:
        return leaf
    known = seen.get(id(value))
    if known is not None:
        return known
    if depth > _MAX_DEPTH:
        return budget + 1  # deeper than data ever is (or a cycle): treat as too large
    if isinstance(value, Mapping):
        items: Iterable[Any] = value.items()
    elif isinstance(value, Namespace):
        items = value._Namespace__attrs.items()
    else:
        items = value
    total = 2
    for item in items:
        total += _size(item, budget - total, depth + 1, seen) + 2
        if total > budget:
            return total  # a partial count, never remembered
    seen[id(value)] = total  # the value is alive until the walk ends, so its id is its own
    return total


def guarded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    deadline = current().deadline
    for count, item in enumerate(iterable):
        if not count % _TICK_EVERY and time.process_time() > deadline:
            raise timed_out()
        yield item


class GuardedLoop:
    """What a ``{% for %}`` iterates: its items, with a deadline check, keeping ``len()``
    (``loop.length``) when the items have one."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = items

    def __iter__(self) -> Iterator[Any]:
        return guarded_iter(self._items)

    def __len__(self) -> int:
        return len(self._items)  # type: ignore[arg-type]  # TypeError: Jinja counts by list


def bounded_range(*args: int) -> range:
    """The sandbox's ``range``, refused with :class:`TooLarge` rather than OverflowError."""
    numbers = range(*args)
    try:
        count: float = len(numbers)
    except OverflowError:
        count = math.inf
    if count > MAX_RANGE:
        raise TooLarge(
            f"range() of {count:,.0f} numbers, more than the sandbox's {MAX_RANGE:,}", None
        )
    return numbers


class BoundedBuffer(list):  # type: ignore[type-arg]
    """The list a macro, ``{% set %}`` block, ``{% filter %}`` block or ``caller()`` collects its
    output in: no output check sees it, and each loop step may append a new string."""

    __slots__ = ("_chars", "_limit")

    def __init__(self) -> None:
        super().__init__()
        self._chars = 0
        self._limit = current().max_chars

    def append(self, chunk: Any) -> None:
        self._chars += len(chunk) if isinstance(chunk, str) else 0
        if self._chars > self._limit:
            raise too_large("a block's output", self._chars)
        super().append(chunk)

    def extend(self, chunks: Iterable[Any]) -> None:
        chunks = tuple(chunks)
        self._chars += sum(len(chunk) for chunk in chunks if isinstance(chunk, str))
        if self._chars > self._limit:
            raise too_large("a block's output", self._chars)
        super().extend(chunks)


def bounded_concat(parts: Iterable[Any]) -> str:
    """``environment.concat``: joins a macro's, ``{% set %}`` block's or filter block's output,
    which no output check sees (100,000 loop steps append one reference each)."""
    chunks = parts if isinstance(parts, list) else list(parts)
    check_chars(sum(map(len, chunks)), "joining a block's output")
    return "".join(chunks)


def bounded_str_join(parts: Iterable[Any]) -> str:
    """``a ~ b``: sized before the strings are made."""
    values = list(parts)
    size = 0
    for value in values:
        size += len(value) if type(value) is str else printed_size(value)
    check_chars(size, "'~'")
    return "".join(map(str, values))


def checked_literal(value: Any) -> Any:
    """A list, tuple or dict literal: ``[x, x]`` repeated makes a value that prints (and
    compares, in C, uninterruptibly) 2**n times its memory."""
    check_chars(printed_size(value), "a literal")
    return value


_PRINTS_SHORT = frozenset({int, float, bool, type(None)})  # str(int) stops at 4,300 digits


def check_printable(value: Any) -> Any:
    """``environment.finalize``: a value is sized before ``{{ }}`` prints it."""
    if type(value) is not str and type(value) not in _PRINTS_SHORT:
        check_chars(printed_size(value), "printing a value")
    return value


def render_text(template: Any, variables: Mapping[str, Any]) -> str:
    """``template.render(**variables)``, stopped once the output passes ``max_chars``."""
    bounds = current()
    limit = bounds.max_chars
    # The render function itself, not Template.generate(): one generator less per chunk, and
    # the exception is the template's own either way.
    chunks = template.root_render_func(template.new_context(variables))
    parts: list[str] = []
    total = 0
    countdown = _TICK_EVERY
    try:
        for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise too_large("the rendered text", total)
            parts.append(chunk)
            countdown -= 1
            if not countdown:
                countdown = _TICK_EVERY
                if time.process_time() > bounds.deadline:
                    raise timed_out()
    finally:
        chunks.close()
    return "".join(parts)


_PERCENT_SPEC = re.compile(r"%(?:\(([^)]*)\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.S)


def check_percent(text: str, args: Any) -> None:
    """Size ``text % args`` before it is made: widths and precisions count as written, each
    value as printed (10x for ``%r``/``%a``, whose escapes can be that long)."""
    if "%" not in text:
        return
    limit = current().max_chars
    positional = list(args) if isinstance(args, tuple) else [args]
    index = 0
    total = len(text)
    for name, width, precision, kind in _PERCENT_SPEC.findall(text):
        if kind == "%":
            continue
        for number in (width, precision):
            if number == "*":
                given = positional[index] if index < len(positional) else 0
                index += 1
                total += given if isinstance(given, int) and given > 0 else 0
            elif number:
                total += int(number) if len(number) < 10 else limit + 1
        if name:
            value = args.get(name) if isinstance(args, Mapping) else None
        else:
            value = positional[index] if index < len(positional) else None
            index += 1
        total += printed_size(value, limit) * (10 if kind in "ra" else 1)
        total += 330 if isinstance(value, float) else 0  # '%f' % 1e308 has 309 digits
        if total > limit:
            raise too_large("'%' formatting", total)


_DIGITS = re.compile(r"\d+")


def check_format_spec(spec: str) -> int:
    """The widest width or precision in a ``format()`` spec; too large if past the limit."""
    widest = 0
    for digits in _DIGITS.findall(spec):
        width = int(digits) if len(digits) < 10 else 10**10
        check_chars(width, f"the format spec {spec[:20]!r}")
        widest = max(widest, width)
    return widest
