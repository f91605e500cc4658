"""Render one record with one template, exactly as promptsource's ``Template.apply()`` does.

promptsource (0.2.3) renders ``jinja`` on the example, with ``answer_choices`` rendered first on
the same example and split on ``|||``; a literal ``|||`` inside the data is swapped for a
placeholder before rendering so it cannot split the output, and both parts are stripped.

Deliberate differences, each one stricter and each one a reject rather than a silent bad row:
- a sandboxed environment (no ``''.__class__`` escapes) with ``StrictUndefined`` (a field the
  template needs and the record lacks is an error, not an empty string);
- a null or whitespace-only top-level field may be tested (``{% if title %}``) but not written
  into the output (promptsource writes ``None`` or nothing): see :class:`BlankValue`;
- an empty instruction or response, no ``|||`` in the output, or more than one, is rejected
  (promptsource returns ``['']`` or a 1- or 3-element list);
- the ``choice`` filter picks by a hash of the record key, the seed and the call number, not
  ``random.choice``, so reruns are identical;
- ``|||`` is protected at every depth of the record (promptsource protects top-level strings);
- no truncation (promptsource's ``truncate=True`` cuts the output of every ``{{ ... }}`` to
  2,048 characters): long fields are the data, so they are kept whole;
- bounds per record (:mod:`udfs.render_bounds`): a render that would pass ``max_chars`` or
  run past ``max_seconds`` is a ``render_too_large`` or ``render_timeout`` reject;
- NUL characters are dropped from the rendered text (records lose theirs when decoded).
"""

from __future__ import annotations

import contextvars
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import StrictUndefined, meta
from jinja2.exceptions import SecurityError, UndefinedError

from udfs.bounded_sandbox import BoundedEnvironment, guard_template
from udfs.render_bounds import (
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_SECONDS,
    BoundExceeded,
    render_text,
)
from udfs.render_clock import bounded

SEPARATOR = "|||"
# promptsource's own placeholder, kept so intermediate strings match its renderer byte for byte.
PIPE_PROTECTOR = "3ed2dface8203c4c9dfb1a5dc58e41e0"
RESERVED_FIELD = "answer_choices"
MAX_DETAIL_CHARS = 500


class TemplateCompileError(ValueError):
    """A template that does not compile: raised while planning, before Spark starts."""


class BlankFieldError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class BlankValue:
    """A top-level field that is null or only whitespace. Templates may test it (it is falsy,
    has a length, compares equal to its value), but writing it into the output raises, so
    ``{% if title %}...{% endif %}`` renders while ``Review: {{ text }}`` with an empty text is
    a reject instead of a pair with nothing in it."""

    __slots__ = ("_name", "_value")

    def __init__(self, name: str, value: str | None) -> None:
        self._name = name
        self._value = value

    def __bool__(self) -> bool:
        return False

    def __len__(self) -> int:
        return len(self._value or "")

    def __eq__(self, other: object) -> bool:
        other_value = other._value if isinstance(other, BlankValue) else other
        return bool(self._value == other_value)

    def __hash__(self) -> int:
        return hash(self._value)

    def __str__(self) -> str:
        raise BlankFieldError(self._name)

    __html__ = __str__


def mark_blanks(record: Mapping[str, Any]) -> dict[str, Any]:
    """Wrap the null and whitespace-only top-level fields in :class:`BlankValue`."""
    return {
        key: BlankValue(key, value)
        if value is None or (isinstance(value, str) and not value.strip())
        else value
        for key, value in record.items()
    }


