"""Business calendars: property tests of the arithmetic, worked Indonesian examples, config errors."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tix import yamlio
from tix.durations import parse_duration
from tix.sla.calendar import Calendar, parse_calendars
from tix.sla.clock import used_and_due
from tix.sla.explain import _minus

JKT = ZoneInfo("Asia/Jakarta")

CALS = yamlio.loads("""
office:
  timezone: Asia/Jakarta
  hours:
    mon-fri: ["08:00-12:00", "13:00-17:00"]
    sat: ["09:00-13:00"]
  holidays: {country: ID, categories: [public, government]}
  dates:
    "2026-12-31": ["08:00-12:00"]
    "2026-06-19": {hours: closed, name: Company anniversary}
public_only:
  timezone: Asia/Jakarta
  hours:
    mon-fri: ["08:00-12:00", "13:00-17:00"]
  holidays: ID
night:
  timezone: Asia/Jakarta
  hours:
    mon-fri: ["22:00-24:00", "00:00-06:00"]
  holidays: false
berlin:
  timezone: Europe/Berlin
  hours:
    daily: ["01:00-04:00", "09:00-17:00"]
  holidays: {country: DE, subdivision: BE}
""", "cal.yaml")
SPECS, PROBLEMS = parse_calendars(CALS, "cal.yaml")
OFFICE = Calendar(SPECS["office"])
PUBLIC = Calendar(SPECS["public_only"])
NIGHT = Calendar(SPECS["night"])
BERLIN = Calendar(SPECS["berlin"])
ALL = [OFFICE, PUBLIC, NIGHT, BERLIN, Calendar.always("24/7", "Asia/Jakarta")]

T0 = datetime(2025, 1, 1, tzinfo=JKT).timestamp()
T1 = datetime(2028, 1, 1, tzinfo=JKT).timestamp()
starts = st.floats(min_value=T0, max_value=T1, allow_nan=False).map(lambda x: round(x, 3))
durations = st.floats(min_value=1.0, max_value=300 * 3600, allow_nan=False).map(lambda x: round(x, 3))
calendars = st.sampled_from(ALL)


def local(t: float) -> datetime:
    return datetime.fromtimestamp(float(t), JKT)


def test_fixture_calendars_are_valid():
    assert PROBLEMS == []


@settings(max_examples=300, deadline=None)
@given(cal=calendars, start=starts, seconds=durations)
def test_add_then_measure_gives_the_duration_back(cal, start, seconds):
    due = float(cal.add(start, seconds))
    assert due > start
    assert float(cal.between(start, due)) == pytest.approx(seconds, abs=1e-3)


@settings(max_examples=300, deadline=None)
@given(cal=calendars, start=starts, seconds=durations)
def test_result_falls_inside_opening_hours(cal, start, seconds):
    due = float(cal.add(start, seconds))
    assert bool(cal.is_open(due))
    # and no earlier time reaches the duration: one second before, it is not yet used up
    assert float(cal.between(start, due - 1.0)) < seconds


@settings(max_examples=200, deadline=None)
@given(cal=calendars, a=starts, gap=st.floats(min_value=0, max_value=30 * 86400), cut=st.floats(0, 1))
def test_business_time_is_additive(cal, a, gap, cut):
    b = a + gap
    m = a + gap * cut
    assert float(cal.between(a, b)) == pytest.approx(float(cal.between(a, m)) + float(cal.between(m, b)), abs=1e-3)


@settings(max_examples=200, deadline=None)
@given(cal=calendars, start=starts, seconds=durations,
       pauses=st.lists(st.tuples(st.floats(0, 20 * 86400), st.floats(60, 5 * 86400)), max_size=4))
def test_pauses_are_subtracted_exactly(cal, start, seconds, pauses):
    """used(now) equals opening time minus paused opening time; at the due time used == target."""
    ivs = sorted((start + off, start + off + length) for off, length in pauses)
    merged: list = []
    for a, b in ivs:  # a ticket's pauses never overlap
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    now = start + 40 * 86400
    owner = np.zeros(len(merged), np.int64)
    ps = np.array([p[0] for p in merged], np.float64)
    pe = np.array([p[1] for p in merged], np.float64)
    used, due = used_and_due(cal, np.array([start]), np.array([now]), np.array([seconds]), owner, ps, pe)
    brute = sum(hi - lo for a, b in cal.intervals(start, now) for lo, hi in _minus(a, b, merged))
    assert float(used[0]) == pytest.approx(brute, abs=1e-2)
    d = float(due[0])
    counted_to_due = sum(hi - lo for a, b in cal.intervals(start, d) for lo, hi in _minus(a, b, merged))
    assert counted_to_due == pytest.approx(seconds, abs=1e-2)
    assert bool(cal.is_open(d))
    assert not any(a < d < b for a, b in merged)


def test_eve_of_a_long_weekend_with_cuti_bersama():
    """Tue 17 Mar 2026 16:00, the eve of Nyepi and Idul Fitri: cuti bersama on the 18th, 20th,
    23rd and 24th, Nyepi on the 19th, Idul Fitri on Sat 21st and Sun 22nd.

    8 business hours: 1 h on the 17th, then nothing until Wed 25 Mar: 08-12 and 13-16.
    """
    start = datetime(2026, 3, 17, 16, 0, tzinfo=JKT).timestamp()
    due = local(OFFICE.add(start, 8 * 3600))
    assert due == datetime(2026, 3, 25, 16, 0, tzinfo=JKT)
    skipped = dict(OFFICE.closed_days(start, due.timestamp()))
    # Sunday 22nd (Idul Fitri, day 2) is closed anyway, so it is not listed as skipped
    assert set(skipped) == {date(2026, 3, d) for d in (18, 19, 20, 21, 23, 24)}
    assert "Day of Silence" in skipped[date(2026, 3, 18)]  # its joint holiday (cuti bersama)


def test_public_holidays_only_without_government_leave():
    """Without cuti bersama, Wed 18 Mar is a working day: due 18 Mar 16:00."""
    start = datetime(2026, 3, 17, 16, 0, tzinfo=JKT).timestamp()
    assert local(PUBLIC.add(start, 8 * 3600)) == datetime(2026, 3, 18, 16, 0, tzinfo=JKT)


def test_outside_hours_start_lunch_break_and_saturday():
    fri_evening = datetime(2026, 11, 27, 20, 0, tzinfo=JKT).timestamp()  # Friday after hours
    assert local(OFFICE.add(fri_evening, 3600)) == datetime(2026, 11, 28, 10, 0, tzinfo=JKT)  # Saturday 09-13
    assert local(OFFICE.add(fri_evening, 5 * 3600)) == datetime(2026, 11, 30, 9, 0, tzinfo=JKT)  # Monday
    before_lunch = datetime(2026, 11, 24, 11, 30, tzinfo=JKT).timestamp()
    assert local(OFFICE.add(before_lunch, 3600)) == datetime(2026, 11, 24, 13, 30, tzinfo=JKT)
    # ending exactly at closing time stays on that day (17:00), not the next morning
    assert local(OFFICE.add(datetime(2026, 11, 24, 16, 0, tzinfo=JKT).timestamp(), 3600)) == \
        datetime(2026, 11, 24, 17, 0, tzinfo=JKT)


def test_site_dates_half_day_and_company_holiday():
    new_years_eve = datetime(2026, 12, 31, 11, 0, tzinfo=JKT).timestamp()
    # half day until 12:00, then 1 Jan is a public holiday, 2 Jan a Saturday (09-13)
    assert local(OFFICE.add(new_years_eve, 2 * 3600)) == datetime(2027, 1, 2, 10, 0, tzinfo=JKT)
    days = dict(OFFICE.closed_days(new_years_eve, datetime(2027, 1, 2, 12, tzinfo=JKT).timestamp()))
    assert "08:00-12:00" in days[date(2026, 12, 31)]
    assert date(2027, 1, 1) in days
    anniversary = datetime(2026, 6, 18, 16, 0, tzinfo=JKT).timestamp()  # Thu; Fri 19 Jun is closed
    assert local(OFFICE.add(anniversary, 2 * 3600)) == datetime(2026, 6, 20, 10, 0, tzinfo=JKT)
    assert dict(OFFICE.closed_days(anniversary, anniversary + 3 * 86400))[date(2026, 6, 19)] == "Company anniversary"


def test_night_shift_spans_across_midnight():
    mon_23 = datetime(2026, 11, 23, 23, 0, tzinfo=JKT).timestamp()
    assert local(NIGHT.add(mon_23, 3 * 3600)) == datetime(2026, 11, 24, 2, 0, tzinfo=JKT)
    assert len(NIGHT.intervals(mon_23, mon_23 + 3 * 3600)) == 1  # one interval across midnight


def test_daylight_saving_change_counts_real_seconds():
    """Berlin, 29 Mar 2026: clocks jump 02:00 -> 03:00, so 01:00-04:00 holds 2 real hours."""
    berlin = ZoneInfo("Europe/Berlin")
    a = datetime(2026, 3, 29, 0, 0, tzinfo=berlin).timestamp()
    b = datetime(2026, 3, 29, 5, 0, tzinfo=berlin).timestamp()
    assert float(BERLIN.between(a, b)) == pytest.approx(2 * 3600)
    a2 = datetime(2026, 10, 25, 0, 0, tzinfo=berlin).timestamp()  # 03:00 -> 02:00: 4 real hours
    b2 = datetime(2026, 10, 25, 5, 0, tzinfo=berlin).timestamp()
    assert float(BERLIN.between(a2, b2)) == pytest.approx(4 * 3600)


def test_vectorised_over_many_tickets_matches_one_by_one():
    rng = np.random.default_rng(7)
    starts_ = rng.uniform(T0, T1, 2000)
    secs = rng.uniform(60, 100 * 3600, 2000)
    many = OFFICE.add(starts_, secs)
    for i in range(0, 2000, 97):
        assert float(OFFICE.add(starts_[i], secs[i])) == many[i]


@pytest.mark.parametrize("text,seconds", [("1h", 3600), ("30m", 1800), ("1h30m", 5400), ("8h", 28800),
                                          ("2d", 172800), ("90s", 90)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "8", "soon", "-1h", "1x", "h"])
def test_not_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_calendar_problems_have_file_and_line():
    node = yamlio.loads("""calendars:
  a:
    timezone: Mars/Olympus
    hours:
      mon: ["10:00-09:00", "08:00-12:00", "11:00-13:00"]
      funday: ["08:00-09:00"]
  b:
    hours: {tue: ["08:00-12:00"]}
    dates:
      "2026-13-01": closed
