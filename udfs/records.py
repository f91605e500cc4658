"""Per-record logic: decoding, stable keys and ids, declared types, template choice."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from udfs.language_codes import UNDETERMINED, UnknownLanguageLabel, declared_code

FIELD_TYPES = ("string", "int", "float", "bool", "list", "struct")
_INTEGER = re.compile(r"\s*[-+]?\d+\s*")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
# Between the fields of a record's ``dedup_text``: dedup compares fields one by one, and the
# dedup normal form reads it as whitespace (str.split does), so hashes and signatures of the
# whole text are as if the fields were joined by a space.
FIELD_SEPARATOR = "\x1e"


class RecordError(Exception):
    """A record that cannot be used at all; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail[:500]


def stable_hash(*parts: str, digest_size: int = 16) -> str:
    """Hex digest of the parts joined by a unit separator (no part may forge another's split).
    ``surrogatepass``: a lone surrogate from a JSON escape still hashes instead of raising."""
    joined = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(joined, digest_size=digest_size).hexdigest()


def hash64(*parts: str) -> int:
    return int(stable_hash(*parts, digest_size=8), 16)


def canonical_json(value: Any) -> str:
    """One text per value, whatever the key order: the basis of derived keys."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def derive_key(record: Mapping[str, Any]) -> str:
    """Key for a record with no id: a hash of its own content, so it never depends on file
    order or partitioning. Identical records get the same key (and the same ids)."""
    return "sha:" + stable_hash(canonical_json(record))


def record_id(source: str, source_key: str, template_id: str) -> str:
    return stable_hash(source, source_key, template_id)


def decode_utf8(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(
            "invalid_utf8",
            f"byte {exc.start} is not valid UTF-8 ({raw[exc.start : exc.start + 4]!r})",
        ) from None


def safe_text(text: str) -> str:
    """Text that UTF-8 can hold: lone surrogates become visible escapes instead of failing the
    whole Arrow batch."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def parse_json_line(line: str) -> dict[str, Any]:
    line = line.removeprefix("\ufeff")  # a UTF-8 byte order mark before the first record
    if not line.strip():
        raise RecordError(
            "blank_line", "the line is empty; a JSON Lines file holds one object a line"
        )
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        # Some of json's messages end in "at" ("Unterminated string starting at"), some not.
        message = exc.msg.removesuffix(" at")
        raise RecordError("malformed_json", f"{message} at column {exc.colno}") from exc
    except (ValueError, RecursionError) as exc:  # 4,300+ digit integers, absurd nesting
        raise RecordError("malformed_json", f"{type(exc).__name__}: {exc}"[:200]) from None
    if not isinstance(value, dict):
        raise RecordError(
            "not_an_object", f"the line holds a JSON {type(value).__name__}, not an object"
        )
    return value


NUL = "\x00"


def strip_nul(value: Any) -> Any:
    """The value with U+0000 removed from every string in it, keys included. CSV cells and
    JSON ``\\u0000`` escapes carry them; in training text they are noise that some readers
    cut the text at, and in a key they make two keys look alike. Returns ``value`` itself
    when it holds none, which is nearly always."""
    if isinstance(value, str):
        return value.replace(NUL, "") if NUL in value else value
    if isinstance(value, dict):
        return _strip_nul_dict(value)
    if isinstance(value, list):
        items = [strip_nul(item) for item in value]
        changed = any(new is not old for new, old in zip(items, value, strict=True))
        return items if changed else value
    return value


def _strip_nul_dict(record: dict[str, Any]) -> dict[str, Any]:
    stripped: dict[str, Any] = {}
    changed = False
    for key, item in record.items():
        new_key = strip_nul(key)
        new_item = strip_nul(item)
        changed = changed or new_key is not key or new_item is not item
        if new_key in stripped:
            raise RecordError(
                "rename_conflict",
                f"two fields are named {new_key!r} once NUL characters are removed",
            )
        stripped[new_key] = new_item
    return stripped if changed else record


