"""`tix report NAME` and `tix report list`: run a SQL report and render or mail it."""
from __future__ import annotations

import sys
from typing import List, Optional

import typer

from tix.cli.common import RedactOpt, info, open_store

REPORT_FORMATS = ("table", "html", "md", "csv", "json")


def register(app) -> None:
    """Add `tix report` to the app."""
    app.command("report", help=REPORT_HELP, epilog=REPORT_EPILOG)(report)


REPORT_HELP = """Run a report (a SQL file in reports/) and print it, write it to a file or mail it.

`tix report list` shows every report: the built-ins and the store's own reports/*.sql
(a store's file with a built-in's name replaces it).
"""

REPORT_EPILOG = """Examples:

  tix report backlog

  tix report weekly --week 2026-W47 --format html --out weekly.html

  tix report response-times --param team=billing --param since=2026-10-01 --format csv

  tix report weekly --mail-to lead@example.co.id --mail-to owner@example.co.id
"""


def report(
    name: str = typer.Argument(..., help="Report name (see `tix report list`), or `list`."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, html, md, csv or json."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write to this file instead of standard output."),
    param: List[str] = typer.Option([], "--param", "-p", help="A report parameter, NAME=VALUE (repeatable)."),
    week: Optional[str] = typer.Option(None, "--week", "-w", help="ISO week in the site time zone, e.g. 2026-W47."),
    mail_to: List[str] = typer.Option(
        [], "--mail-to", help="Send the HTML report with a text alternative to this address (repeatable)."),
    section: Optional[str] = typer.Option(None, "--section", help="Only this section (table, md, csv, json)."),
    locale: Optional[str] = typer.Option(None, "--locale", help="id or en (default: the `locale` setting)."),
    redact: bool = RedactOpt,
) -> None:
    from tix.errors import UsageError

    if fmt not in REPORT_FORMATS:
        raise UsageError(f"--format {fmt!r} is not one of: {', '.join(REPORT_FORMATS)}")
    if locale is not None and locale not in ("id", "en"):
        raise UsageError(f"--locale {locale!r} is not one of: id, en")
    store = open_store()
    if name == "list":
        return report_list(store, fmt, out, locale)
    params = _params(param)
    from tix.reports import run_report

    result = run_report(store, name, params, week=week, locale=locale)
    if redact:
        from tix.redact import Redactor, redact_report

        result = redact_report(result, Redactor.for_store(store))
    if mail_to:
        _mail(store, result, mail_to)
        if out is None:
            return
    _write(out, lambda f: _render(store, result, fmt, f, section))


def report_list(store, fmt: str, out: str | None, locale: str | None) -> None:
    from tix.render import render
    from tix.reports import list_reports

    rows = list_reports(store, locale)
    fmt = fmt if fmt in ("json", "csv") else "table"
    _write(out, lambda f: render(rows, fmt, f, columns=["name", "title", "parameters", "source", "description"]))


def _params(pairs: list[str]) -> dict[str, str]:
    from tix.errors import UsageError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {pair!r}: use NAME=VALUE")
        out[key.strip()] = value.strip()
    return out


def _render(store, result, fmt, f, section) -> None:
    from tix.reports import render

    render(result, fmt, f, section=section, template_dirs=[store.path("templates")])


def _write(out: str | None, write) -> None:
    if out is None:
        write(sys.stdout)
        return
    import io

    from tix.store.files import atomic_write

    buf = io.StringIO(newline="")
    write(buf)
    # A half-written report never replaces a good one; a report is an ordinary file (0666 less the umask).
    target = atomic_write(out, buf.getvalue(), mode=0o666)
    info(f"wrote {target}")


def _mail(store, result, to: list[str]) -> None:
    import io

    from tix.reports import mail
    from tix.reports.render import period_text, render

    html, text = io.StringIO(), io.StringIO()
    render(result, "html", html, template_dirs=[store.path("templates")])
    render(result, "table", text)
    subject = result.title + (f" {result.params.week}" if result.params.week else "")
    if not result.params.week and period_text(result):
        subject = f"{result.title}: {period_text(result)}"
    msg_id = mail.send(store, list(to), subject, text.getvalue(), html.getvalue())
    info(f"sent {result.name} to {', '.join(to)} ({msg_id})")
