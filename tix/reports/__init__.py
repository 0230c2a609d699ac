"""Reports: DuckDB SQL files over the store's views, rendered for people and programs.

This package owns everything between the views and the reader of a report:

- `definition`: the report file format (a SQL file with a `-- key: value` header:
  title, description, parameters with defaults, labels, and named sections) and its
  checks, every problem as `file:line: message`;
- `params`: turning `--param k=v` / `--week 2026-W47` / defaults into bound values (dates
  in the site time zone, bound as naive UTC like the views);
- `run`: finding reports (the store's `reports/` overrides and extends the built-ins in
  the package's `reports/`) and running their sections (`run_report`);
- `render`, `labels`, `charts`: table/md/csv/json/html renderers writing to a file object,
  English and Indonesian labels with Babel number and date formats, matplotlib charts as
  inline SVG (imported only when a chart is drawn);
- `mail`: delivering a rendered report by SMTP (`outbound:` section of tix.yaml).

- `clocks`: the SLA clocks a report shows, computed from the history when it runs.

SQL is never built from parameter values: every value is bound as `$name`.
Built-in reports read the `tickets` view and the ticket history (tix.store.history: Parquet,
folded from the log once and kept up to date); they never scan `events`, so they stay fast on a
store of millions of events, and a past period's figures never change. Their definitions are
in the README ("Report definitions") and in each SQL file's header.
"""
from __future__ import annotations

from tix.reports.render import FORMATS, render
from tix.reports.run import ReportResult, SectionResult, list_reports, load_report, run_report

__all__ = ["FORMATS", "ReportResult", "SectionResult", "list_reports", "load_report", "render", "run_report"]
