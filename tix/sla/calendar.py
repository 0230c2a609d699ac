"""Business calendars: when the SLA clock runs, and business-time arithmetic over many tickets.

A calendar is a time zone, opening hours per weekday (several spans a day, e.g. a lunch
break), public holidays from the `holidays` package (country + subdivision, default
Indonesia) and the site's own dates (company holidays: closed; half days: other spans)::

    calendars:
      office:
        timezone: Asia/Jakarta
        hours:
          mon-fri: ["08:00-12:00", "13:00-17:00"]
          sat: ["09:00-13:00"]
        holidays: {country: ID, categories: [public, government]}
        dates:
          "2026-12-31": "08:00-12:00"     # half day
          "2026-05-15": closed            # company outing
      always:
        hours: 24/7
        holidays: false

How the arithmetic works (and why it is fast): the calendar is unrolled once into a sorted
array of opening intervals in UTC epoch seconds, `opens[i] .. closes[i]`, with `cum[i]`, the
business seconds before interval i. Then `C(t)`, business seconds from the start of the
unrolled range to `t`, is one binary search, and its inverse too. Business time between a
and b is `C(b) - C(a)`; adding d business seconds to t is `Cinv(C(t) + d)`. Both are
numpy-vectorised, so 100k tickets cost two `searchsorted` calls, never a walk over a year of
calendar per ticket. Local spans are converted with zoneinfo day by day, so daylight-saving
changes (in zones that have them) are exact; adjacent spans (Mon 22:00-24:00 and Tue
00:00-06:00) merge into one interval that crosses midnight.

A span is open while the wall clock reads a time in it (`_span_utc`). On a day whose clock
jumps forward (Europe/Berlin, 2026-03-29: 02:00 -> 03:00) a boundary in the skipped hour
falls on the jump itself: `02:30-05:00` opens at 03:00 CEST. On a day whose clock goes back
(2026-10-25: 03:00 CEST -> 02:00 CET) the repeated times count twice where the span holds
them and not where it does not: `02:30-05:00` is open 02:30-03:00 CEST, closed while the
clock shows 02:00-02:30 again, and open from 02:30 CET on (3 real hours, not 3.5).
"""
from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tix.config import check_keys
from tix.errors import Problem

if TYPE_CHECKING:
    import numpy as np

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
DEFAULT_HOLIDAYS = {"country": "ID"}
CALENDAR_KEYS = ("timezone", "hours", "holidays", "dates", "description")


# -- parsing -----------------------------------------------------------------------------------
def parse_span(text: str) -> tuple[int, int]:
    """`08:00-12:00` -> (28800, 43200) seconds of the day; `24:00` allowed as an end."""
    m = _SPAN.match(str(text))
    if not m:
        raise ValueError(f"not a time span {text!r} (use HH:MM-HH:MM, e.g. 08:00-12:00)")
    h1, m1, h2, m2 = map(int, m.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"not a time of day in {text!r}")
    start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
    if end <= start:
        raise ValueError(f"inverted span {text!r}: the end must be after the start "
                         "(split a span across midnight into 22:00-24:00 and 00:00-06:00 of the next day)")
    return start, end


def _day_keys(key: str) -> list[int]:
    """`mon` -> [0]; `mon-fri` -> [0..4]; `sat,sun` -> [5, 6]; `daily` -> all."""
    k = str(key).strip().lower()
    if k in ("daily", "everyday", "all"):
        return list(range(7))
    if k == "weekdays":
        return list(range(5))
    out: list[int] = []
    for part in k.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-", 1)
            if a not in DAYS or b not in DAYS:
                raise ValueError(f"unknown day range {key!r} (use mon..sun, e.g. mon-fri)")
            ia, ib = DAYS.index(a), DAYS.index(b)
            if ib < ia:
                raise ValueError(f"day range {key!r} runs backwards")
            out += range(ia, ib + 1)
        elif part in DAYS:
            out.append(DAYS.index(part))
        else:
            raise ValueError(f"unknown day {part!r} (use mon, tue, wed, thu, fri, sat, sun)")
    return out


def _spans(value) -> list[tuple[int, int]]:
    if value in (None, False, "closed", "off", []):
        return []
    if isinstance(value, str):
        value = [v for v in value.split(",")]
    if not isinstance(value, list):
        raise ValueError(f"hours must be a list of spans like [\"08:00-12:00\"], got {value!r}")
    return [parse_span(v) for v in value]


