"""`python -m jobs.dist [ZIP]`: our packages as one zip for `spark-submit --py-files`."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

PACKAGES = ("jobs", "udfs")
ROOT = Path(__file__).resolve().parent.parent


def write_code_zip(root: Path, archive: Path) -> Path:
    """Sorted entries with a fixed timestamp: the same code gives the same zip."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for package in PACKAGES:
            for file in sorted((root / package).rglob("*.py")):
                info = zipfile.ZipInfo(file.relative_to(root).as_posix(), (2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, file.read_bytes())
    return archive


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else ROOT / "dist" / "instructmill.zip"
    print(write_code_zip(ROOT, target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
