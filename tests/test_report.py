"""The run report (``OUTPUT/report.html``): the demo build's page opened in a real headless
Chromium (no console message, no page error, no request but the file itself, every chart an
inline SVG, a full-page screenshot under out/report/), its numbers read back from the page
and compared with the manifest and with a Spark groupBy over the data; the page of a
mixture and of a dedup output; the length buckets on a small frame."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from jobs.report.numbers import SOURCE_FIELDS, lookup
from jobs.report.page import CHART_IDS
from tests.conftest import ROOT

pytestmark = pytest.mark.spark

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
SCREENSHOT = ROOT / "out" / "report" / "demo-report.png"
DATA_CHARTS = ("chart-languages", "chart-clusters", "chart-lengths")


class Elements(HTMLParser):
    """Every start tag's attributes, and the text of the cells that carry a data-field."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))

    def ids(self) -> set[str]:
        return {attrs["id"] for _, attrs in self.tags if "id" in attrs}

    def cells(self) -> list[dict[str, str]]:
        return [attrs for _, attrs in self.tags if "data-field" in attrs and "data-value" in attrs]

    def missing(self) -> set[str]:
        return {attrs["data-missing"] for _, attrs in self.tags if "data-missing" in attrs}


def parsed(path: str) -> tuple[str, Elements]:
    html = Path(path).read_text(encoding="utf-8")
    return html, Elements(html)


def assert_self_contained(html: str, elements: Elements) -> None:
    """No script, stylesheet, image or font from anywhere: the only references are the SVGs'
    own #ids."""
    assert not {"script", "link", "img", "iframe", "object", "embed"} & {
        t for t, _ in elements.tags
    }
    references = [attrs.get(name, "") for _, attrs in elements.tags for name in ("href", "src")]
    assert all(ref.startswith("#") for ref in references if ref), references
    assert not re.search(r"url\((?!#)", html)
    assert "@import" not in html and "http://www.w3.org" not in html


def source_cells(cells: list[dict[str, str]]) -> dict[tuple[str, str], Any]:
    return {
        (cell["data-source"], cell["data-field"]): json.loads(cell["data-value"])
        for cell in cells
        if "data-source" in cell
    }


def assert_sources_match(cells: list[dict[str, str]], manifest: dict[str, Any]) -> int:
    """Every number of every source in the manifest is on the page, and nothing else is."""
    expected = {
        (name, field): lookup(entry, field)
        for name, entry in manifest["sources"].items()
        for field in SOURCE_FIELDS
        if isinstance(lookup(entry, field), (int, float))
    }
    assert source_cells(cells) == expected
    return len(expected)


def assert_totals_match(cells: list[dict[str, str]], manifest: dict[str, Any]) -> int:
    totals = {
        cell["data-field"]: json.loads(cell["data-value"])
        for cell in cells
        if cell["data-field"].split(".")[0] in ("totals", "counts", "total")
    }
    assert totals, "no totals on the page"
    for field, value in totals.items():
        assert lookup(manifest, field) == value, field
    return len(totals)


# ---- the demo build's page in a browser --------------------------------------------------------


@pytest.fixture(scope="module")
def demo(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from jobs.commands.build import run_build, run_context
    from jobs.config import load_plan
    from jobs.report import write_report

    out = tmp_path_factory.mktemp("report-demo")
    plan = load_plan(ROOT / "conf" / "demo.yaml", output_override=str(out))
    run_build(spark, plan, run_context(plan, None))
    started = time.perf_counter()
    path = write_report(spark, str(out))
    seconds = time.perf_counter() - started
    manifest = json.loads((out / "_manifest.json").read_text(encoding="utf-8"))
    return {"out": out, "path": path, "manifest": manifest, "seconds": seconds}


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed when it is missing and this is root with apt-get."""
    if not CHROMIUM.exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # With its recommended packages (fonts among them), as checked on this machine.
        install = ["apt-get", "install", "-y", "chromium"]
        done = subprocess.run(install, env=env, capture_output=True, check=False, timeout=900)
        if done.returncode != 0:  # a fresh image has no package lists yet
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
            subprocess.run(install, env=env, capture_output=True, check=False, timeout=900)
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing and not installable here (needs root and apt-get)")
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def browsed(demo: dict[str, Any], chromium: str) -> Iterator[dict[str, Any]]:
    """The page as Chromium loaded it: what it logged and fetched, its charts and cells."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package (a dev dependency) is missing"
    )
    url = Path(demo["path"]).as_uri()
    seen: dict[str, list[Any]] = {"console": [], "errors": [], "requests": []}
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: seen["console"].append((m.type, m.text)))
        page.on("pageerror", lambda e: seen["errors"].append(str(e)))
        page.on("request", lambda r: seen["requests"].append(r.url))
        page.goto(url, wait_until="load")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        charts = {
            chart_id: page.query_selector(f"figure#{chart_id} > svg") is not None
            for chart_id in CHART_IDS
        }
        names = ("data-field", "data-value", "data-source", "data-language")
        cells = [
            {name: cell.get_attribute(name) for name in names if cell.get_attribute(name)}
            for cell in page.query_selector_all("[data-field][data-value]")
        ]
        samples = [row.get_attribute("data-source") for row in page.query_selector_all(
            "#sample-rows tbody tr")]  # fmt: skip
        height = page.evaluate("document.documentElement.scrollHeight")
        browser.close()
    yield {**seen, "url": url, "charts": charts, "cells": cells, "samples": samples,
           "height": height}  # fmt: skip