def _spans_checked(cal: str, value, fname, line, problems) -> list[tuple[int, int]]:
    """Like `_spans`, but each bad span becomes a problem on its own line; the good ones are kept."""
    if isinstance(value, list):
        out = []
        item_lines = getattr(value, "lines", [])
        for i, item in enumerate(value):
            try:
                out.append(parse_span(item))
            except ValueError as exc:
                where = item_lines[i] if i < len(item_lines) else line
                problems.append(Problem(fname, where, f"calendar {cal!r}: {exc}"))
        return out
    try:
        return _spans(value)
    except ValueError as exc:
        problems.append(Problem(fname, line, f"calendar {cal!r}: {exc}"))
        return []


def _overlap(spans: list[tuple[int, int]]) -> tuple | None:
    s = sorted(spans)
    for a, b in zip(s, s[1:], strict=False):
        if b[0] < a[1]:
            return a, b
    return None


def _fmt_span(span: tuple[int, int]) -> str:
    return f"{span[0] // 3600:02d}:{span[0] % 3600 // 60:02d}-{span[1] // 3600:02d}:{span[1] % 3600 // 60:02d}"


@dataclass
class CalendarSpec:
    name: str
    timezone: str = "Asia/Jakarta"
    week: list = field(default_factory=lambda: [[] for _ in range(7)])  # per weekday: [(start, end)]
    holidays: dict | None = field(default_factory=lambda: dict(DEFAULT_HOLIDAYS))
    dates: dict = field(default_factory=dict)  # date -> [(start, end)] ([] = closed)
    locale: str | None = None  # language of holiday names, when the holidays package has it
    date_names: dict = field(default_factory=dict)


def parse_calendar(name: str, node, fname: str, default_tz: str = "Asia/Jakarta",
                   problems: list[Problem] | None = None, locale: str | None = None) -> CalendarSpec:
    """One `calendars:` entry -> CalendarSpec, appending every problem found (file:line)."""
    problems = problems if problems is not None else []
    spec = CalendarSpec(str(name), default_tz, locale=locale)
    line = getattr(node, "line", None)
    if not isinstance(node, dict):
        problems.append(Problem(fname, line, f"calendar {name!r} must be a mapping (timezone, hours, holidays, dates)"))
        return spec
    lines = getattr(node, "lines", {})
    problems += check_keys(node, CALENDAR_KEYS, fname, f"calendar {name!r}", listing="keys")
    tz = str(node.get("timezone") or default_tz)
    try:
        ZoneInfo(tz)
        spec.timezone = tz
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(Problem(fname, lines.get("timezone", line),
                                f"calendar {name!r}: unknown time zone {tz!r} (use an IANA name such as Asia/Jakarta)"))
    _parse_hours(spec, node.get("hours"), fname, lines.get("hours", line), problems)
    _parse_holidays(spec, node.get("holidays", DEFAULT_HOLIDAYS), fname, lines.get("holidays", line), problems)
    _parse_dates(spec, node.get("dates") or {}, fname, lines.get("dates", line), problems)
    if not any(spec.week) and not any(spec.dates.values()):
        problems.append(Problem(fname, lines.get("hours", line), f"calendar {name!r} has no opening hours"))
    return spec


def _parse_hours(spec, hours, fname, line, problems) -> None:
    if hours is None:
        problems.append(Problem(fname, line, f"calendar {spec.name!r}: `hours` is required "
                                             f"(e.g. mon-fri: [\"08:00-17:00\"], or 24/7)"))
        return
    if isinstance(hours, str) and hours.replace(" ", "") in ("24/7", "always"):
        spec.week = [[(0, 86400)] for _ in range(7)]
        return
    if not isinstance(hours, dict):
        problems.append(Problem(fname, line,
                                f"calendar {spec.name!r}: hours must be 24/7 or a mapping of days to spans"))
        return
    week: list[list] = [[] for _ in range(7)]
    for key, value in hours.items():
        kline = hours.line_of(key) if hasattr(hours, "line_of") else line
        try:
            days = _day_keys(key)
        except ValueError as exc:
            problems.append(Problem(fname, kline, f"calendar {spec.name!r}: {exc}"))
            continue
        spans = _spans_checked(spec.name, value, fname, kline, problems)
        for d in days:
            week[d] += spans
    for d, spans in enumerate(week):
        clash = _overlap(spans)
        if clash:
            problems.append(Problem(fname, line, f"calendar {spec.name!r}: overlapping spans on {DAYS[d]}: "
                                                 f"{_fmt_span(clash[0])} and {_fmt_span(clash[1])}"))
        week[d] = sorted(spans)
    spec.week = week