""", "tix.yaml")
    _specs, problems = parse_calendars(node["calendars"], "tix.yaml")
    text = [str(p) for p in problems]
    assert "tix.yaml:3: calendar 'a': unknown time zone 'Mars/Olympus' (use an IANA name such as Asia/Jakarta)" in text
    assert any(t.startswith("tix.yaml:5: calendar 'a': inverted span '10:00-09:00'") for t in text)
    assert any(t.startswith("tix.yaml:4: calendar 'a': overlapping spans on mon: 08:00-12:00 and 11:00-13:00")
               for t in text)
    assert any(t.startswith("tix.yaml:6: calendar 'a': unknown day 'funday'") for t in text)
    assert any(t.startswith("tix.yaml:10: calendar 'b': not a date '2026-13-01'") for t in text)


def test_grows_its_range_on_demand():
    cal = Calendar(SPECS["office"])
    start = datetime(2031, 12, 30, 9, tzinfo=JKT).timestamp()
    due = local(cal.add(start, 2000 * 3600))  # far beyond the first unrolled years
    assert due.year >= 2032
    assert float(cal.between(start, due.timestamp())) == pytest.approx(2000 * 3600, abs=1e-3)
    assert timedelta(0) < due - local(start)


def test_single_time_answers_match_the_vectorised_ones_without_numpy():
    """Issue 16: `tix route` asks the business hours one message at a time; those answers come
    from bisecting Python lists, so the rules never import numpy (0.25 s of every cron run).
    They must agree with the vectorised arithmetic, across a DST change and holidays."""
    import subprocess
    import sys

    rng = np.random.default_rng(11)
    for cal in ALL:
        cal.ensure(T0, T1)
        ts = rng.uniform(T0, T1, 400)
        k = len(cal.opens) // 2  # on an interval's bounds, and just outside them
        ts[:4] = [cal.opens[k], cal.closes[k], cal.opens[k] - 1e-3, cal.closes[k] + 1e-3]
        vector = cal.is_open(ts)
        assert [cal.is_open_at(float(t)) for t in ts] == [bool(v) for v in vector]
        a, b = float(ts[5]), float(ts[5]) + 9 * 86400
        spans = cal.intervals(a, b)
        assert sum(hi - lo for lo, hi in spans) == pytest.approx(float(cal.between(a, b)), abs=1e-6)
    code = """
