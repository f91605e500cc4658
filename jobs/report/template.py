"""The report page's Jinja template: a Python string, so it ships inside the code zip and the
wheel like any module. Self-contained by construction: inline CSS, inline SVG, no script, and
a Content-Security-Policy that forbids the page any fetch at all.

Every number a reader (or a test) may want back carries ``data-field`` with its dotted path
in the manifest (``totals.written``; a per-source cell also ``data-source``) or, for numbers
counted on the data, a path under ``data.``; ``data-value`` holds the number as JSON."""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>instructmill report: {{ root }}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1e23;
       margin: 0 auto; max-width: 1100px; padding: 1.5em 2em 4em; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 2.2em; border-bottom: 1px solid #d6d9de; padding-bottom: 0.2em; }
.root { color: #59606b; font-family: ui-monospace, monospace; word-break: break-all; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 13px; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #eceef1; text-align: left;
         vertical-align: top; }
th { background: #f5f6f8; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tfoot td { font-weight: 600; border-top: 2px solid #c4c8ce; }
figure { margin: 1em 0; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #59606b; font-size: 12.5px; margin-top: 0.3em; }
p.note { color: #8a5a00; background: #fff8e6; border-left: 3px solid #efb118;
         padding: 0.3em 0.7em; }
table.samples td { max-width: 28em; white-space: pre-wrap; word-break: break-word; }
table.samples td.src { word-break: normal; white-space: nowrap; }
table.samples td.id { font-family: ui-monospace, monospace; font-size: 11px; }
.scroll { overflow-x: auto; max-width: 100%; }
.cols { display: flex; flex-wrap: wrap; gap: 0 2.5em; align-items: flex-start; }
</style>
</head>
<body>
{%- macro value_cell(cell) -%}
{%- if cell is none %}<td class="n">–</td>
{%- else %}<td class="n" data-field="{{ cell.field }}"
{%- for name, key in cell.keys %} data-{{ name }}="{{ key }}"{% endfor %}
 data-value="{{ cell.value | json_value }}">{{ cell.value | shown(cell.field) }}</td>
{%- endif %}
{%- endmacro %}
{%- macro table(t) %}
{%- if t %}
<div class="scroll"><table id="{{ t.id }}">
<thead><tr><th>{{ t.first }}</th>
{%- for name in t.headers %}<th class="n">{{ name }}</th>{% endfor %}</tr></thead>
<tbody>
{%- for key, cells in t.rows %}
<tr><th>{{ key }}</th>
{%- for cell in cells %}{{ value_cell(cell) }}{% endfor %}</tr>
{%- endfor %}
</tbody>
</table></div>
{%- endif %}
{%- endmacro %}
{%- macro chart(entry) %}
{%- if entry.svg %}
<figure id="{{ entry.id }}">
{{ entry.svg }}
<figcaption id="{{ entry.id }}-title">{{ entry.title }}. {{ entry.caption }}</figcaption>
</figure>
{%- else %}
<p class="note" id="{{ entry.id }}-note" data-missing="{{ entry.id }}">{{ entry.title }}:
left out, {{ entry.note }}.</p>
{%- endif %}
{%- endmacro %}
<h1>instructmill report: {{ job }} output</h1>
<div class="root">{{ root }}</div>

<h2 id="summary">Summary</h2>
<div class="cols">
<table id="run">
<tbody>
{%- for field, value in facts %}
<tr><th>{{ field }}</th><td data-field="{{ field }}">{{ value }}</td></tr>
{%- endfor %}
</tbody>
</table>
{{ table(tables.totals) }}
</div>
{%- for line in notes %}
<p class="note">{{ line }}</p>
{%- endfor %}

<h2 id="languages">Languages, scripts and task clusters</h2>
{{ chart(charts["chart-languages"]) }}
{%- if tables.languages %}
<details>
<summary>rows per language ({{ tables.languages.rows | length }}, counted on data/)</summary>
{{ table(tables.languages) }}
</details>
{%- endif %}
{{ chart(charts["chart-clusters"]) }}

<h2 id="sources">Sources</h2>
{{ table(tables.sources) }}
{{ chart(charts["chart-sources"]) }}
{{ chart(charts["chart-rejects"]) }}
{{ chart(charts["chart-langid"]) }}
{{ chart(charts["chart-templates"]) }}
{%- for shares in tables.shares %}
<h3>Mixture: target and achieved rows per {{ shares.first }}</h3>
{{ table(shares) }}
{%- endfor %}

<h2 id="dedup">Duplicates and contamination</h2>
{{ chart(charts["chart-dedup"]) }}
{%- if tables.decontamination %}
<h3>Decontamination reference sets</h3>
{{ table(tables.decontamination) }}
{%- endif %}

<h2 id="lengths">Lengths</h2>
{{ chart(charts["chart-lengths"]) }}
{{ table(tables.lengths) }}

<h2 id="samples">Sample rows</h2>
{%- if samples %}
<p>Five rows per source, the first in xxhash64(id) order: the same rows on every report of
the same output. Texts are shortened for display.</p>
<table class="samples" id="sample-rows">
<thead><tr><th>source</th><th>instruction</th><th>response</th><th>language</th>
<th>template_id</th><th>id</th></tr></thead>
<tbody>
{%- for name, rows in samples.items() %}{% for row in rows %}
<tr data-source="{{ name }}"><td class="src">{{ name }}</td><td>{{ row.instruction }}</td>
<td>{{ row.response }}</td><td>{{ row.language }}</td><td class="id">{{ row.template_id }}</td>
<td class="id">{{ row.id }}</td></tr>
{%- endfor %}{% endfor %}
</tbody>
</table>
{%- else %}
<p class="note" data-missing="sample-rows">Sample rows: left out, data/ has no rows.</p>
{%- endif %}
</body>
</html>
"""