def _parse_holidays(spec, value, fname, line, problems) -> None:
    if value in (False, None, "none", "off"):
        spec.holidays = None
        return
    if isinstance(value, str):
        value = {"country": value}
    if not isinstance(value, dict):
        problems.append(Problem(fname, line, f"calendar {spec.name!r}: holidays must be false, a country code "
                                             "or {country, subdivision, categories}"))
        return
    import holidays as hol

    country = str(value.get("country") or "ID").upper()
    subdiv = value.get("subdivision") or value.get("subdiv")
    cats = value.get("categories")
    try:
        hol.country_holidays(country, subdiv=subdiv, years=[2026],
                             categories=tuple(cats) if cats else None)
    except NotImplementedError:
        problems.append(Problem(fname, line, f"calendar {spec.name!r}: holidays: unknown country {country!r}"))
        return
    except (ValueError, TypeError, KeyError) as exc:
        problems.append(Problem(fname, line, f"calendar {spec.name!r}: holidays: {exc}"))
        return
    spec.holidays = {"country": country, "subdivision": subdiv, "categories": tuple(cats) if cats else None,
                     "language": value.get("language") or _language(hol, country, spec.locale)}


def _language(hol, country: str, locale: str | None) -> str | None:
    """Holiday names in the site's language (`settings.locale`) when the package has it."""
    if not locale:
        return None
    langs = getattr(getattr(hol, country, None), "supported_languages", ()) or ()
    return locale if locale in langs else None


def _parse_dates(spec, dates, fname, line, problems) -> None:
    if not isinstance(dates, dict):
        problems.append(Problem(fname, line, f"calendar {spec.name!r}: dates must map YYYY-MM-DD to closed or spans"))
        return
    for key, value in dates.items():
        kline = dates.line_of(key) if hasattr(dates, "line_of") else line
        try:
            day = key if isinstance(key, date) else date.fromisoformat(str(key))
        except ValueError:
            problems.append(Problem(fname, kline, f"calendar {spec.name!r}: not a date {key!r} (use YYYY-MM-DD)"))
            continue
        label = None
        if isinstance(value, dict):
            label = value.get("name")
            value = value.get("hours", "closed")
        try:
            spans = sorted(_spans(value))
        except ValueError as exc:
            problems.append(Problem(fname, kline, f"calendar {spec.name!r}: {day}: {exc}"))
            continue
        clash = _overlap(spans)
        if clash:
            problems.append(Problem(fname, kline, f"calendar {spec.name!r}: overlapping spans on {day}: "
                                                  f"{_fmt_span(clash[0])} and {_fmt_span(clash[1])}"))
        spec.dates[day] = spans
        spec.date_names[day] = label or ("site holiday" if not spans else "site hours")


def parse_calendars(node, fname: str, default_tz: str = "Asia/Jakarta",
                    locale: str | None = None) -> tuple[dict, list[Problem]]:
    problems: list[Problem] = []
    out: dict[str, CalendarSpec] = {}
    if node is None:
        return out, problems
    if not isinstance(node, dict):
        return out, [Problem(fname, getattr(node, "line", None), "calendars must be a mapping of name to calendar")]
    for name, spec in node.items():
        out[str(name)] = parse_calendar(name, spec, fname, default_tz, problems, locale)
    return out, problems


def validate_section(node, path) -> list[Problem]:
    """`calendars:` validator for `tix config check` (see tix.config.SECTION_VALIDATORS)."""
    return parse_calendars(node, str(path))[1]


# -- local spans to UTC ------------------------------------------------------------------------
def _span_utc(tz, start: datetime, end: datetime) -> list[tuple[float, float]]:
    """The UTC intervals (epoch seconds) in which the wall clock of `tz` reads a time in
    [start, end) (naive local times): one interval, except around a clock set back.

    Where the UTC offset is the same all through, that is start..end at that offset. Across
    a change, each offset the span touches contributes start..end at that offset, cut to
    the instants that offset is actually in force (before or after the change).
    """
    offsets = {dt.replace(tzinfo=tz, fold=f).utcoffset() for dt in (start, end) for f in (0, 1)}
    if len(offsets) == 1:
        off = offsets.pop().total_seconds()
        return [(_naive_epoch(start) - off, _naive_epoch(end) - off)]
    out = []
    for off in offsets:
        secs = off.total_seconds()
        a, b = _naive_epoch(start) - secs, _naive_epoch(end) - secs
        in_a, in_b = _offset_at(tz, a) == off, _offset_at(tz, b - 1e-6) == off
        if in_a and in_b:
            out.append((a, b))
        elif in_a:
            out.append((a, _change_between(tz, a, b)))
        elif in_b:
            out.append((_change_between(tz, a, b), b))
    return sorted((a, b) for a, b in out if b > a)


