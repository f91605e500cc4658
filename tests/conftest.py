"""Shared fixtures: one local[2] SparkSession for the whole run, paths to real shared data."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("INSTRUCTMILL_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, skipping the test with a clear message when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set INSTRUCTMILL_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from jobs.runner import build_session

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = build_session(
        "instructmill-tests",
        master="local[2]",
        conf={
            "spark.driver.memory": "2g",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "2",
        },
    )
    yield session
    session.stop()


_FIGURES: list[str] = []


@pytest.fixture
def report() -> object:
    """Record a figure (a count, a comparison) to print in the run's summary."""
    return _FIGURES.append


def pytest_terminal_summary(terminalreporter: object) -> None:
    if _FIGURES:
        terminalreporter.section("instructmill figures")  # type: ignore[attr-defined]
        for line in _FIGURES:
            terminalreporter.write_line(line)  # type: ignore[attr-defined]
