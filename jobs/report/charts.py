"""The report's charts: matplotlib figures (never pyplot's global state) saved as SVG and
made fit to sit inline in one HTML page. Text is drawn as paths (no font needed by the
reader), ids are salted and prefixed per chart (several SVGs share the page's id space), and
nothing dated or external is left in them, so the same numbers give the same bytes."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from jobs.report.aggregates import EMPTY_BUCKET, LengthStats, bucket_bounds

STYLE = {
    "svg.fonttype": "path",
    "svg.hashsalt": "instructmill-report",
    # Labels are data (source names, template ids): a "$" in one is not mathtext.
    "text.parse_math": False,
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.axisbelow": True,
}
# Matplotlib would write the save's date into the file.
METADATA = {"Date": None, "Creator": None}
COLOURS = ("#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#a463f2", "#97bbf5", "#9c6b4e")
# A count has the same colour on a build's page and a dedup's.
FLOW_COLOURS = {
    "read": COLOURS[0], "written": COLOURS[1], "rejected": COLOURS[2], "duplicates": COLOURS[3],
    "contaminated": COLOURS[4], "contaminates_heldout": COLOURS[4],
}  # fmt: skip
# A long axis (languages, sources, templates) shows its largest entries and one "other" bar.
TOP = 40
# Sources have a group of bars each: fewer fit.
SOURCES_TOP = 25
LABEL_CHARS = 48
WIDTH = 9.0


def inline_svg(svg: str, prefix: str) -> str:
    """Matplotlib's SVG document as an element for an HTML page: no XML prolog, DTD or RDF
    metadata (they name external URLs), no namespace declarations (HTML's parser needs none),
    SVG 2 ``href`` for ``xlink:href``, and every id prefixed so charts cannot collide."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r"\s*<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(?::\w+)?="[^"]*"', "", svg)
    svg = svg.replace("xlink:href=", "href=")
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    return svg.replace("<svg ", f'<svg role="img" aria-labelledby="{prefix}-title" ', 1)


def draw_svg(prefix: str, height: float, draw: Callable[[Figure], None]) -> str:
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(WIDTH, height), layout="constrained")
        draw(figure)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata=METADATA)
    return inline_svg(buffer.getvalue(), prefix)


def label(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def top_with_other(counts: Mapping[str, float], top: int = TOP) -> list[tuple[str, float]]:
    """The ``top`` largest entries (ties by name) and, when more remain, their sum."""
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    rest = ordered[top:]
    head = ordered[:top]
    return head + ([(f"other ({len(rest)})", sum(v for _, v in rest))] if rest else [])


def compact(value: float) -> str:
    """A tick's number in a few characters: 500, 20k, 1.5M (Python's "g" would say 2e+04)."""
    for factor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:g}"


def log_scale(axes: Axes, which: str, values: Sequence[float]) -> None:
    """A log axis labelled 1, 10, 100 (its default labels are mathtext, which stays off), and
    also 2 and 5 of each decade when the values span few decades."""
    if which == "x":
        axes.set_xscale("log")
    else:
        axes.set_yscale("log")
    axis = axes.xaxis if which == "x" else axes.yaxis
    positive = [value for value in values if value > 0]
    if positive and max(positive) / min(positive) < 300:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: compact(value)))
    axis.set_minor_formatter(NullFormatter())


def _bar_height(entries: int, per_entry: float = 0.22) -> float:
    return max(1.8, 0.9 + per_entry * entries)


def _hbars(
    axes: Axes, labels: Sequence[str], series: Mapping[str, Sequence[float]], stacked: bool,
    colours: Mapping[str, str] | None = None,
) -> None:  # fmt: skip
    """Horizontal bars, the first label on top: stacked, or grouped side by side."""
    positions = list(range(len(labels)))
    width = 0.8 if stacked else 0.8 / max(1, len(series))
    left = [0.0] * len(labels)
    for index, (name, values) in enumerate(series.items()):
        colour = (colours or {}).get(name, COLOURS[index % len(COLOURS)])
        if stacked:
            axes.barh(positions, values, left=left, height=width, label=name, color=colour)
            left = [a + b for a, b in zip(left, values, strict=True)]
        else:
            offset = -0.4 + width * (index + 0.5)
            shifted = [p + offset for p in positions]
            axes.barh(shifted, values, height=width, label=name, color=colour)
    axes.set_yticks(positions, [label(name) for name in labels])
    axes.set_ylim(len(labels) - 0.5, -0.5)
    axes.grid(axis="y", visible=False)
    if len(series) > 1:
        axes.legend(loc="best", fontsize=7)