def _naive_epoch(dt: datetime) -> float:
    return dt.replace(tzinfo=timezone.utc).timestamp()


def _offset_at(tz, t: float):
    return datetime.fromtimestamp(t, timezone.utc).astimezone(tz).utcoffset()


def _change_between(tz, a: float, b: float) -> float:
    """The instant in (a, b] at which `tz`'s offset changes (one change: bisect to the second)."""
    first = _offset_at(tz, a)
    lo, hi = int(a), int(b) + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset_at(tz, mid) == first:
            lo = mid
        else:
            hi = mid
    return float(hi)


# -- the unrolled calendar ---------------------------------------------------------------------
class Calendar:
    """A calendar unrolled into UTC opening intervals over a range of years (grown on demand).

    The intervals are kept as two Python lists (`_opens`, `_closes`): what one question about
    one time needs (`is_open_at`, `intervals`, which the rules ask per message) is a bisect on
    them. The numpy arrays of the vectorised arithmetic (`opens`, `closes`, `cum`, `cum_end`)
    are built from the lists on first use, so a command that only asks about single times
    (`tix route`) never imports numpy (0.25 s of a cron run).
    """

    def __init__(self, spec: CalendarSpec):
        self.spec = spec
        self.name = spec.name
        self.tz = ZoneInfo(spec.timezone)
        self.years: tuple[int, int] | None = None
        self._opens: list[float] = []
        self._closes: list[float] = []
        self._arrays: tuple | None = None
        self._holiday_cache: dict[int, dict] = {}

    def _np(self) -> tuple:
        """(opens, closes, cum, cum_end) as numpy arrays, built once per unrolled range."""
        if self._arrays is None:
            import numpy as np

            opens = np.array(self._opens, dtype=np.float64)
            closes = np.array(self._closes, dtype=np.float64)
            lens = closes - opens
            cum_end = np.cumsum(lens)
            self._arrays = (opens, closes, cum_end - lens, cum_end)
        return self._arrays

    opens = property(lambda self: self._np()[0])  # interval i opens (epoch seconds)
    closes = property(lambda self: self._np()[1])  # and closes
    cum = property(lambda self: self._np()[2])  # business seconds before interval i
    cum_end = property(lambda self: self._np()[3])  # and up to its end

    @classmethod
    def always(cls, name: str = "24/7", tz: str = "UTC") -> "Calendar":
        return cls(CalendarSpec(name, tz, [[(0, 86400)] for _ in range(7)], None))

    # -- days ------------------------------------------------------------------------------
    def holidays_of(self, year: int) -> dict:
        if self.spec.holidays is None:
            return {}
        if year not in self._holiday_cache:
            import holidays as hol

            h = self.spec.holidays
            kw = {}
            if h.get("categories"):
                kw["categories"] = h["categories"]
            if h.get("language"):
                kw["language"] = h["language"]
            self._holiday_cache[year] = dict(hol.country_holidays(h["country"], subdiv=h.get("subdivision"),
                                                                  years=[year], **kw))
        return self._holiday_cache[year]

    def day(self, d: date) -> tuple[list[tuple[int, int]], str | None]:
        """(spans, why) for a local date: site dates first, then public holidays, then the week."""
        if d in self.spec.dates:
            return self.spec.dates[d], self.spec.date_names.get(d)
        name = self.holidays_of(d.year).get(d)
        if name:
            return [], name
        return self.spec.week[d.weekday()], None

    def _unroll(self, y0: int, y1: int) -> None:
        ivs: list[list[float]] = []
        d, end = date(y0, 1, 1), date(y1 + 1, 1, 1)
        one = timedelta(days=1)
        tz = self.tz
        while d < end:
            spans, _why = self.day(d)
            if spans:
                base = datetime(d.year, d.month, d.day)
                for s, e in spans:
                    for a, b in _span_utc(tz, base + timedelta(seconds=s), base + timedelta(seconds=e)):
                        if ivs and a <= ivs[-1][1]:  # adjacent or overlapping -> merge
                            ivs[-1][1] = max(ivs[-1][1], b)
                        else:
                            ivs.append([a, b])
            d += one
        self._opens = [float(a) for a, _b in ivs]
        self._closes = [float(b) for _a, b in ivs]
        self._arrays = None
        self.years = (y0, y1)

    def ensure(self, t_min: float, t_max: float) -> None:
        """Make the unrolled range cover [t_min, t_max] (epoch seconds) with margin."""
        y_lo = datetime.fromtimestamp(t_min, timezone.utc).year - 1
        y_hi = datetime.fromtimestamp(t_max, timezone.utc).year + 1
        if self.years and self.years[0] <= y_lo and self.years[1] >= y_hi:
            return
        if self.years:
            y_lo, y_hi = min(y_lo, self.years[0]), max(y_hi, self.years[1])
        self._unroll(y_lo, y_hi)
        if not self._opens:
            raise ValueError(f"calendar {self.name!r} has no opening hours between {y_lo} and {y_hi}")

    # -- arithmetic (vectorised; arguments are epoch seconds, scalars or arrays) -----------------
    def C(self, t):
        """Business seconds from the start of the unrolled range to t."""
        import numpy as np

        t = np.asarray(t, dtype=np.float64)
        if t.size == 0:
            return t.copy()
        self.ensure(float(t.min()), float(t.max()))
        i = np.searchsorted(self.opens, t, side="right") - 1
        before = i < 0
        i = np.maximum(i, 0)
        c = self.cum[i] + np.clip(t - self.opens[i], 0.0, self.closes[i] - self.opens[i])
        return np.where(before, 0.0, c)

    def Cinv(self, x):
        """The earliest time at which C reaches x (inside or at the end of an opening interval)."""
        import numpy as np

        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            return x.copy()
        while float(x.max()) > float(self.cum_end[-1]):
            self._unroll(self.years[0], self.years[1] + 2)
        j = np.searchsorted(self.cum_end, x, side="left")
        j = np.minimum(j, len(self.opens) - 1)
        return self.opens[j] + (x - self.cum[j])

    def between(self, a, b):
        """Business seconds in [a, b] (0 where b <= a)."""
        import numpy as np

        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.size == 0:
            return a.copy()
        self.ensure(float(min(a.min(), b.min())), float(max(a.max(), b.max())))
        return np.maximum(self.C(b) - self.C(a), 0.0)

    def add(self, t, seconds):
        """The time `seconds` business seconds after t (t itself where seconds <= 0)."""
        import numpy as np

        t = np.asarray(t, dtype=np.float64)
        s = np.asarray(seconds, dtype=np.float64)
        if t.size == 0:
            return t.copy()
        self.ensure(float(t.min()), float(t.max()))
        out = self.Cinv(self.C(t) + np.maximum(s, 0.0))
        return np.where(s > 0, out, t)

    def is_open(self, t) -> np.ndarray:
        import numpy as np

        t = np.asarray(t, dtype=np.float64)
        self.ensure(float(t.min()), float(t.max()))
        i = np.maximum(np.searchsorted(self.opens, t, side="right") - 1, 0)
        return (t >= self.opens[i]) & (t <= self.closes[i])

    def is_open_at(self, t: float) -> bool:
        """`is_open` for one time (epoch seconds), without building arrays: the rules ask it
        once per message (a fifth of the time of `is_open([t])`)."""
        self.ensure(t, t)
        i = max(bisect_right(self._opens, t) - 1, 0)
        return self._opens[i] <= t <= self._closes[i]

    # -- explanation ---------------------------------------------------------------------------
    def intervals(self, a: float, b: float) -> list[tuple[float, float]]:
        """Opening intervals clipped to [a, b]."""
        if b <= a:
            return []
        self.ensure(a, b)
        i0 = max(bisect_right(self._opens, a) - 1, 0)
        i1 = bisect_left(self._opens, b)
        out = []
        for i in range(i0, i1):
            lo, hi = max(a, self._opens[i]), min(b, self._closes[i])
            if hi > lo:
                out.append((float(lo), float(hi)))
        return out

    def closed_days(self, a: float, b: float) -> list[tuple[date, str]]:
        """Local dates in [a, b] skipped as holidays or site dates, with their names."""
        if b <= a:
            return []
        d = datetime.fromtimestamp(a, self.tz).date()
        last = datetime.fromtimestamp(b, self.tz).date()
        out = []
        while d <= last:
            spans, why = self.day(d)
            if why and spans != self.spec.week[d.weekday()]:
                out.append((d, why + ("" if not spans else f" ({', '.join(map(_fmt_span, spans))})")))
            d += timedelta(days=1)
        return out
