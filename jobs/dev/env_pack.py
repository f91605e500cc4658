"""`python -m jobs.dev.env_pack [ARCHIVE] [--force]` (`make env-pack`): the executors' Python
environment as one venv-pack archive, shipped the way YARN and Kubernetes users ship it:

    spark-submit --archives dist/instructmill-env.tar.gz#env \\
        --conf spark.pyspark.python=./env/bin/python --py-files dist/instructmill.zip ...

The archive holds the third-party runtime dependencies of pyproject.toml, pinned to the versions
this venv has, so executors and driver run the same pyarrow, numpy and fastText. It holds neither
our code (that is ``--py-files dist/instructmill.zip``) nor pyspark and py4j (Spark puts its own on
the executors' PYTHONPATH, ahead of site-packages). Our .venv is an editable install, which
venv-pack cannot pack, so the environment is built in a fresh venv that is not.

venv-pack does not copy the interpreter: ``bin/python`` stays a link to this venv's base Python
(the same version at the same path must exist on every node; ``venv-pack --python-prefix``
relinks it, conda-pack ships one). The archive is rebuilt only when its key changes:
pyproject.toml, the interpreter, the pinned versions and what is left out (the key sits next to
it in ``.key``). Building it is the one step that downloads (from the package index, through
pip); nothing does at run time.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as metadata
import os
import re
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "instructmill"
DEFAULT_ARCHIVE = ROOT / "dist" / "instructmill-env.tar.gz"
# Provided by the cluster's Spark on every executor (pyspark.zip and py4j-*.zip on PYTHONPATH).
FROM_SPARK = ("pyspark", "py4j")
# Not needed by executors: pip, and the packages' own test suites (pandas, scipy, numpy and
# pyarrow ship about 80 MiB of them).
EXCLUDED = (
    "lib/python*/site-packages/pip/*",
    "lib/python*/site-packages/pip-*",
    "bin/pip*",
    "lib/python*/site-packages/*/tests/*",
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"cannot read a package name from requirement {requirement!r}")
    return canonical(match.group(1))


def runtime_requirements() -> list[str]:
    """The project's own dependencies (no extras) that executors need from the archive."""
    requires = metadata.requires(PROJECT) or []
    return sorted(r for r in _runtime_only(requires) if requirement_name(r) not in FROM_SPARK)


def _runtime_only(requirements: list[str]) -> list[str]:
    return [r for r in requirements if "extra" not in r.partition(";")[2]]


def pinned_versions() -> list[str]:
    """``name==version`` for the runtime dependencies and theirs, as this venv has them: the pip
    constraints of the archive. (Markers other than extras are not evaluated: a pin of a
    package pip does not install is harmless.)"""
    todo = [requirement_name(r) for r in runtime_requirements()]
    pins: dict[str, str] = {}
    while todo:
        name = todo.pop()
        if name in pins or name in FROM_SPARK:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # not installed here (a marker left it out)
        pins[name] = dist.version
        todo += [requirement_name(r) for r in _runtime_only(dist.requires or [])]
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def archive_key(root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    digest.update((root / "pyproject.toml").read_bytes())
    for part in (sys.version, os.path.realpath(sys.executable)):
        digest.update(part.encode())
    for line in [*FROM_SPARK, *EXCLUDED, *runtime_requirements(), *pinned_versions()]:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def key_file(archive: Path) -> Path:
    return archive.with_name(archive.name + ".key")


def is_up_to_date(archive: Path, root: Path = ROOT) -> bool:
    key = key_file(archive)
    return archive.is_file() and key.is_file() and key.read_text().strip() == archive_key(root)


def ensure_env_archive(archive: Path = DEFAULT_ARCHIVE, force: bool = False) -> Path:
    """The archive, built first when it is missing or out of date."""
    if force or not is_up_to_date(archive):
        build_env_archive(archive)
    return archive


def build_env_archive(archive: Path) -> Path:
    try:
        import venv_pack
    except ModuleNotFoundError:
        raise SystemExit("env-pack needs venv-pack, a dev dependency: run `make venv`") from None

    started = time.monotonic()
    key = archive_key()
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".env-build-", dir=archive.parent) as tmp:
        env = Path(tmp) / "env"
        venv.EnvBuilder(with_pip=True, symlinks=True).create(env)
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("\n".join(pinned_versions()) + "\n")
        print(f"env-pack: installing {len(runtime_requirements())} packages", file=sys.stderr)
        subprocess.run(
            [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", "--no-warn-script-location",
             "-c", str(constraints), *runtime_requirements()],
            check=True,
        )  # fmt: skip
        packed = Path(tmp) / archive.name
        venv_pack.pack(
            prefix=str(env),
            output=str(packed),
            filters=[("exclude", pattern) for pattern in EXCLUDED],
        )
        packed.chmod(0o644)
        os.replace(packed, archive)
    key_file(archive).write_text(key + "\n")
    size = archive.stat().st_size / 2**20
    seconds = time.monotonic() - started
    print(f"env-pack: {archive} ({size:.0f} MiB) in {seconds:.0f}s", file=sys.stderr)
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.dev.env_pack", description=__doc__)
    parser.add_argument("archive", nargs="?", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    if not args.force and is_up_to_date(args.archive):
        print(f"env-pack: {args.archive} is up to date", file=sys.stderr)
    else:
        ensure_env_archive(args.archive, force=True)
    print(args.archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