def languages_chart(languages: Mapping[str, int], scripts: Mapping[str, int]) -> str:
    shown = top_with_other(languages)
    scripts_shown = top_with_other(scripts)

    def draw(figure: Figure) -> None:
        ratios = [max(6, len(shown)), max(6, len(scripts_shown))]
        left, right = figure.subplots(1, 2, width_ratios=ratios)
        for axes, entries, what in ((left, shown, "language"), (right, scripts_shown, "script")):
            names = [label(name) for name, _ in entries]
            bars = axes.bar(names, [v for _, v in entries], color=COLOURS[0])
            log_scale(axes, "y", [v for _, v in entries])
            axes.set_title(f"rows per {what} (log scale)")
            axes.tick_params(axis="x", labelrotation=90 if len(entries) > 12 else 0)
            axes.grid(axis="x", visible=False)
            if len(entries) <= 20:
                axes.bar_label(bars, fontsize=6, padding=1, fmt="{:,.0f}")

    return draw_svg("chart-languages", 3.4, draw)


def clusters_chart(by_cluster_split: Mapping[tuple[str, str], int]) -> str:
    """Rows per task cluster, train and held-out stacked."""
    totals: dict[str, int] = {}
    for (cluster, _), count in by_cluster_split.items():
        totals[cluster] = totals.get(cluster, 0) + count
    entries = top_with_other(totals)
    kept = {name for name, _ in entries[:TOP]}
    splits = sorted({split for _, split in by_cluster_split}, key=lambda s: (s != "train", s))
    series: dict[str, list[float]] = {}
    for split in splits:
        values = [float(by_cluster_split.get((name, split), 0)) for name, _ in entries[:TOP]]
        if len(entries) > TOP:
            other = (n for (c, s), n in by_cluster_split.items() if s == split and c not in kept)
            values.append(float(sum(other)))
        series[split] = values

    def draw(figure: Figure) -> None:
        axes = figure.subplots()
        _hbars(axes, [name for name, _ in entries], series, stacked=True)
        axes.set_title("rows per task cluster, by split")
        axes.set_xlabel("rows")

    return draw_svg("chart-clusters", _bar_height(len(entries)), draw)


def sources_chart(per_source: Mapping[str, Mapping[str, float]], fields: Sequence[str]) -> str:
    """Grouped bars per source of the manifest's counts (log scale: rejects are few)."""
    first = fields[0]
    by_first = {name: counts.get(first, 0) for name, counts in per_source.items()}
    entries = top_with_other(by_first, SOURCES_TOP)
    names = [name for name, _ in entries]
    kept = set(names[:SOURCES_TOP])
    rest = [counts for name, counts in per_source.items() if name not in kept]
    series = {
        field: [float(per_source[name].get(field, 0)) for name in names[:SOURCES_TOP]]
        + ([float(sum(c.get(field, 0) for c in rest))] if rest else [])
        for field in fields
    }

    def draw(figure: Figure) -> None:
        axes = figure.subplots()
        _hbars(axes, names, series, stacked=False, colours=FLOW_COLOURS)
        log_scale(axes, "x", [v for values in series.values() for v in values])
        axes.set_title(f"per source: {', '.join(fields)} (log scale)")
        axes.set_xlabel("rows")

    return draw_svg("chart-sources", _bar_height(len(names), 0.12 * len(fields) + 0.1), draw)