def test_page_loads_offline_without_a_message(browsed: dict[str, Any], report: Any) -> None:
    assert browsed["errors"] == []
    assert [m for m in browsed["console"] if m[0] in ("error", "warning")] == []
    assert browsed["console"] == []
    assert browsed["requests"] == [browsed["url"]]
    report(f"report: Chromium made {len(browsed['requests'])} request(s), logged nothing")


def test_every_chart_is_an_inline_svg(
    demo: dict[str, Any], browsed: dict[str, Any], report: Any
) -> None:
    assert browsed["charts"] == dict.fromkeys(CHART_IDS, True)
    html, elements = parsed(demo["path"])
    assert_self_contained(html, elements)
    assert elements.missing() == set()
    assert SCREENSHOT.stat().st_size > 50_000
    report(
        f"report: {len(CHART_IDS)} charts, page {len(html) / 1024:.0f} KiB, "
        f"{browsed['height']} px tall, written in {demo['seconds']:.1f} s; "
        f"screenshot {SCREENSHOT.relative_to(ROOT)}"
    )


def test_page_numbers_equal_the_manifest(
    demo: dict[str, Any], browsed: dict[str, Any], report: Any
) -> None:
    manifest = demo["manifest"]
    per_source = assert_sources_match(browsed["cells"], manifest)
    totals = assert_totals_match(browsed["cells"], manifest)
    shown = {cell["data-field"]: json.loads(cell["data-value"]) for cell in browsed["cells"]}
    assert shown["data.rows"] == manifest["totals"]["written"]
    # Five sample rows per source, in source order.
    written = {name: entry["written"] for name, entry in manifest["sources"].items()}
    assert browsed["samples"] == [n for n in sorted(written) for _ in range(min(5, written[n]))]
    report(f"report: {per_source} per-source and {totals} total numbers equal the manifest's")


def test_page_language_counts_equal_a_spark_groupby(
    spark: Any, demo: dict[str, Any], browsed: dict[str, Any], report: Any
) -> None:
    from jobs.io.outputs import existing_layout, read_data

    layout, _ = existing_layout(spark, str(demo["out"]))
    counted = {
        row["language"]: row["count"]
        for row in read_data(spark, layout).groupBy("language").count().collect()
    }
    shown = {
        cell["data-language"]: json.loads(cell["data-value"])
        for cell in browsed["cells"]
        if cell.get("data-field") == "data.language_rows"
    }
    assert shown == counted
    report(f"report: {len(shown)} languages on the page equal a groupBy over data/")


def test_report_is_deterministic(spark: Any, demo: dict[str, Any]) -> None:
    from jobs.report import write_report

    first = Path(demo["path"]).read_bytes()
    assert Path(write_report(spark, str(demo["out"]))).read_bytes() == first


# ---- mixture and dedup outputs ----------------------------------------------------------------


def test_report_of_a_mixture(spark: Any, demo: dict[str, Any], tmp_path: Path) -> None:
    from jobs.commands.mix import run_mix
    from jobs.config import load_mixture_config
    from jobs.report import write_report

    config = load_mixture_config(ROOT / "conf" / "mixture.yaml")
    out = tmp_path / "mix"
    manifest = run_mix(spark, config, str(demo["out"]), str(out)).to_dict()
    html, elements = parsed(write_report(spark, str(out)))
    assert_self_contained(html, elements)
    assert set(DATA_CHARTS) <= elements.ids()
    # A mixture's manifest has no per-source counts, rejects, language ID, dedup or templates.
    assert elements.missing() == set(CHART_IDS) - set(DATA_CHARTS)
    cells = elements.cells()
    assert_totals_match(cells, manifest)
    groups = {
        (cell["data-group"], cell["data-field"]): json.loads(cell["data-value"])
        for cell in cells
        if "data-group" in cell
    }
    assert groups == {
        (row["group"], field): row[field]
        for row in manifest["groups"]
        for field in ("available", "target_rows", "achieved_rows", "target_share",
                      "achieved_share", "saturated")
    }  # fmt: skip
    rows = next(json.loads(c["data-value"]) for c in cells if c["data-field"] == "data.rows")
    assert rows == manifest["counts"]["written"]


def test_report_of_a_dedup_output(spark: Any, demo: dict[str, Any], tmp_path: Path) -> None:
    from jobs.commands.dedup import run_dedup
    from jobs.config import DedupConfig
    from jobs.report import write_report

    out = tmp_path / "dedup"
    manifest = run_dedup(spark, DedupConfig(), str(demo["out"]), str(out)).to_dict()
    html, elements = parsed(write_report(spark, str(out)))
    assert_self_contained(html, elements)
    assert {*DATA_CHARTS, "chart-sources", "chart-dedup"} <= elements.ids()
    assert elements.missing() == {"chart-rejects", "chart-langid", "chart-templates"}
    assert_sources_match(elements.cells(), manifest)
    assert_totals_match(elements.cells(), manifest)


