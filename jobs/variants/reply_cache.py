"""Chat replies on disk, keyed by a hash of what was asked (model, messages, parameters), so a
rerun sends nothing and gets the very same answers."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def request_key(body: dict[str, Any]) -> str:
    """The hash of a request body without its transport-only fields (``stream``)."""
    asked = {key: value for key, value in body.items() if key != "stream"}
    text = json.dumps(asked, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "instructmill" / "chat"


class ReplyCache:
    """One JSON file per request, ``<key[:2]>/<key>.json``, written whole or not at all (a
    killed run leaves no half file to be read back as an answer)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        content = entry.get("content") if isinstance(entry, dict) else None
        return content if isinstance(content, str) else None

    def put(self, key: str, body: dict[str, Any], content: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"request": body, "content": content}
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(entry, out, ensure_ascii=False, indent=1)
        os.replace(temporary, path)