class RenderError(Exception):
    """One record could not be rendered by one template; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail[:MAX_DETAIL_CHARS]


@dataclass(frozen=True)
class TemplateSpec:
    """A template as loaded from disk: plain data, cheap to pickle to executors."""

    template_id: str
    name: str
    jinja: str
    answer_choices: str | None = None
    origin: str = ""
    # promptsource's metadata (original_task, choices_in_prompt, languages, metrics), kept
    # for the manifest; not part of what renders.
    metadata: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def template_hash(self) -> str:
        text = self.jinja + "\x00" + (self.answer_choices or "")
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class CompiledTemplate:
    spec: TemplateSpec
    body: jinja2.Template
    choices: jinja2.Template | None
    # Top-level fields the template reads: the record's own content, as opposed to the
    # template's words (language ID judges the record by these, dedup compares them).
    fields: frozenset[str] = field(default_factory=frozenset)


# (salt, [calls so far]) for the record being rendered; read by the `choice` filter.
_choice_state: contextvars.ContextVar[tuple[str, list[int]]] = contextvars.ContextVar(
    "instructmill_choice_state"
)


def _choice(choices: Iterable[Any]) -> Any:
    options = list(choices)
    if not options:
        raise IndexError("choice() from an empty sequence")
    salt, calls = _choice_state.get(("", [0]))
    call_number = calls[0]
    calls[0] += 1
    digest = hashlib.blake2b(f"{salt}\x1f{call_number}".encode(), digest_size=8).digest()
    return options[int.from_bytes(digest, "big") % len(options)]


def _most_frequent(items: Sequence[Any]) -> list[Any] | None:
    if not items:
        return None
    counts = Counter(items).most_common()
    top = counts[0][1]
    return [item for item, count in counts if count == top]


def _highlight(text: str) -> str:
    return "<span style='color: #F08080'>" + text + "</span>"


_environment: BoundedEnvironment | None = None


def environment() -> BoundedEnvironment:
    """The one Jinja environment, built once per process (driver or Python worker)."""
    global _environment
    if _environment is None:
        env = BoundedEnvironment(undefined=StrictUndefined)
        env.globals.update(zip=zip)
        env.filters["choice"] = _choice
        env.filters["most_frequent"] = _most_frequent
        env.filters["highlight"] = _highlight
        env.wrap_filters()
        _environment = env
    return _environment


def compile_template(spec: TemplateSpec) -> CompiledTemplate:
    env = environment()
    where = f"template {spec.name!r} ({spec.template_id}) in {spec.origin or '<string>'}"
    if SEPARATOR not in spec.jinja:
        raise TemplateCompileError(
            f"{where}: no '{SEPARATOR}' separator, so it can never produce a response; "
            f"write it as 'instruction {SEPARATOR} response'"
        )
    try:
        body_ast = env.parse(spec.jinja)
        fields = set(meta.find_undeclared_variables(body_ast))
        body = env.from_string(guard_template(body_ast, env))
        choices = None
        if spec.answer_choices is not None:
            choices_ast = env.parse(spec.answer_choices)
            fields |= meta.find_undeclared_variables(choices_ast)
            choices = env.from_string(guard_template(choices_ast, env))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateCompileError(f"{where}: line {exc.lineno}: {exc.message}") from exc
    except (ValueError, OverflowError, RecursionError, MemoryError) as exc:
        # A 5,000-digit literal, brackets nested thousands deep: a config error, not a crash.
        raise TemplateCompileError(f"{where}: {type(exc).__name__}: {exc}"[:500]) from exc
    fields.discard(RESERVED_FIELD)
    fields -= set(env.globals)
    return CompiledTemplate(
        spec=spec,
        body=body,
        choices=choices,
        fields=frozenset(fields),
    )


_compiled_cache: dict[tuple[str, str], CompiledTemplate] = {}


def compiled(spec: TemplateSpec) -> CompiledTemplate:
    """Compile once per process; Spark reuses Python workers across tasks, so this is once per
    worker for the whole job."""
    key = (spec.template_id, spec.template_hash)
    hit = _compiled_cache.get(key)
    if hit is None:
        hit = _compiled_cache[key] = compile_template(spec)
    return hit


def _protect(value: Any) -> Any:
    # Also copies every container, so a template that mutates the record (promptsource
    # templates call .append/.update/.pop) cannot leak into the next template's render.
    if isinstance(value, str):
        return value.replace(SEPARATOR, PIPE_PROTECTOR)
    if isinstance(value, Mapping):
        return {key: _protect(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_protect(item) for item in value]
    return value


def _unprotect(text: str) -> str:
    return text.replace(PIPE_PROTECTOR, SEPARATOR)


def _render_choices(template: CompiledTemplate, protected: dict[str, Any]) -> list[str] | None:
    if template.choices is None:
        return None
    rendered = render_text(template.choices, protected)
    return [_unprotect(choice.strip()) for choice in rendered.split(SEPARATOR)]


def _bound_detail(template: CompiledTemplate, exc: BoundExceeded) -> str:
    spec = template.spec
    detail = f"template {spec.name!r} ({spec.template_id}): {exc}"
    if exc.setting is not None:
        detail += f"; raise {exc.setting} in the pipeline YAML if records need more"
    return detail


def render(
    template: CompiledTemplate,
    record: Mapping[str, Any],
    choice_salt: str = "",
    max_chars: int = DEFAULT_MAX_CHARS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> tuple[str, str]:
    """Return ``(instruction, response)`` or raise :class:`RenderError` with the reason.
    ``max_chars`` bounds the rendered text and every value built on the way to it."""
    instruction, response, _ = render_with_choices(
        template, record, choice_salt, max_chars, max_seconds
    )
    return instruction, response


def render_with_choices(
    template: CompiledTemplate,
    record: Mapping[str, Any],
    choice_salt: str = "",
    max_chars: int = DEFAULT_MAX_CHARS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> tuple[str, str, list[str] | None]:
    """:func:`render`, and the rendered answer choices (None without ``answer_choices``)."""
    if RESERVED_FIELD in record:
        raise RenderError(
            "reserved_field",
            f"the record has a field named {RESERVED_FIELD!r}, which templates use",
        )
    token = _choice_state.set((choice_salt, [0]))
    try:
        with bounded(max_chars, max_seconds):
            protected = _protect(record)
            choices = protected[RESERVED_FIELD] = _render_choices(template, protected)
            rendered = render_text(template.body, protected)
    except BoundExceeded as exc:
        raise RenderError(exc.reason, _bound_detail(template, exc)) from None
    except BlankFieldError as exc:
        raise RenderError(
            "empty_field", f"the template writes {exc.name!r}, which is null or blank here"
        ) from None
    except UndefinedError as exc:
        raise RenderError("missing_field", str(exc)) from exc
    except SecurityError as exc:
        raise RenderError("sandbox_violation", str(exc)) from exc
    except Exception as exc:
        raise RenderError("template_error", f"{type(exc).__name__}: {exc}") from exc
    finally:
        _choice_state.reset(token)
    return (*_split(rendered), choices)


def _split(rendered: str) -> tuple[str, str]:
    if "\x00" in rendered:  # a template's own NUL; a record's are gone when it is decoded
        rendered = rendered.replace("\x00", "")
    parts = [_unprotect(part).strip() for part in rendered.split(SEPARATOR)]
    if len(parts) == 1:
        raise RenderError("no_response", f"the rendered text has no '{SEPARATOR}' separator")
    if len(parts) > 2:
        raise RenderError(
            "too_many_parts", f"the rendered text has {len(parts) - 1} '{SEPARATOR}' separators"
        )
    instruction, response = parts
    if not instruction:
        raise RenderError("empty_instruction", "the template rendered an empty instruction")
    if not response:
        raise RenderError("empty_response", "the template rendered an empty response")
    return instruction, response
