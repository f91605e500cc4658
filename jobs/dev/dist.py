"""`python -m jobs.dev.dist [ZIP]` (`make dist`): our packages as one zip for
`spark-submit --py-files`."""

from __future__ import annotations

import sys
from pathlib import Path

from jobs.io.code_zip import ROOT, write_code_zip


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else ROOT / "dist" / "instructmill.zip"
    print(write_code_zip(ROOT, target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
