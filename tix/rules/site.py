"""What rules need to know about the site: its time zone and its business hours.

The business calendar belongs to the SLA stage (`tix.sla.calendar`). This module is the
one place rules depend on it: `business_hours(config)` returns a function telling whether
a UTC instant is inside the site's default calendar, and falls back to Monday–Friday
08:00–17:00 in the site time zone while the SLA stage has no calendar to offer.
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
    """The SLA stage's default calendar as a predicate, or None when it is not available."""
    try:
        from tix.sla.calendar import load_calendars  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        calendars = load_calendars(config)
    except Exception:  # noqa: BLE001 - an invalid calendar is reported by `tix config check`
        return None
    if not calendars:
        return None
    cal = calendars.get("default") if isinstance(calendars, dict) else None
    if cal is None and isinstance(calendars, dict):
        cal = next(iter(calendars.values()))
    for method in ("is_open", "is_business_time", "contains", "inside", "is_working"):
        fn = getattr(cal, method, None)
        if callable(fn):
            return fn
    return None
