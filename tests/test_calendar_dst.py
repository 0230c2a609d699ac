"""Business-calendar spans whose boundary falls in a skipped or repeated hour (issue 18, why 10).

Europe/Berlin: on 2026-03-29 the clock jumps 02:00 CET -> 03:00 CEST (01:00 UTC); on 2026-10-25
it goes back 03:00 CEST -> 02:00 CET (01:00 UTC). A span is open while the wall clock reads a
time in it.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from tix import yamlio
from tix.sla.calendar import Calendar, parse_calendars

BERLIN = ZoneInfo("Europe/Berlin")


def calendar(*spans: str) -> Calendar:
    node = yamlio.loads("berlin:\n  timezone: Europe/Berlin\n  hours:\n"
                        f"    daily: [{', '.join(repr(s) for s in spans)}]\n  holidays: false\n", "cal.yaml")
    specs, problems = parse_calendars(node, "cal.yaml")
    assert problems == []
    return Calendar(specs["berlin"])


def utc(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def local(*args, fold: int = 0) -> float:
    return datetime(*args, tzinfo=BERLIN, fold=fold).timestamp()


@pytest.mark.parametrize("span,day,hours", [
    ("02:30-05:00", (2026, 3, 29), 2.0),  # opens at the jump (03:00 CEST), not at 03:30
    ("00:00-02:30", (2026, 3, 29), 2.0),  # closes at the jump, not half an hour after it
    ("02:30-05:00", (2026, 10, 25), 3.0),  # 02:30-03:00 CEST, then 02:30-05:00 CET
    ("00:00-02:30", (2026, 10, 25), 3.0),  # 00:00-02:30 CEST, then 02:00-02:30 CET
    ("01:00-04:00", (2026, 3, 29), 2.0),  # boundaries outside the hour: as before
    ("01:00-04:00", (2026, 10, 25), 4.0),
    ("09:00-17:00", (2026, 10, 25), 8.0),
])
def test_business_hours_of_a_span_on_a_clock_change_day(span, day, hours):
    cal = calendar(span)
    day_start, day_end = local(*day, 0, 0), local(*day, 23, 59)
    assert float(cal.between(day_start, day_end)) == pytest.approx(hours * 3600)


def test_a_span_starting_in_the_skipped_hour_opens_when_the_clock_jumps():
    cal = calendar("02:30-05:00")
    assert float(cal.add(local(2026, 3, 29, 0, 0), 60)) == pytest.approx(utc(2026, 3, 29, 1, 1))
    assert not bool(cal.is_open(utc(2026, 3, 29, 0, 59)))


def test_a_span_ending_in_the_skipped_hour_closes_when_the_clock_jumps():
    cal = calendar("00:00-02:30")
    assert float(cal.between(local(2026, 3, 29, 1, 0), utc(2026, 3, 29, 3, 0))) == pytest.approx(3600)


def test_the_repeated_hour_counts_only_where_the_span_holds_it():
    cal = calendar("02:30-05:00")
    assert bool(cal.is_open(local(2026, 10, 25, 2, 45, fold=0)))  # 02:45 CEST: open
    assert not bool(cal.is_open(local(2026, 10, 25, 2, 15, fold=1)))  # 02:15 CET: the clock reads 02:15
    assert bool(cal.is_open(local(2026, 10, 25, 2, 45, fold=1)))  # 02:45 CET: open again
    # 31 business minutes after 02:30 CEST is 02:31 CET: 30 of them before 03:00 CEST, 1 after 02:30 CET
    assert float(cal.add(local(2026, 10, 25, 2, 30, fold=0), 1860)) == pytest.approx(local(2026, 10, 25, 2, 31, fold=1))


def test_ordinary_days_are_unchanged():
    cal = calendar("08:00-12:00", "13:00-17:00")
    assert float(cal.between(local(2026, 11, 24, 0, 0), local(2026, 11, 25, 0, 0))) == pytest.approx(8 * 3600)
    assert float(cal.add(local(2026, 11, 24, 11, 30), 3600)) == pytest.approx(local(2026, 11, 24, 13, 30))
