"""YAML in, a validated model out: every error names the file, the key and what was expected.

Unknown keys are errors (a typo in a threshold must not silently fall back to a default on a
500-node run), and so is a key given twice.
"""

from __future__ import annotations

import difflib
import re
import typing
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)

# pydantic names the branch of a union it tried ('str', 'TemplateRef', "literal['all']"); those
# are not keys the user wrote.
_UNION_TAG = re.compile(
    r"^(str|int|float|bool|list\[.*\]|dict\[.*\]|literal\[.*\]|[a-z]+-\w+|[A-Z]\w*)$"
)


class ConfigError(ValueError):
    """A config problem, reported before any Spark work starts."""


@cache
def _models_under(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model reachable from ``model``'s field annotations, by class name: the names
    pydantic puts in an error location when it tries a union's model branch."""
    found: dict[str, type[BaseModel]] = {}

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation.__name__ in found:
                return
            found[annotation.__name__] = annotation
            for field in annotation.model_fields.values():
                visit(field.annotation)
        for argument in typing.get_args(annotation):
            visit(argument)

    visit(model)
    return found


_VALIDATOR_TAG = re.compile(r"^function-(?:after|before|wrap)\[[^,\]]+, (\w+)\]$")


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[str, type[BaseModel]]:
    """The user's key path for a pydantic location, and the model that holds its last key."""
    models = _models_under(model)
    path, current = "", model
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in models:
            current = models[part]
        elif (after := _VALIDATOR_TAG.match(str(part))) and after.group(1) in models:
            current = models[after.group(1)]  # a model with a model_validator
        elif not _UNION_TAG.match(str(part)) or part in current.model_fields:
            path += f".{part}" if path else str(part)
            field = current.model_fields.get(part)
            annotation = field.annotation if field is not None else None
            for candidate in getattr(annotation, "__args__", (annotation,)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    current = candidate
    return path or "(top level)", current


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _unknown_key(errors: list[dict[str, Any]], allowed: list[str]) -> str:
    """A typo is the common cause: naming the nearest allowed key is the fix in one glance."""
    written = next(str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden")
    nearest = difflib.get_close_matches(written, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {nearest[0]!r}?)" if nearest else ""
    return f"unknown key {written!r}{hint}; allowed keys here: {', '.join(allowed)}"


def _message(key: str, errors: list[dict[str, Any]], allowed: type[BaseModel] | None) -> str:
    kinds = {error["type"] for error in errors}
    if "extra_forbidden" in kinds and allowed is not None:
        return _unknown_key(errors, sorted(allowed.model_fields))
    if "missing" in kinds:
        return "required key is missing"
    messages = list(dict.fromkeys(error["msg"] for error in errors))
    if all(m.startswith("Input should be ") for m in messages):
        expected = "should be " + " or ".join(m[16:] for m in messages)
    else:
        expected = " or ".join(m.removeprefix("Value error, ") for m in messages)
    got = "" if key == "(top level)" else f" (got {_shown(errors[0].get('input'))})"
    return expected + got


def _format_validation(file: Path, model: type[BaseModel], exc: ValidationError) -> ConfigError:
    by_key: dict[str, list[dict[str, Any]]] = {}
    allowed: dict[str, type[BaseModel]] = {}
    for error in exc.errors():
        key, _ = _walk(model, error["loc"])
        by_key.setdefault(key, []).append(dict(error))
        if error["type"] == "extra_forbidden":
            allowed[key] = _walk(model, error["loc"][:-1])[1]
    lines = [
        f"{file}: {key}: {_message(key, errors, allowed.get(key))}"
        for key, errors in by_key.items()
        # A union branch failed deeper down: that error is the precise one.
        if not any(other.startswith((f"{key}.", f"{key}[")) for other in by_key)
    ]
    return ConfigError("\n".join(lines))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen[key] = True
        return super().construct_mapping(node, deep=deep)


def load_yaml(file: Path, what: str) -> dict[str, Any]:
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ConfigError(f"{file}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read {what} file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping of keys at the top level of the {what} file")
    return data


def validate(file: Path, model: type[Model], data: dict[str, Any]) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _format_validation(file, model, exc) from None


def load_model(conf_file: str | Path, model: type[Model], what: str) -> Model:
    """A YAML file validated as ``model``."""
    file = Path(conf_file).resolve()
    return validate(file, model, load_yaml(file, what))
