"""The prompts that ask the model for variants: Jinja files in ``templates/meta/`` a user may
edit, each with a ``system`` and a ``user`` block."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from iso639 import Lang
from jinja2.sandbox import ImmutableSandboxedEnvironment

META_DIR = Path(__file__).resolve().parents[2] / "templates" / "meta"
TAG_STARTS = {"variable_begin": "variable_end", "block_begin": "block_end"}


class MetaPromptError(ValueError):
    """A meta prompt that is missing or does not have both blocks."""


@dataclass(frozen=True)
class MetaPrompt:
    kind: str  # paraphrase | translate
    path: Path
    template: jinja2.Template

    def messages(self, **variables: Any) -> list[dict[str, str]]:
        context = self.template.new_context(variables)
        return [
            {"role": role, "content": "".join(self.template.blocks[role](context)).strip()}
            for role in ("system", "user")
        ]


def load_meta_prompt(kind: str, folder: Path = META_DIR) -> MetaPrompt:
    path = folder / f"{kind}.jinja"
    environment = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    try:
        template = environment.from_string(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MetaPromptError(f"{path}: cannot read the {kind} prompt: {exc}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise MetaPromptError(f"{path}: line {exc.lineno}: {exc.message}") from None
    missing = {"system", "user"} - set(template.blocks)
    if missing:
        raise MetaPromptError(f"{path}: needs the blocks 'system' and 'user'; missing {missing}")
    return MetaPrompt(kind, path, template)


def jinja_tags(environment: jinja2.Environment, source: str) -> list[str]:
    """Every ``{{ ... }}`` and ``{% ... %}`` of the text, exactly as written, in order: the
    lexer's tokens (whitespace included) joined from each tag's start to its end."""
    tags: list[str] = []
    current: list[str] | None = None
    end = ""
    for _, token, value in environment.lex(source):
        if current is None and token in TAG_STARTS:
            current, end = [value], TAG_STARTS[token]
        elif current is not None:
            current.append(value)
            if token == end:
                tags.append("".join(current))
                current = None
    return tags


def language_name(code: str) -> str:
    try:
        return str(Lang(code).name)
    except Exception:  # any code iso639 does not know is still a fine name to ask for
        return code


def prompt_hash(messages: list[dict[str, str]]) -> str:
    text = "\x1e".join(f"{m['role']}\x1f{m['content']}" for m in messages)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
