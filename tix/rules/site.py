"""What rules need to know about the site: its time zone and its business hours.

The business calendar belongs to the SLA stage (`tix.sla.calendar`, `calendars:` in
tix.yaml). This module is the one place rules depend on it. Which calendar is "business
hours" (the `business_hours` condition, the `business_hours`, `opening_hours` and `next_open`
of auto-reply templates) is decided by `choose_calendar`, in this order:

1. the calendar named by the setting `business_calendar` (`settings: business_calendar: office`);
2. else the calendar named `default`;
3. else the only calendar declared;
4. else the first declared calendar that is not open around the clock (so that an `always`
   24/7 calendar for urgent SLAs, declared first, is never taken for office hours); with
   several calendars and no setting, `tix config check` asks to name one;
5. with no calendar declared, Monday to Friday 08:00-17:00 in the site time zone.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from tix.config import Config
from tix.errors import Problem
from tix.store.log import utcnow

DEFAULT_DAYS = (0, 1, 2, 3, 4)
DEFAULT_OPEN, DEFAULT_CLOSE = 8 * 3600, 17 * 3600
BUILT_IN = "built-in (Mon-Fri 08:00-17:00)"


class Site:
    def __init__(self, config: Config):
        self.config = config
        self.tz = ZoneInfo(config.setting("timezone"))
        self._hours: BusinessHours | None = None

    @property
    def hours(self) -> BusinessHours:
        if self._hours is None:
            self._hours = business_hours(self.config)
        return self._hours

    def in_business_hours(self, when: datetime) -> bool:
        return self.hours.is_open(when)


@dataclass
class BusinessHours:
    """The calendar of business hours, how it was chosen, and what templates say about it."""

    name: str
    reason: str
    calendar: object  # tix.sla.calendar.Calendar

    def is_open(self, when: datetime) -> bool:
        return self.calendar.is_open_at(when.timestamp())

    def describe(self, locale: str, when: datetime | None = None) -> str:
        """`Senin-Jumat 08.00-12.00, 13.00-17.00; Sabtu 09.00-13.00 WIB` (or in English)."""
        from babel.dates import get_day_names

        week = self.calendar.spec.week
        names = get_day_names("abbreviated" if locale == "en" else "wide", locale=_babel(locale))
        sep = ":" if locale == "en" else "."
        parts, day = [], 0
        while day < 7:
            end = day
            while end + 1 < 7 and week[end + 1] == week[day]:
                end += 1
            if week[day]:
                days = names[day] if end == day else f"{names[day]}-{names[end]}"
                parts.append(f"{days} {', '.join(_span(s, sep) for s in week[day])}")
            day = end + 1
        zone = (when or utcnow()).astimezone(self.calendar.tz).strftime("%Z")
        return "; ".join(parts) + f" {zone}" if parts else ""

    def next_open(self, when: datetime) -> datetime | None:
        """When business hours next begin after `when` (local time), None when open now or not within 60 days."""
        t = when.timestamp()
        if self.is_open(when):
            return None
        spans = self.calendar.intervals(t, t + 60 * 86400)
        return datetime.fromtimestamp(spans[0][0], self.calendar.tz) if spans else None


def _babel(locale: str) -> str:
    return "id" if locale == "id" else "en"


def _span(span: tuple[int, int], sep: str) -> str:
    a, b = span
    return f"{a // 3600:02d}{sep}{a % 3600 // 60:02d}-{b // 3600:02d}{sep}{b % 3600 // 60:02d}"


def choose_calendar(config: Config):
    """(name, CalendarSpec or None for the built-in hours, reason, problems) per the module docstring."""
    from tix.sla.calendar import parse_calendars

    node = config.section("calendars")
    wanted = str(config.settings.get("business_calendar") or "")
    specs, problems = ({}, []) if not node else parse_calendars(node, str(config.path), config.setting("timezone"))
    if wanted and wanted in specs:
        return wanted, specs[wanted], "settings: business_calendar", problems
    if "default" in specs:
        return "default", specs["default"], "the calendar named default", problems
    if len(specs) == 1:
        name = next(iter(specs))
        return name, specs[name], "the only calendar", problems
    if specs:
        office = [n for n, s in specs.items() if not _around_the_clock(s)] or list(specs)
        return office[0], specs[office[0]], "the first calendar not open around the clock", problems
    return BUILT_IN, None, "no calendar is declared", problems


def _around_the_clock(spec) -> bool:
    return all(day == [(0, 86400)] for day in spec.week)


def business_hours(config: Config) -> BusinessHours:
    """The site's business hours (see the module docstring for which calendar)."""
    from tix.sla.calendar import Calendar, CalendarSpec

    name, spec, reason, _problems = choose_calendar(config)
    if spec is None:
        week = [[(DEFAULT_OPEN, DEFAULT_CLOSE)] if d in DEFAULT_DAYS else [] for d in range(7)]
        spec = CalendarSpec(BUILT_IN, config.setting("timezone"), week, None)
    return BusinessHours(name, reason, Calendar(spec))


def check(config: Config) -> list[Problem]:
    """`tix config check`: the business calendar is named when the choice is not obvious."""
    node = config.section("calendars")
    wanted = str(config.settings.get("business_calendar") or "")
    fname, line = str(config.path), config.line_of("settings", "business_calendar")
    names = list(node) if isinstance(node, dict) else []
    if wanted and wanted not in names:
        from tix.config import suggest

        shown = ", ".join(map(str, names)) or "none declared"
        return [Problem(fname, line, f"setting business_calendar: unknown calendar {wanted!r}{suggest(wanted, names)}; "
                                     f"calendars: {shown}")]
    if not wanted and len(names) > 1 and "default" not in names:
        name, _spec, _reason, _problems = choose_calendar(config)
        return [Problem(fname, config.line_of("calendars"),
                        f"several calendars and no settings: business_calendar; the business_hours of rules and "
                        f"auto-replies would use {name!r} (the first not open around the clock): name it, "
                        f"e.g. business_calendar: {name}")]
    return []


def hours_context(site: Site, arrived: datetime, locale: str) -> dict:
    """What templates get about business hours: `opening_hours` and `next_open`, in both languages."""
    hours = site.hours
    nxt = hours.next_open(arrived)
    return {"opening_hours": {loc: hours.describe(loc, arrived) for loc in ("id", "en")},
            "next_open": {loc: _when(nxt, loc) if nxt else "" for loc in ("id", "en")},
            "locale": locale}


def _when(dt: datetime, locale: str) -> str:
    from babel.dates import format_date

    day = format_date(dt.date(), "EEEE d MMMM", locale=_babel(locale))
    sep = "." if locale == "id" else ":"
    return f"{day} {dt:%H}{sep}{dt:%M} {dt:%Z}"

