"""Our packages as one zip for executors (``spark-submit --py-files``, or shipped by the
session itself outside spark-submit). Dev-only tools (``jobs/dev``) stay out of it."""

from __future__ import annotations

import zipfile
from pathlib import Path

PACKAGES = ("jobs", "udfs")
NOT_SHIPPED = ("jobs/dev",)
ROOT = Path(__file__).resolve().parents[2]


def shipped_files(root: Path) -> list[Path]:
    return [
        file
        for package in PACKAGES
        for file in sorted((root / package).rglob("*.py"))
        if not file.relative_to(root).as_posix().startswith(tuple(f"{d}/" for d in NOT_SHIPPED))
    ]


def write_code_zip(root: Path, archive: Path) -> Path:
    """Sorted entries with a fixed timestamp: the same code gives the same zip."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in shipped_files(root):
            info = zipfile.ZipInfo(file.relative_to(root).as_posix(), (2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, file.read_bytes())
    return archive
