"""The Jinja sandbox with :mod:`udfs.render_bounds` wired into every place a value can grow.

- ``*``, ``**``, ``+`` and ``%`` are intercepted operators: sized before they run, and, being
  intercepted, never folded into a constant while compiling (``{{ 'a' * 10**9 }}`` used to
  build its gigabyte in ``instructmill check``);
- the filters that can grow a value (:data:`CHECKED_FILTERS`) are wrapped: context-passing,
  so never folded at compile time either, with a deadline check, a size estimate from their
  input and parameters (``center``, ``indent``, ``replace``, ``wordwrap``, ``format``,
  ``join``, ``batch``, ``slice``...) and a ``sum`` that adds lists one sized step at a time;
- every call (methods, macros, globals) checks the deadline and goes through
  :mod:`udfs.bounded_ops`;
- ``{% set %}`` blocks, macros and ``caller()`` collect their output in a
  :class:`~udfs.render_bounds.BoundedBuffer`;
- ``str.format`` runs through a formatter that sizes each field;
- ``{% for %}`` iterables, ``~`` and list/tuple/dict literals are rewritten in the template's
  syntax tree (:func:`guard_template`) to go through the checks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import BuiltinMethodType, MethodType
from typing import Any

from jinja2 import nodes, pass_context, pass_environment
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import make_attrgetter
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from udfs.bounded_ops import (
    CONTAINERS,
    arg,
    check_binop,
    check_call,
    check_result,
    estimate_replace,
)
from udfs.render_bounds import (
    BoundedBuffer,
    GuardedLoop,
    bounded_concat,
    bounded_range,
    bounded_str_join,
    check_chars,
    check_format_spec,
    check_percent,
    check_printable,
    checked_literal,
    current,
    nesting,
    printed_size,
    tick,
)
from udfs.render_clock import timer_armed

# Filters that turn their input into text: a container is sized before it is printed.
_STRINGIFYING = frozenset(
    "center e escape forceescape format indent pprint replace tojson urlencode urlize wordwrap "
    "xmlattr".split()
)
# Filters whose output can be a multiple of their input, again and again when repeated.
_GROWING = frozenset("center e escape forceescape indent pprint tojson urlencode urlize".split())
# Filters that list an iterator: zip(x, x)|list holds each item twice.
_LISTING = frozenset("dictsort groupby list reverse sort".split())
# The filters wrapped with checks. The others (trim, upper, length, default...) make at most a
# small multiple of their input once, so they run as they are, and fold when constant.
CHECKED_FILTERS = _STRINGIFYING | _LISTING | {"batch", "join", "slice", "sum"}
_FORMAT_METHODS = frozenset({"format", "format_map"})
_METHOD_TYPES = (BuiltinMethodType, MethodType)


class _BoundedFormatting:
    """``str.format``: each field is sized as it is formatted, so the final join is bounded."""

    _chars = 0

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._chars = len(format_string)
        return super().vformat(format_string, args, kwargs)  # type: ignore[misc]

    def format_field(self, value: Any, format_spec: str) -> Any:
        widest = check_format_spec(format_spec)
        self._chars += max(printed_size(value), widest)
        check_chars(self._chars, "str.format()")
        return super().format_field(value, format_spec)  # type: ignore[misc]


class _Formatter(_BoundedFormatting, SandboxedFormatter):
    pass


class _EscapeFormatter(_BoundedFormatting, SandboxedEscapeFormatter):
    pass


class _BufferedCodeGenerator(CodeGenerator):
    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.new_buffer()")


class BoundedEnvironment(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BufferedCodeGenerator
    new_buffer = BoundedBuffer

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=check_printable, **options)
        self.concat = bounded_concat  # type: ignore[assignment]
        self.globals["range"] = bounded_range
        self.filters["sum"] = _bounded_sum
        self.filters["_im_loop"] = _loop_filter
        self.filters["_im_literal"] = _literal_filter
        self.filters["_im_concat"] = _concat_filter

    def wrap_filters(self) -> None:
        """Call once all filters are registered."""
        for name in CHECKED_FILTERS:
            self.filters[name] = _bounded_filter(name, self.filters[name])

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        return self.binop_table[operator](left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        args = check_call(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        check_result(__obj, args, result)
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # Runs on every attribute lookup: most are not a format method, and say so cheaply.
        if type(value) not in _METHOD_TYPES or value.__name__ not in _FORMAT_METHODS:
            return None
        if super().wrap_str_format(value) is None:
            return None
        text = value.__self__
        formatter: SandboxedFormatter = (
            _EscapeFormatter(self, escape=text.escape)
            if isinstance(text, Markup)
            else _Formatter(self)
        )
        is_format_map = value.__name__ == "format_map"

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if is_format_map:  # the sandbox's own argument checks
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                args, kwargs = (), args[0]
            return type(text)(formatter.vformat(text, args, kwargs))

        return functools.update_wrapper(bounded_format, value)


def _center(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    width = arg(args, kwargs, 0, "width", 80)
    check_chars(width if isinstance(width, int) else 0, "the center filter")


def _indent(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    width = arg(args, kwargs, 0, "width", 4)
    width = width if isinstance(width, int) else len(str(width))
    text = str(value)
    check_chars(len(text) + (text.count("\n") + 1) * width, "the indent filter")


def _replace(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if len(args) >= 2:
        count = arg(args, kwargs, 2, "count", None)
        size = estimate_replace(str(value), str(args[0]), str(args[1]), count)
        check_chars(size, "the replace filter")


def _wordwrap(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text, width = str(value), arg(args, kwargs, 0, "width", 79)
    wrap = arg(args, kwargs, 3, "wrapstring", None) or "\n"
    # Each line and the next word pass the width, so there are at most 2*len/width lines.
    lines = 2 * len(text) // max(width if isinstance(width, int) else 1, 1) + 2
    check_chars(len(text) + (lines + text.count("\n")) * len(str(wrap)), "the wordwrap filter")


def _format(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    check_percent(str(value), kwargs or args)


def _fill(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    count = arg(args, kwargs, 0, "linecount", kwargs.get("slices"))
    fill = arg(args, kwargs, 1, "fill_with", None)
    if isinstance(count, int) and fill is not None:  # up to count copies of fill
        check_chars(count * printed_size(fill), "batch or slice's fill_with")


def _tojson(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    indent = arg(args, kwargs, 0, "indent", None)
    if isinstance(indent, int) and indent > 0:
        # A line per value at most, each indented by indent times its depth.
        size = printed_size(value)
        check_chars(size + size * indent * nesting(value), "the tojson filter's indent")


def _urlize(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    extra = sum(
        len(str(arg(args, kwargs, i, key, None) or "")) for i, key in ((2, "target"), (3, "rel"))
    )
    text = str(value)
    links = text.count(".") + text.count("@") + text.count(":") + 1
    check_chars(3 * len(text) + links * (extra + 60), "the urlize filter")


_FILTER_CHECKS = {
    "batch": _fill,
    "center": _center,
    "format": _format,
    "indent": _indent,
    "replace": _replace,
    "slice": _fill,
    "tojson": _tojson,
    "urlize": _urlize,
    "wordwrap": _wordwrap,
}


def _pre_filter(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if name in _STRINGIFYING and not isinstance(value, str):
        check_chars(printed_size(value), f"the {name} filter's input")
    if name in _GROWING and isinstance(value, str):
        check_chars(len(value), f"the {name} filter's input")
    check = _FILTER_CHECKS.get(name)
    if check is not None:
        check(value, args, kwargs)


def _join_input(environment: Any, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]):
    """The items ``join`` will print, listed and sized; an attribute is looked up first."""
    separator = str(arg(args, kwargs, 0, "d", ""))
    attribute = arg(args, kwargs, 1, "attribute", None)
    items = (
        list(value)
        if attribute is None
        else list(map(make_attrgetter(environment, attribute), value))
    )
    limit = current().max_chars
    size = len(separator) * max(len(items) - 1, 0)
    for item in items:
        size += len(item) if type(item) is str else printed_size(item, limit)
    check_chars(size, "the join filter")
    return items, (separator,), {}


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    pass_arg = _PassArg.from_obj(function)

    def bounded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        if name == "join":
            value, args, kwargs = _join_input(context.environment, value, args, kwargs)
        else:
            _pre_filter(name, value, args, kwargs)
        if pass_arg is _PassArg.context:
            result = function(context, value, *args, **kwargs)
        elif pass_arg is _PassArg.eval_context:
            result = function(context.eval_ctx, value, *args, **kwargs)
        elif pass_arg is _PassArg.environment:
            result = function(context.environment, value, *args, **kwargs)
        else:
            result = function(value, *args, **kwargs)
        if name in _LISTING and not isinstance(value, (str, *CONTAINERS)):
            check_chars(printed_size(result), f"the {name} filter's result")
        return result

    # Not the original's __dict__: its jinja_pass_arg would replace pass_context's.
    return pass_context(functools.update_wrapper(bounded, function, updated=()))


@pass_environment
def _bounded_sum(
    environment: Any, iterable: Any, attribute: str | int | None = None, start: Any = 0
) -> Any:
    """``sum``: the builtin for numbers; for lists one sized ``+`` at a time, since the builtin
    concatenates them in one C loop that nothing can interrupt."""
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    if not isinstance(start, (list, tuple)):
        return sum(iterable, start)
    total = start
    for item in iterable:
        check_binop("+", total, item)
        total = total + item
        tick()
    return total


@pass_context
def _loop_filter(context: Context, value: Any) -> Any:
    # Under the timer a loop needs no clock reads of its own: the alarm stops it.
    return value if timer_armed() else GuardedLoop(value)


@pass_context
def _literal_filter(context: Context, value: Any) -> Any:
    return checked_literal(value)


@pass_context
def _concat_filter(context: Context, values: list[Any]) -> str:
    return bounded_str_join(values)


def _through(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Guard(NodeTransformer):
    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _through(node.iter, "_im_loop")
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _through(nodes.List(node.nodes, lineno=node.lineno), "_im_concat")

    def _literal(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node
        try:
            node.as_const()  # all constants: folded while compiling, and small
        except nodes.Impossible:
            return _through(node, "_im_literal")
        return node

    visit_List = visit_Tuple = visit_Dict = _literal


def guard_template(tree: nodes.Template, environment: BoundedEnvironment) -> nodes.Template:
    """Route the tree's loops, ``~`` and literals through the checks (before compiling)."""
    _Guard().visit(tree)
    tree.set_environment(environment)
    return tree
