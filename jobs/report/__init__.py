"""The run report: ``OUTPUT/report.html``, one self-contained page of charts and tables over a
build, mix or dedup output. Its numbers come from the output's manifest and from Spark
aggregates over the committed data (never from collected rows); :func:`write_report` writes
it."""

from __future__ import annotations

from jobs.report.write import REPORT_NAME, report_after_run, write_report

__all__ = ["REPORT_NAME", "report_after_run", "write_report"]