def source_key(record: Mapping[str, Any], id_field: str | None, original: Mapping[str, Any]) -> str:
    if id_field is None:
        return derive_key(original)
    value = record.get(id_field)
    if value is None or isinstance(value, (dict, list)) or value == "":
        raise RecordError(
            "missing_id", f"id field {id_field!r} is missing, null, empty or not a scalar"
        )
    return str(value)


def apply_renames(record: dict[str, Any], renames: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """All renames at once (``{a: b, b: c}`` swaps, never chains); a rename onto a field the
    record already has is a reject, never a silent overwrite."""
    if not renames:
        return record
    mapping = dict(renames)
    renamed: dict[str, Any] = {}
    for key, value in record.items():
        new = mapping.get(key, key)
        if new in renamed:
            raise RecordError("rename_conflict", f"renaming gives two fields named {new!r}")
        renamed[new] = value
    return renamed


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    raise ValueError


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError
    try:
        number = float(value)  # ValueError for text that is not a number
    except OverflowError:
        raise ValueError(value) from None
    if not math.isfinite(number) and isinstance(value, str):
        raise ValueError
    return number


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError


def _to_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError


def _to_struct(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise ValueError


_CONVERTERS = {
    "string": _to_string,
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "list": _to_list,
    "struct": _to_struct,
}
assert set(_CONVERTERS) == set(FIELD_TYPES)


def coerce_fields(record: dict[str, Any], field_types: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Check declared types; strings that spell the declared type exactly are converted (CSV
    gives strings only). Absent fields are left to the template to require."""
    if not field_types:
        return record
    coerced = dict(record)
    for name, kind in field_types:
        if name not in coerced or coerced[name] is None:
            continue
        value = coerced[name]
        try:
            coerced[name] = _CONVERTERS[kind](value)
        except ValueError:
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise RecordError(
                "wrong_type",
                f"field {name!r} should be {kind}, got {type(value).__name__} {shown}",
            ) from None
    return coerced


def normalise_language(value: Any, where: str) -> str:
    """A declared language in the code system language ID uses (ISO 639-1, else 639-3)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return UNDETERMINED
    text = str(value).strip()
    if text.lower() == UNDETERMINED:
        return UNDETERMINED
    try:
        return declared_code(text)
    except UnknownLanguageLabel:
        raise RecordError(
            "invalid_language",
            f"{where} value {text[:40]!r} is not an ISO 639 language code like 'fr' or 'fra'",
        ) from None


def choose_templates(
    seed: int, source: str, key: str, template_ids: Sequence[str], per_record: int | None
) -> list[int]:
    """Indices of the templates a record is rendered with: all of them in declared order, or
    the ``per_record`` with the smallest hash of (seed, source, key, template id). The choice
    depends on nothing but those values, and adding a template moves few records."""
    if per_record is None or per_record >= len(template_ids):
        return list(range(len(template_ids)))
    ranked = sorted(
        range(len(template_ids)),
        key=lambda i: (hash64(str(seed), source, key, template_ids[i]), template_ids[i]),
    )
    return sorted(ranked[:per_record])


def names(value: Any, where: str) -> list[str]:
    """A record field holding names (categories, origin datasets): one string or a list of
    them, blanks dropped, order kept, repeats removed."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    found: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise RecordError(
                "invalid_field",
                f"{where} holds {type(item).__name__} {item!r:.40}; expected names (strings)",
            )
        if item.strip() and item.strip() not in found:
            found.append(item.strip())
    return found


def task_name(record: Mapping[str, Any], field: str | None, fallback: str | None) -> str | None:
    """The record's task: its ``field`` value, else the registry's task (config requires one
    of the two)."""
    if field is None:
        return fallback
    value = record.get(field)
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()
    if value is not None and not isinstance(value, str):
        raise RecordError(
            "invalid_field", f"task field {field!r} holds {type(value).__name__}; expected a name"
        )
    if fallback is None:
        raise RecordError("missing_field", f"the record has no task in field {field!r}")
    return fallback
