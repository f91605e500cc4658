"""The rules of the house, checked on the source: ``udfs/`` never imports Spark, commands never
import each other, dev-only tools stay out of the zip shipped to executors, and modules and
functions stay small enough to read in one sitting."""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

from jobs.io.code_zip import write_code_zip
from tests.conftest import ROOT

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def modules(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_udfs_never_import_pyspark() -> None:
    offenders = {
        path.name: sorted(name for name in imported(path) if name.split(".")[0] == "pyspark")
        for path in modules("udfs")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_commands_never_import_each_other() -> None:
    offenders = {
        path.name: sorted(name for name in imported(path) if name.startswith("jobs.commands"))
        for path in modules("jobs/commands")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_dev_tools_stay_out_of_the_shipped_zip(tmp_path: Path) -> None:
    with zipfile.ZipFile(write_code_zip(ROOT, tmp_path / "code.zip")) as archive:
        names = set(archive.namelist())
    assert {
        "jobs/cli.py",
        "jobs/stages/dedup.py",
        "jobs/config/plan.py",
        "udfs/minhash.py",
    } <= names
    assert not [name for name in names if name.startswith("jobs/dev/")]
    assert {"jobs/stages/__init__.py", "jobs/config/__init__.py", "jobs/io/__init__.py"} <= names


def test_modules_and_functions_are_small() -> None:
    long_modules, long_functions = {}, {}
    for path in modules("jobs", "udfs"):
        source = path.read_text(encoding="utf-8")
        name = str(path.relative_to(ROOT))
        if source.count("\n") > MAX_MODULE_LINES:
            long_modules[name] = source.count("\n")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions[f"{name}:{node.name}"] = length
    assert long_modules == {}
    assert long_functions == {}
