"""Size checks for the steps of a template that can grow a value at once: the intercepted
operators (``*``, ``**``, ``+``, ``%``) and calls (string methods that pad, repeat or join,
``int.to_bytes``, ``dict.fromkeys``, ``lipsum``), each sized *before* it runs, and what a call
returns or grows in place sized after. See :mod:`udfs.render_bounds` for why before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2.utils import Namespace, generate_lorem_ipsum

from udfs.render_bounds import check_chars, check_int_bits, check_percent, current, printed_size

_SEQUENCES = (str, bytes, list, tuple)
CONTAINERS = (list, tuple, dict)
_GROWS_IN_PLACE = frozenset({"append", "extend", "insert", "update", "setdefault"})


def arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any):
    return args[index] if len(args) > index else kwargs.get(name, default)


def _check_repeat(seq: Any, times: int) -> None:
    if times <= 0 or not seq:
        return
    check_chars(len(seq) * times, f"repeating a {type(seq).__name__} {times:,} times")
    if not isinstance(seq, (str, bytes)):
        each = printed_size(seq, current().max_chars // times + 1)
        check_chars(each * times, f"repeating a {type(seq).__name__} {times:,} times")


def _check_mul(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, _SEQUENCES):
        left, right = right, left
    if isinstance(left, _SEQUENCES) and isinstance(right, int):
        _check_repeat(left, right)
    elif isinstance(left, int) and isinstance(right, int):
        check_int_bits(left.bit_length() + right.bit_length())


def _check_pow(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        check_int_bits((abs(left).bit_length() - 1) * right)


def _check_add(left: Any, right: Any) -> None:
    if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
        check_chars(len(left) + len(right), "'+'")
    elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        check_chars(len(left) + len(right), "'+'")
        check_chars(printed_size(left) + printed_size(right), "'+'")


def _check_mod(left: Any, right: Any) -> None:
    if isinstance(left, str):
        check_percent(left, right)


_BINOP_CHECKS = {"*": _check_mul, "**": _check_pow, "+": _check_add, "%": _check_mod}


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Size ``left <operator> right`` before Python computes it."""
    _BINOP_CHECKS[operator](left, right)


def estimate_replace(text: str, old: str, new: str, count: Any) -> int:
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _check_str_method(text: str | bytes, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Size a growing str/bytes method before it runs; ``join``'s iterable is listed first."""
    what = f"{type(text).__name__}.{name}()"
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        check_chars(args[0], what)
    elif name == "expandtabs" and isinstance(size := arg(args, {}, 0, "tabsize", 8), int):
        check_chars(len(text) + text.count("\t" if isinstance(text, str) else b"\t") * size, what)
    elif name == "replace" and len(args) >= 2 and all(isinstance(a, type(text)) for a in args[:2]):
        check_chars(estimate_replace(text, args[0], args[1], arg(args, {}, 2, "", -1)), what)
    elif name == "join" and args:
        items = args[0] if isinstance(args[0], (list, tuple)) else list(args[0])
        lengths = sum(len(item) for item in items if isinstance(item, (str, bytes)))
        check_chars(lengths + len(text) * max(len(items) - 1, 0), what)
        args = (items, *args[1:])
    elif name == "translate" and args and isinstance(args[0], (Mapping, list, tuple)):
        table = args[0].values() if isinstance(args[0], Mapping) else args[0]
        widest = max((len(v) for v in table if isinstance(v, (str, bytes))), default=1)
        check_chars(len(text) * max(widest, 1), what)
    return args


def check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    receiver = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(receiver, (str, bytes)):
        return _check_str_method(receiver, name, args)
    if isinstance(receiver, int) and name == "to_bytes":
        check_chars(arg(args, kwargs, 0, "length", 1), "int.to_bytes()")
    elif receiver is dict and name == "fromkeys" and args:
        keys = args[0] if isinstance(args[0], (list, tuple, str, range)) else list(args[0])
        check_chars(len(keys) * (printed_size(arg(args, {}, 1, "", None)) + 2), "dict.fromkeys()")
        args = (keys, *args[1:])
    elif obj is generate_lorem_ipsum:
        paragraphs = arg(args, kwargs, 0, "n", 5)
        words = arg(args, kwargs, 3, "max", 100)
        if isinstance(paragraphs, int) and isinstance(words, int):
            check_chars(paragraphs * words * 12, "lipsum()")
    return args


def check_result(obj: Any, args: tuple[Any, ...], result: Any) -> None:
    receiver = getattr(obj, "__self__", None)
    if isinstance(result, (str, bytes)):
        check_chars(len(result), "a call's result")
    elif isinstance(result, (*CONTAINERS, Namespace)):
        # A method's list (split, copy...) is linear in its object; a function's may hold one
        # value many times over (dict(a=x, b=x), namespace(...)).
        if receiver is None:
            check_chars(printed_size(result), "a call's result")
        elif isinstance(result, CONTAINERS):
            check_chars(len(result), "a call's result")
    name = getattr(obj, "__name__", "")
    if isinstance(receiver, (list, dict)) and name in _GROWS_IN_PLACE:
        what = f"a {type(receiver).__name__} grown by {name}()"
        check_chars(len(receiver), what)
        if any(not isinstance(a, (str, int, float, bool, type(None))) for a in args):
            check_chars(printed_size(receiver), what)  # x.append(x[:]) doubles what x prints
