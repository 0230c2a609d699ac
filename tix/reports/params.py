"""Report parameters: from `--param k=v`, `--week` and the file's defaults to bound values.

Dates and times are given in the site time zone and bound as naive UTC TIMESTAMPs, the
way the views store them. A `date` is the local midnight that starts that day, so a
period `since`..`until` covers `since` up to (not including) `until`.

Relative values: `now`, `today`, `monday` (00:00 on Monday of the current ISO week) and
`month` (the 1st of the current month), each with an optional offset such as `-28d`,
`+1w` or `-6h` (hours for timestamps only); or an absolute `2026-11-16` /
`2026-11-16T09:30`. `--week 2026-W47` sets `since` and `until` to that ISO week.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from tix.errors import UsageError
from tix.store.log import parse_local, utcnow


class ParamError(ValueError):
    pass


_RELATIVE = re.compile(r"^(now|today|monday|month)\s*(?:([+-])\s*(\d+)\s*([dwh]))?$")
_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.I)
_TRUE = ("1", "true", "yes", "y", "on")
_FALSE = ("0", "false", "no", "n", "off", "")


@dataclass
class Resolved:
    values: dict  # name -> value bound into the SQL
    shown: dict  # name -> how it is shown to people (site time)
    since: datetime | None = None  # local (aware) start of the period
    until: datetime | None = None  # local (aware) end of the period (exclusive)
    week: str | None = None  # '2026-W47' when the period is exactly one ISO week
    notes: list[str] = field(default_factory=list)


def parse_week(text: str) -> tuple[date, date]:
    """'2026-W47' -> (Monday, next Monday) as local dates; ParamError when malformed."""
    m = _WEEK.match(text.strip())
    if not m:
        raise ParamError(f"not an ISO week: {text!r} (use e.g. 2026-W47)")
    year, week = int(m.group(1)), int(m.group(2))
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ParamError(f"no week {week} in {year}") from None
    return monday, monday + timedelta(days=7)


def iso_week_label(d: date) -> str:
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


def _base(word: str, now_local: datetime) -> datetime:
    midnight = datetime.combine(now_local.date(), time(0), now_local.tzinfo)
    if word == "now":
        return now_local
    if word == "today":
        return midnight
    if word == "monday":
        return midnight - timedelta(days=now_local.weekday())
    return midnight.replace(day=1)  # month


def _local_midnight(d: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time(0), tz)


def parse_when(text: str, ptype: str, tz: ZoneInfo, now: datetime) -> datetime:
    """A date/timestamp parameter value -> aware local datetime."""
    t = text.strip()
    now_local = now.astimezone(tz)
    m = _RELATIVE.match(t)
    if m:
        word, sign, num, unit = m.groups()
        if word == "now" and ptype == "date":
            raise ParamError("a date cannot be `now`; use `today`")
        if unit == "h" and ptype == "date":
            raise ParamError("a date offset is in days (d) or weeks (w)")
        value = _base(word, now_local)
        if num:
            delta = {"d": timedelta(days=int(num)), "w": timedelta(weeks=int(num)),
                     "h": timedelta(hours=int(num))}[unit]
            # Day and week steps move the wall clock (right across DST changes).
            naive = value.replace(tzinfo=None) + (delta if sign == "+" else -delta)
            value = naive.replace(tzinfo=tz) if unit != "h" else (value + (delta if sign == "+" else -delta))
        return value
    try:
        if ptype == "date":
            return _local_midnight(date.fromisoformat(t), tz)
        return parse_local(t, tz).astimezone(tz)
    except ValueError:
        raise ParamError(f"not a {ptype}: {text!r} (use YYYY-MM-DD, today, monday-7d, now-6h …)") from None


def to_utc_naive(dt: datetime) -> datetime:
    return dt.astimezone(timezone.utc).replace(tzinfo=None)


def convert(value: str, ptype: str, tz: ZoneInfo, now: datetime):
    """One parameter value -> (bound value, local datetime or None)."""
    if ptype == "text":
        return value, None
    if ptype == "int":
        try:
            return int(value), None
        except ValueError:
            raise ParamError(f"not a whole number: {value!r}") from None
    if ptype == "float":
        try:
            return float(value), None
        except ValueError:
            raise ParamError(f"not a number: {value!r}") from None
    if ptype == "bool":
        v = value.strip().lower()
        if v not in _TRUE + _FALSE:
            raise ParamError(f"not yes/no: {value!r}")
        return v in _TRUE, None
    local = parse_when(value, ptype, tz, now)
    return to_utc_naive(local), local


def convert_default(param) -> None:
    """Check a declared default (at load time)."""
    convert(param.default, param.type, ZoneInfo("UTC"), utcnow())


def resolve(report, given: dict[str, str], week: str | None, tz_name: str,
            now: datetime | None = None) -> Resolved:
    """Bound values for every parameter of `report`; UsageError names the bad one."""
    tz = ZoneInfo(tz_name)
    now = now or utcnow()
    given = dict(given)
    unknown = [k for k in given if k not in report.params and k != "week"]
    if unknown:
        from tix.config import suggest

        names = ", ".join(report.params) or "(none)"
        raise UsageError(f"report {report.name} has no parameter {unknown[0]!r}"
                         f"{suggest(unknown[0], report.params)}; parameters: {names}")
    week = week or given.pop("week", None)
    if week:
        _apply_week(report, given, week)
    out = Resolved({}, {})
    for name, param in report.params.items():
        raw = given.get(name, param.default)
        try:
            value, local = convert(raw, param.type, tz, now)
        except ParamError as exc:
            raise UsageError(f"--param {name}={raw}: {exc}") from None
        out.values[name] = value
        out.shown[name] = _show(local, param.type) if local is not None else value
        if name == "since":
            out.since = local
        elif name == "until":
            out.until = local
    _derived(out, tz, now, tz_name)
    return out


def _apply_week(report, given: dict, week: str) -> None:
    if not ("since" in report.params and "until" in report.params):
        raise UsageError(f"report {report.name} has no since/until period; --week does not apply")
    try:
        monday, next_monday = parse_week(week)
    except ParamError as exc:
        raise UsageError(f"--week: {exc}") from None
    given["since"], given["until"] = monday.isoformat(), next_monday.isoformat()


def _show(local: datetime, ptype: str) -> str:
    return local.strftime("%Y-%m-%d") if ptype == "date" else local.strftime("%Y-%m-%d %H:%M")


def _derived(out: Resolved, tz: ZoneInfo, now: datetime, tz_name: str) -> None:
    out.values["now"] = to_utc_naive(now)
    out.values["tz"] = tz_name
    out.values["prev_since"] = out.values["prev_until"] = None
    if out.since is not None and out.until is not None:
        # The same length of wall-clock time just before, e.g. the previous week.
        span = out.until.replace(tzinfo=None) - out.since.replace(tzinfo=None)
        prev = (out.since.replace(tzinfo=None) - span).replace(tzinfo=tz)
        out.values["prev_since"] = to_utc_naive(prev)
        out.values["prev_until"] = to_utc_naive(out.since)
        if span == timedelta(days=7) and out.since.weekday() == 0 and out.since.time() == time(0):
            out.week = iso_week_label(out.since.date())