import sys
from zoneinfo import ZoneInfo
from datetime import datetime
from tix import yamlio
from tix.sla.calendar import Calendar, parse_calendars
specs, _ = parse_calendars(yamlio.loads(sys.argv[1], "c.yaml"), "c.yaml")
cal = Calendar(specs["night"])
t = datetime(2026, 12, 2, 23, 30, tzinfo=ZoneInfo("Asia/Jakarta")).timestamp()
print(cal.is_open_at(t), cal.is_open_at(t + 7 * 3600), len(cal.intervals(t, t + 86400)), "numpy" in sys.modules)
"""
    night = ("night:\n  timezone: Asia/Jakarta\n  hours:\n    mon-fri: ['22:00-24:00', '00:00-06:00']\n"
             "  holidays: false\n")
    out = subprocess.run([sys.executable, "-c", code, night], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "2", "False"]


@settings(max_examples=200, deadline=None)
@given(owners=st.lists(st.integers(0, 6), max_size=30), starts=st.lists(st.sampled_from([0.0, 1.0, 2.5, 7.0]),
                                                                        min_size=30, max_size=30),
       shuffle=st.booleans())
def test_pause_order_is_lexsort_by_clock_then_start(owners, starts, shuffle):
    """Issue 16: pauses come nearly sorted; the stable sort by clock that replaces lexsort for
    them gives lexsort's order, and lexsort's own when they come in any other order."""
    from tix.sla.clock import _pause_order

    owner = np.array(owners, np.int64)
    start = np.array(starts[:len(owners)], np.float64)
    if not shuffle:  # as the fold writes them: by clock, then time
        o = np.lexsort((start, owner))
        owner, start = owner[o], start[o]
    assert _pause_order(owner, start).tolist() == np.lexsort((start, owner)).tolist()