def test_report_of_an_output_without_a_manifest(spark: Any, tmp_path: Path) -> None:
    from jobs.report import write_report

    with pytest.raises(FileNotFoundError, match="no build output"):
        write_report(spark, str(tmp_path / "nothing"))


def test_report_command_arguments() -> None:
    from jobs.commands.report import add_report_arguments, report_command

    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    args = parser.parse_args(["s3a://bucket/out", "--master", "local[2]"])
    assert (args.output, args.master, args.handler) == (
        "s3a://bucket/out", "local[2]", report_command,
    )  # fmt: skip


# ---- the length aggregates --------------------------------------------------------------------


def test_length_buckets_and_percentiles(spark: Any) -> None:
    from jobs.report.aggregates import bucket_bounds, length_histograms, length_percentiles

    lengths = [0, 1, 9, 10, 11, 99, 100, 1000, 1000, 1001]
    frame = spark.createDataFrame(
        [("x" * n, "y" * (n // 2)) for n in lengths], "instruction string, response string"
    )
    histograms = length_histograms(frame)
    # A tenth of a decade per bucket: 9 is in [10^0.9, 10^1), 10 and 11 in [10^1, 10^1.1),
    # every exact power of ten in its own bucket, an empty text in bucket -1.
    assert histograms["instruction"] == {-1: 1, 0: 1, 9: 1, 10: 2, 19: 1, 20: 1, 30: 3}
    assert histograms["response"] == {-1: 2, 6: 3, 16: 2, 26: 3}
    for bucket, _ in histograms["instruction"].items():
        lower, upper = bucket_bounds(bucket)
        assert any(lower <= n < upper for n in lengths)
    assert sum(histograms["instruction"].values()) == len(lengths)
    rows, percentiles = length_percentiles(frame)
    assert rows == len(lengths)
    assert percentiles["instruction"] == {
        "p5": 0, "p25": 9, "p50": 11, "p75": 1000, "p95": 1001, "max": 1001,
    }  # fmt: skip
    assert percentiles["response"]["max"] == 500


# ---- the page without Spark: odd manifests, long axes, markup in names ------------------------


def test_page_leaves_out_what_an_odd_manifest_lacks() -> None:
    from jobs.report.aggregates import DataAggregates, LengthStats
    from jobs.report.page import render_page

    odd = {
        "sources": {
            "<b>bold</b>": {"read": "many", "templates": [], "langid": None},
            "plain": {"read": 3, "written": 2},
        },
        "dedup_clusters": {"histogram": "not a list"},
        "totals": {"read": 3, "splits": {"train": 2}},
    }
    html = render_page("/nowhere", odd, None)
    elements = Elements(html)
    assert_self_contained(html, elements)
    assert elements.missing() == {*CHART_IDS, "sample-rows"} - {"chart-sources"}
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert source_cells(elements.cells()) == {("plain", "read"): 3, ("plain", "written"): 2}
    # No manifest and no rows: every chart left out, with its note.
    empty = DataAggregates(0, {}, {"instruction": LengthStats({}, {})}, {})
    nothing = Elements(render_page("/nowhere", {}, empty))
    assert nothing.missing() == {*CHART_IDS, "sample-rows"}


def test_long_language_axis_keeps_the_top_and_one_other_bar() -> None:
    from jobs.report.aggregates import DataAggregates, LengthStats
    from jobs.report.charts import TOP, top_with_other
    from jobs.report.page import render_page

    languages = {f"l{i:02d}": 1000 - i for i in range(60)}
    shown = top_with_other(languages)
    assert len(shown) == TOP + 1 and shown[-1] == ("other (20)", sum(range(941, 961)))
    groups = {("s", code, "Latn", "c", "train"): n for code, n in languages.items()}
    stats = LengthStats({"p5": 5, "p50": 50, "max": 900}, {-1: 1, 7: 10, 20: 30})
    data = DataAggregates(sum(languages.values()), groups, {"instruction": stats}, {})
    # Sixty sources with templates, rejects and language ID: every long axis cut to its top.
    manifest = {"sources": {
        f"s{i:02d}": {"read": 100 + i, "written": 90, "rejected": 10, "duplicates": 0,
                      "rejected_by_reason": {f"r{i % 7}": 10}, "langid": {"mismatch_rate": i / 100},
                      "templates": {f"t{j}": {"applied": 30, "rejected": 3} for j in range(3)}}
        for i in range(60)
    }, "dedup_clusters": {"histogram": [{"size": "<=1", "clusters": 10, "records": 10}]}}  # fmt: skip
    elements = Elements(render_page("/nowhere", manifest, data))
    assert set(CHART_IDS) <= elements.ids() and elements.missing() == {"sample-rows"}
    assert len(source_cells(elements.cells())) == 60 * 5  # and langid.mismatch_rate
    rows = {c["data-language"]: json.loads(c["data-value"]) for c in elements.cells()
            if c["data-field"] == "data.language_rows"}  # fmt: skip
    assert rows == languages