def counts_chart(prefix: str, title: str, counts: Mapping[str, float], unit: str) -> str:
    """One horizontal bar per entry, largest first: rejects by reason, mismatch rates."""
    entries = top_with_other(counts)

    def draw(figure: Figure) -> None:
        axes = figure.subplots()
        _hbars(axes, [n for n, _ in entries], {unit: [v for _, v in entries]}, stacked=True)
        axes.set_title(title)
        axes.set_xlabel(unit)
        if entries:
            axes.bar_label(axes.containers[0], fontsize=6, padding=2, fmt="{:,.4g}")
        # All zero (no mismatches, say): an axis from 0 rather than one centred on it.
        axes.set_xlim(0, max([v for _, v in entries], default=0) * 1.08 or 1)

    return draw_svg(prefix, _bar_height(len(entries)), draw)


def dedup_chart(histogram: Sequence[Mapping[str, Any]]) -> str:
    """Duplicate clusters per size bucket (log scale), each bar labelled with its records."""
    names = [str(entry["size"]) for entry in histogram]
    clusters = [float(entry["clusters"]) for entry in histogram]
    records = [int(entry["records"]) for entry in histogram]

    def draw(figure: Figure) -> None:
        axes = figure.subplots()
        bars = axes.bar(names, clusters, color=COLOURS[0])
        log_scale(axes, "y", clusters)
        axes.bar_label(bars, [f"{r:,} records" for r in records], fontsize=6, padding=1)
        axes.set_title("dedup clusters per size (records per cluster; log scale)")
        axes.set_xlabel("cluster size")
        axes.set_ylabel("clusters")
        axes.grid(axis="x", visible=False)

    return draw_svg("chart-dedup", 2.8, draw)


def _length_axes(axes: Axes, name: str, stats: LengthStats) -> None:
    for bucket, count in stats.buckets.items():
        lower, upper = bucket_bounds(bucket)
        # An empty text has no place on a log axis: its bar stands just left of 1.
        if bucket == EMPTY_BUCKET:
            lower, upper = 0.5, 0.9
        axes.bar(lower, count, width=upper - lower, align="edge", color=COLOURS[0])
    edges = [bound for bucket in stats.buckets for bound in bucket_bounds(bucket)]
    log_scale(axes, "x", edges)
    axes.set_title(f"{name} length (characters, log scale)")
    axes.set_ylabel("rows")
    for index, (mark, value) in enumerate(stats.percentiles.items()):
        if value is None or value <= 0:
            continue
        axes.axvline(value, color=COLOURS[2 + index % 3], linestyle="--", linewidth=0.8)
        axes.annotate(
            mark, (value, 1.0), xycoords=("data", "axes fraction"), fontsize=6,
            rotation=90, va="top", ha="right",
        )  # fmt: skip


def lengths_chart(lengths: Mapping[str, LengthStats]) -> str:
    def draw(figure: Figure) -> None:
        panes = figure.subplots(1, len(lengths), squeeze=False)[0]
        for axes, (name, stats) in zip(panes, lengths.items(), strict=True):
            _length_axes(axes, name, stats)

    return draw_svg("chart-lengths", 2.8, draw)


def templates_chart(templates: Mapping[tuple[str, str], tuple[int, int]]) -> str:
    """Applied and rejected rows per (source, template), the largest totals first."""
    named = {f"{source}: {template}": counts for (source, template), counts in templates.items()}
    entries = top_with_other({name: sum(counts) for name, counts in named.items()})
    head = [name for name, _ in entries[:TOP]]
    kept = set(head)
    rest = [counts for name, counts in named.items() if name not in kept]
    series = {
        kind: [float(named[name][i]) for name in head]
        + ([float(sum(c[i] for c in rest))] if rest else [])
        for i, kind in enumerate(("applied", "rejected"))
    }

    def draw(figure: Figure) -> None:
        axes = figure.subplots()
        _hbars(axes, [name for name, _ in entries], series, stacked=True)
        axes.set_title("rows per template: applied and rejected")
        axes.set_xlabel("rows")

    return draw_svg("chart-templates", _bar_height(len(entries)), draw)
