"""The report page: each chart drawn from the manifest or the data aggregates (or left out
with a one-line note when its numbers are not there), the tables, and the HTML rendered by
Jinja with autoescaping (source names, template ids and sample texts are data, not markup)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from jobs.report import charts, numbers, tables
from jobs.report.aggregates import DataAggregates
from jobs.report.template import PAGE

CHART_IDS = (
    "chart-languages", "chart-clusters", "chart-sources", "chart-rejects", "chart-langid",
    "chart-dedup", "chart-lengths", "chart-templates",
)  # fmt: skip


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    caption: str = ""
    svg: Markup | None = None
    note: str = ""  # why it is left out


def shown(value: Any, field: str = "") -> str:
    """A number as the page shows it: thousands separators, rates and shares in percent."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and field.endswith(("rate", "share")):
        return f"{100 * value:.2f}%"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def json_value(value: Any) -> str:
    return json.dumps(value)


def _drawn(chart_id: str, title: str, caption: str, draw: Callable[[], str]) -> Chart:
    return Chart(chart_id, title, caption, Markup(draw()))


def data_charts(data: DataAggregates | None) -> list[Chart]:
    """The charts counted on the data itself: they exist for every kind of output."""
    titles = {
        "chart-languages": "Rows per language and per script",
        "chart-clusters": "Rows per task cluster, train and held-out",
        "chart-lengths": "Instruction and response lengths",
    }
    if data is None or data.rows == 0:
        why = "data/ has no rows" if data is not None else "this output has no data/"
        return [Chart(chart_id, title, note=why) for chart_id, title in titles.items()]
    clusters = data.by("task_cluster", "split")
    return [
        _drawn(
            "chart-languages", titles["chart-languages"],
            f"Counted on data/ with a Spark groupBy; the {charts.TOP} largest languages and the "
            "rest as one bar.",
            lambda: charts.languages_chart(data.counts_of("language"), data.counts_of("script")),
        ),
        _drawn(
            "chart-clusters", titles["chart-clusters"], "Counted on data/, stacked by split.",
            lambda: charts.clusters_chart({(c, s): n for (c, s), n in clusters.items()}),
        ),
        _drawn(
            "chart-lengths", titles["chart-lengths"],
            "Characters per text, in buckets of a tenth of a decade, with the approximate "
            "percentiles (Spark's percentile_approx) marked.",
            lambda: charts.lengths_chart(data.lengths),
        ),
    ]  # fmt: skip


def _missing(kind: str, what: str) -> str:
    return f"this {kind} output's manifest has no {what}"


def manifest_charts(manifest: Mapping[str, Any]) -> list[Chart]:
    """The charts of the manifest's own numbers, each where this kind of manifest has them."""
    kind = numbers.job_kind(manifest)
    fields, table = numbers.source_table(manifest)
    flow = [field for field in numbers.FLOW_FIELDS if field in fields]
    reasons = numbers.rejects_by_reason(manifest)
    rates = numbers.mismatch_rates(manifest)
    histogram = numbers.dedup_histogram(manifest)
    templates = numbers.template_counts(manifest)
    found = [
        ("chart-sources", "Rows per source", "per-source counts", flow and table,
         "From the manifest's sources; log scale.",
         lambda: charts.sources_chart(table, flow)),
        ("chart-rejects", "Rejected rows by reason", "per-source rejected_by_reason",
         reasons, "The manifest's sources.*.rejected_by_reason, summed over sources.",
         lambda: charts.counts_chart("chart-rejects", "rejected rows by reason", reasons or {},
                                     "rows")),
        ("chart-langid", "Language-ID mismatch rate per source", "langid.mismatch_rate",
         rates, "Rows whose content is confidently not the declared language, of those "
         "judged (the manifest's sources.*.langid.mismatch_rate).",
         lambda: charts.counts_chart("chart-langid", "language-ID mismatch rate",
                                     {k: 100 * v for k, v in (rates or {}).items()}, "%")),
        ("chart-dedup", "Dedup cluster sizes", "dedup_clusters.histogram",
         histogram, "The manifest's dedup_clusters.histogram: source records per cluster.",
         lambda: charts.dedup_chart(histogram or [])),
        ("chart-templates", "Rows per template", "per-source templates", templates,
         f"Applied and rejected rows per (source, template); the {charts.TOP} largest.",
         lambda: charts.templates_chart(templates or {})),
    ]  # fmt: skip
    return [
        _drawn(chart_id, title, caption, draw)
        if present
        else Chart(chart_id, title, note=_missing(kind, what))
        for chart_id, title, what, present, caption, draw in found
    ]


def _notes(manifest: Mapping[str, Any], data: DataAggregates | None) -> list[str]:
    notes = []
    if not manifest:
        notes.append("This output has no _manifest.json: only the numbers counted on data/.")
    written = numbers.lookup(manifest, "totals.written")
    if data is not None and numbers.is_number(written) and written != data.rows:
        notes.append(
            f"data/ holds {data.rows:,} rows and the manifest's totals.written is "
            f"{written:,}: a dated output's data/ holds every load, its manifest the last."
        )
    return notes


def page_context(
    root: str, manifest: Mapping[str, Any], data: DataAggregates | None
) -> dict[str, Any]:
    found = data_charts(data) + manifest_charts(manifest)
    return {
        "root": root,
        "job": numbers.job_kind(manifest),
        "facts": numbers.run_facts(manifest),
        "notes": _notes(manifest, data),
        "charts": {entry.id: entry for entry in found},
        "tables": {
            "totals": tables.headline_table(manifest, data),
            "sources": tables.source_table(manifest),
            "languages": tables.language_table(data),
            "lengths": tables.length_table(data),
            "shares": tables.share_tables(manifest),
            "decontamination": tables.decontamination_table(manifest),
        },
        "samples": data.samples if data is not None else {},
    }


def render_page(root: str, manifest: Mapping[str, Any], data: DataAggregates | None) -> str:
    environment = Environment(
        autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True
    )
    environment.filters.update(shown=shown, json_value=json_value)
    return environment.from_string(PAGE).render(page_context(root, manifest, data))
