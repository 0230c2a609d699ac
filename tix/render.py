"""Rendering rows for people and scripts: table (tabulate), JSON, CSV; times in the site zone.

Renderers write to a file object; they never decide what to query.
"""
from __future__ import annotations

import csv
import re
import sys
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo


# What a terminal would act on instead of showing: C0 and C1 controls (ESC starts screen
# clears, window titles, OSC 52 clipboard writes and OSC 8 hidden links; CR overwrites a
# line), DEL, bidirectional overrides and isolates, zero-width marks, line separators.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]")


def _visible(m: re.Match) -> str:
    c = ord(m.group(0))
    if c < 0x20:
        return chr(0x2400 + c)  # the control picture: ESC shows as U+241B
    return "\u2421" if c == 0x7F else "\ufffd"


def terminal_safe(text: str) -> str:
    """Text as a terminal shows it harmlessly: controls become visible symbols (tab and newline stay)."""
    return _UNSAFE.sub(_visible, text)


class SafeStream:
    """A text stream that makes everything written through it `terminal_safe`.

    `tix` writes all its output (tables, `show`, listings, errors, JSON and CSV) through
    these, so no byte a customer sent can act on an agent's terminal, whatever the command.
    Code that must send its own control sequence (the progress line) writes to `.passthrough`.
    """

    def __init__(self, stream):
        self.passthrough = stream

    def write(self, text: str) -> int:
        return self.passthrough.write(_UNSAFE.sub(_visible, text))

    def __getattr__(self, name):
        return getattr(self.passthrough, name)


_FORMULA = re.compile(r"^(?:[=@\t\r]|[+-](?![\d\s().-]*$))")


def csv_cell(value):
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a leading `'`.

    `=`, `@`, tab and CR always; `+` and `-` unless the rest is a number or a phone number
    (`+62 812-3456`), so scripts still read numbers and phones as they are.
    """
    if isinstance(value, str) and _FORMULA.match(value):
        return "'" + value
    return value


class CsvWriter:
    """The one CSV writer of tix (listings and reports): rows of cells made safe by `csv_cell`."""

    def __init__(self, out):
        self._w = csv.writer(out, lineterminator="\n")

    def writerow(self, row) -> None:
        self._w.writerow([csv_cell(v) for v in row])


def local(dt: datetime | None, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored (naive UTC) time shown in the site's time zone."""
    if dt is None:
        return ""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(ZoneInfo(tz)).strftime(fmt)


def json_value(v, tz=None):
    """A value for JSON and CSV: times as UTC ISO 8601 (`...Z`), dates ISO, the rest as is."""
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        return v.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(v, date):
        return v.isoformat()
    return v


def _text_value(v, tz):
    if isinstance(v, datetime):
        return local(v, tz)
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    if v is None:
        return ""
    return v


def render(rows: list[dict], fmt: str = "table", out=None, tz: str = "Asia/Jakarta",
           columns: list[str] | None = None, headers: dict | None = None) -> None:
    """Write rows as a table, JSON (a list of objects, times in UTC ISO 8601) or CSV."""
    out = out or sys.stdout
    columns = columns or (list(rows[0].keys()) if rows else [])
    if fmt == "json":
        import orjson

        data = [{c: json_value(r.get(c), tz) for c in columns} for r in rows]
        out.write(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    elif fmt == "csv":
        w = CsvWriter(out)
        w.writerow(columns)
        for r in rows:
            w.writerow([json_value(r.get(c), tz) if not isinstance(r.get(c), (list, tuple))
                        else ",".join(map(str, r.get(c))) for c in columns])
    else:
        from tabulate import tabulate

        names = [(headers or {}).get(c, c) for c in columns]
        body = [[_text_value(r.get(c), tz) for c in columns] for r in rows]
        if body:
            out.write(tabulate(body, headers=names, tablefmt="simple", disable_numparse=True) + "\n")
