"""What a template does apart from its words: its Jinja expressions and statements, read from
the parsed template (its AST), so a reworded variant can be held to exactly the same ones.

Two templates have the same shape when they hold the same multiset of expressions, each under
the same enclosing statements (``{{ title }}`` inside ``{% if title %}`` stays inside it), and
the same statements. The literal text between them (``TemplateData``) is what may change, and
so is the order in which the expressions come: "{{ b }} given {{ a }}" rewords "{{ a }} then
{{ b }}". A node's ``repr`` names its type and fields but not its line, so it compares the
expression itself, whatever whitespace or line it was written on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import jinja2
from jinja2 import meta, nodes

Shape = Counter[tuple[tuple[str, ...], str]]


@dataclass(frozen=True)
class TemplateShape:
    expressions: Shape
    variables: frozenset[str]
    words: str  # the literal text, joined by spaces: what a translation must translate


def _signature(statement: nodes.Node) -> str:
    """A statement's type and its own expressions (an ``if``'s test, a ``for``'s target and
    iterable), not the statements it holds."""
    parts = []
    for name in statement.fields:
        value = getattr(statement, name)
        items = value if isinstance(value, list) else [value]
        expressions = bool(items) and all(isinstance(item, nodes.Expr) for item in items)
        if expressions or not isinstance(value, (list, nodes.Node)):
            parts.append(f"{name}={value!r}")
    return f"{type(statement).__name__}({', '.join(parts)})"


def _walk(node: nodes.Node, path: tuple[str, ...], shape: Shape, words: list[str]) -> None:
    for name in node.fields:
        value = getattr(node, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, nodes.TemplateData):
                words.append(item.data)
            elif isinstance(item, nodes.Output):
                _walk(item, path, shape, words)
            elif isinstance(item, nodes.Expr) and isinstance(node, nodes.Output):
                shape[(path, repr(item))] += 1
            elif isinstance(item, nodes.Stmt):
                signature = _signature(item)
                shape[(path, signature)] += 1
                _walk(item, (*path, f"{signature}.{name}"), shape, words)


def template_shape(environment: jinja2.Environment, source: str) -> TemplateShape:
    """Raises ``jinja2.TemplateSyntaxError`` for text that does not parse."""
    tree = environment.parse(source)
    shape: Shape = Counter()
    words: list[str] = []
    _walk(tree, (), shape, words)
    return TemplateShape(
        expressions=shape,
        variables=frozenset(meta.find_undeclared_variables(tree)),
        words=" ".join(" ".join(words).split()),
    )


def shape_difference(original: TemplateShape, variant: TemplateShape) -> tuple[str, str] | None:
    """None when the variant keeps the original's shape, else ``(reason, detail)``."""
    if variant.variables != original.variables:
        missing = sorted(original.variables - variant.variables)
        added = sorted(variant.variables - original.variables)
        return (
            "variables_changed",
            f"missing: {', '.join(missing) or '-'}; added: {', '.join(added) or '-'}",
        )
    if variant.expressions != original.expressions:
        missing_expressions = original.expressions - variant.expressions
        added_expressions = variant.expressions - original.expressions
        shown = [f"missing {text}" for (_, text) in sorted(missing_expressions)[:3]]
        shown += [f"added {text}" for (_, text) in sorted(added_expressions)[:3]]
        return "expressions_changed", "; ".join(shown) or "an expression moved across a statement"
    return None
