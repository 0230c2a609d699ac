"""Renderers: a ReportResult written to a file object as table, md, csv, json or html.

`table` and `md` are for people (localized labels and numbers, times in the site zone);
`csv` and `json` are for programs (raw values, times in UTC ISO 8601); `html` is one
self-contained file (inline CSS, charts as inline SVG, no script, no network) rendered
with Jinja2 from `templates/report_html.j2` (or `report_NAME.j2`), autoescaped.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tix.render import CsvWriter, json_value

FORMATS = ("table", "md", "csv", "json", "html")


def render(result, fmt: str, out, section: str | None = None, template_dirs: list[Path] | None = None) -> None:
    """Write `result` to `out` in `fmt`; `section` limits csv/json/table/md to one section."""
    sections = [s for s in result.sections if section is None or s.name == section]
    if section is not None and not sections:
        from tix.errors import UsageError

        names = ", ".join(s.name for s in result.sections)
        raise UsageError(f"report {result.name} has no section {section!r}; sections: {names}")
    if fmt == "json":
        _json(result, sections, out)
    elif fmt == "csv":
        _csv(sections, out)
    elif fmt == "html":
        out.write(html(result, template_dirs))
    else:
        _text(result, sections, out, "pipe" if fmt == "md" else "simple")


# -- for programs ---------------------------------------------------------------------------
def _raw(v):
    """A value for csv/json: times in UTC ISO 8601 (as every tix listing), decimals as floats."""
    return float(v) if isinstance(v, Decimal) else json_value(v, None)


def _json(result, sections, out) -> None:
    import orjson

    doc = {
        "report": result.name,
        "title": result.title,
        "generated_at": _raw(result.generated_at),
        "timezone": result.timezone,
        "week": result.params.week,
        "params": {k: _raw(v) for k, v in result.params.values.items()},
        "sections": [{"name": s.name, "title": s.title, "kind": s.kind, "note": _note(result, s),
                      "columns": s.columns,
                      "rows": [{c: _raw(v) for c, v in zip(s.columns, r, strict=True)} for r in s.rows]}
                     for s in sections],
    }
    out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def _csv(sections, out) -> None:
    """One section: plain CSV. Several: blocks separated by a blank line, each headed `# name`."""
    w = CsvWriter(out)
    for i, s in enumerate(sections):
        if len(sections) > 1:
            if i:
                out.write("\n")
            out.write(f"# {s.name}\n")
        w.writerow(s.columns)
        for r in s.rows:
            w.writerow([",".join(map(str, v)) if isinstance(v, (list, tuple)) else _raw(v) for v in r])


# -- for people -----------------------------------------------------------------------------
def _note(result, s) -> str | None:
    if not s.note:
        return None
    L = result.labels
    if s.note.startswith("missing_view:"):
        return L("missing_view", view=s.note.split(":", 1)[1])
    return L(s.note)


def column_label(result, s, column: str) -> str:
    if column in s.labels:
        return s.labels[column].get(result.locale) or s.labels[column].get("en") or column
    return result.labels(column)


def table_rows(result, s, limit: int | None = None) -> list[list[str]]:
    L = result.labels
    rows = s.rows[:limit] if limit else s.rows
    return [[L.value(v, c) for c, v in zip(s.columns, r, strict=True)] for r in rows]


def metric_rows(result, s) -> list[dict]:
    """Headline numbers with their week-over-week change: label, value, previous, delta, tone."""
    L = result.labels
    out = []
    for row in s.dicts():
        metric = str(row.get("metric"))
        value, previous = row.get("value"), row.get("previous")
        delta, sign = L.delta(value, previous, metric) if previous is not None else ("", 0)
        good = row.get("good")
        tone = "flat" if not sign or not good else ("good" if (sign > 0) == (good == "up") else "bad")
        label = s.labels.get(metric, {}).get(result.locale) if metric in s.labels else L(metric)
        out.append({"metric": metric, "label": label, "value": L.value(value, metric),
                    "previous": L.value(previous, metric), "delta": delta, "sign": sign, "tone": tone})
    return out


def _text(result, sections, out, tablefmt: str) -> None:
    from tabulate import tabulate

    L = result.labels
    md = tablefmt == "pipe"
    out.write(f"{'# ' if md else ''}{result.title}\n")
    period = period_text(result)
    if period:
        out.write(f"{period}\n")
    if not md:
        out.write("\n")
    for s in sections:
        if s.kind == "chart":
            continue  # a picture only (the rows are in csv/json)
        out.write(f"\n{'## ' if md else ''}{s.title}\n")
        if not md:
            out.write("-" * len(s.title) + "\n")
        else:
            out.write("\n")
        note = _note(result, s)
        if note:
            out.write(note + "\n")
            continue
        if not s.rows:
            out.write(L("no_rows") + "\n")
            continue
        if s.kind == "metrics":
            heads = [L("metric"), L("value"), L("previous"), L("change")]
            body = [[m["label"], m["value"], m["previous"], m["delta"]] for m in metric_rows(result, s)]
        else:
            heads = [column_label(result, s, c) for c in s.columns]
            body = table_rows(result, s)
        align = ["left"] + ["right"] * (len(heads) - 1) if s.kind == "metrics" else \
            ["right" if _is_numeric(s, j) else "left" for j in range(len(heads))]
        out.write(tabulate(body, headers=heads, tablefmt=tablefmt, disable_numparse=True,
                           colalign=align) + "\n")


def period_text(result) -> str:
    """'Week 2026-W47: 16 Nov 2026 – 22 Nov 2026 (Asia/Jakarta)' or '' without a period."""
    p = result.params
    L = result.labels
    if p.since is None or p.until is None:
        return ""
    from datetime import timedelta

    last = (p.until - timedelta(seconds=1)).date() if p.until.time().isoformat() == "00:00:00" else p.until.date()
    span = f"{L.date(p.since.date(), 'd MMM yyyy')} – {L.date(last, 'd MMM yyyy')}"
    head = f"{L('week_of', week=p.week)}: " if p.week else f"{L('period')}: "
    return f"{head}{span} ({result.timezone})"


# -- HTML -----------------------------------------------------------------------------------
def html(result, template_dirs: list[Path] | None = None) -> str:
    """The report as one self-contained HTML document."""
    from markupsafe import Markup

    from tix.reports import charts
    from tix.templates import environment, render as render_template

    env = environment(template_dirs, autoescape=True)
    sections = []
    for i, s in enumerate(result.sections):
        svg = None
        if s.chart is not None and s.rows and not s.note:
            svg = Markup(charts.draw_cached(s, result, f"{result.name}-{i}", getattr(result, "chart_cache", None)))
        sections.append({
            "name": s.name, "title": s.title, "kind": s.kind, "note": _note(result, s), "chart": svg,
            "columns": [column_label(result, s, c) for c in s.columns],
            "numeric": [_is_numeric(s, j) for j in range(len(s.columns))],
            "rows": table_rows(result, s, s.limit), "total": len(s.rows),
            "metrics": metric_rows(result, s) if s.kind == "metrics" else [],
        })
    L = result.labels
    return render_template(env, [f"report_{result.name}.j2", "report_html.j2"],
                           {"report": result, "sections": sections, "L": L, "period": period_text(result),
                            "generated": L.datetime(result.generated_at), "params": _shown_params(result)})


def _shown_params(result) -> list[tuple[str, str]]:
    hidden = {"since", "until"}
    return [(k, str(v)) for k, v in result.params.shown.items() if k not in hidden and v not in ("", None)]


def _is_numeric(s, j: int) -> bool:
    if s.columns[j] in ("ticket", "number", "weekday", "hour"):
        return False
    for r in s.rows[:20]:
        v = r[j]
        if v is not None:
            return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)
    return False
