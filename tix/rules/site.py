"""What rules need to know about the site: its time zone and its business hours.

The business calendar belongs to the SLA stage (`tix.sla.calendar`, `calendars:` in
tix.yaml). This module is the one place rules depend on it: `business_hours(config)`
returns a function telling whether a UTC instant is inside the calendar named `default`
(else the first one declared), public holidays included, and falls back to Monday–Friday
08:00–17:00 in the site time zone when tix.yaml declares no calendar.
"""
from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from tix.config import Config

DEFAULT_DAYS = (0, 1, 2, 3, 4)
DEFAULT_OPEN, DEFAULT_CLOSE = time(8, 0), time(17, 0)


class Site:
    def __init__(self, config: Config):
        self.config = config
        self.tz = ZoneInfo(config.setting("timezone"))
        self._inside = None

    def in_business_hours(self, when: datetime) -> bool:
        if self._inside is None:
            self._inside = business_hours(self.config)
        return self._inside(when)


def business_hours(config: Config):
    """`inside(dt_utc) -> bool` for the site's default business calendar."""
    tz = ZoneInfo(config.setting("timezone"))
    calendar = _sla_calendar(config)
    if calendar is not None:
        return calendar

    def inside(when: datetime) -> bool:
        local = when.astimezone(tz)
        return local.weekday() in DEFAULT_DAYS and DEFAULT_OPEN <= local.time() < DEFAULT_CLOSE
    return inside


def _sla_calendar(config: Config):
    """The SLA stage's calendar as a predicate, or None when tix.yaml declares none.

    The calendar named `default`, else the first one under `calendars:` (with its public
    holidays). An invalid section is reported by `tix config check`, not here.
    """
    node = config.section("calendars")
    if not node:
        return None
    try:
        from tix.sla.calendar import Calendar, parse_calendars
    except ImportError:  # pragma: no cover - the SLA stage is part of tix
        return None
    specs, problems = parse_calendars(node, str(config.path), config.setting("timezone"))
    if problems or not specs:
        return None
    calendar = Calendar(specs.get("default") or next(iter(specs.values())))

    def inside(when: datetime) -> bool:
        return bool(calendar.is_open([when.timestamp()])[0])
    return inside
