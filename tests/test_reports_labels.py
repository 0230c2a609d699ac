"""Report numbers and short dates are formatted without Babel (issue 16: loading it costs
15-25 ms a report); what they print must be exactly what Babel prints."""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from babel.dates import format_date, format_datetime, get_month_names
from babel.numbers import format_decimal, format_percent

from tix.reports import labels
from tix.reports.labels import Labels, format_number, format_stamp

# every pattern tix.reports.labels formats numbers with
PATTERNS = ["#,##0.###", "#,##0.0", "#,##0.0#", "0.00", "0.0", "+#,##0.0;-#,##0.0", "+#,##0.#;-#,##0.#"]
PERCENTS = ["#,##0.0%", "+#,##0.0%;-#,##0.0%"]


def _values():
    rng = random.Random(16)
    fixed = [0, -0.0, 0.0, 1, -1, 7, 999, 1000, -1000, 12345, 999_999, 1_000_000, -98_558, 10 ** 12,
             0.05, 0.15, 0.25, 0.35, 0.45, 1.05, 2.675, -2.5, 0.004, 0.005, -0.04, 0.95, 1234.5678,
             Decimal("2.5"), Decimal("-0.05"), Decimal("123456.785"), 1e-7, 3.0, -3.0, 0.1 + 0.2]
    rnd = [round(rng.uniform(-1e6, 1e6), rng.randrange(0, 5)) for _ in range(300)]
    ints = [rng.randrange(-10 ** 9, 10 ** 9) for _ in range(100)]
    small = [rng.uniform(-1.5, 1.5) for _ in range(200)]
    return fixed + rnd + ints + small


@pytest.mark.parametrize("locale", labels.LOCALES)
def test_numbers_are_babels(locale):
    for pattern in PATTERNS:
        for v in _values():
            assert format_number(v, pattern, locale) == format_decimal(v, pattern, locale=locale), (pattern, v)
    for pattern in PERCENTS:
        for v in _values():
            assert format_number(v, pattern, locale) == format_percent(v, pattern, locale=locale), (pattern, v)


@pytest.mark.parametrize("locale", labels.LOCALES)
def test_symbols_months_and_default_pattern_are_cldrs(locale):
    from babel import Locale

    loc = Locale.parse(locale)
    sym = loc.number_symbols["latn"]
    assert labels.SYMBOLS[locale] == (sym["decimal"], sym["group"])
    assert (sym["plusSign"], sym["minusSign"], sym["percentSign"]) == ("+", "-", "%")
    assert loc.decimal_formats[None].pattern == labels.DECIMAL_PATTERN
    assert list(labels.MONTHS_ABBR[locale]) == list(get_month_names("abbreviated", locale=locale).values())


@pytest.mark.parametrize("locale", labels.LOCALES)
def test_short_dates_are_babels(locale):
    zone = timezone(timedelta(hours=7))
    for k in range(0, 800, 7):
        dt = datetime(2026, 1, 1, 0, 0, tzinfo=zone) + timedelta(days=k, minutes=97 * k)
        assert format_stamp(dt, locale) == format_datetime(dt, "d MMM yyyy HH:mm", locale=locale)
        assert format_stamp(dt.date(), locale, time=False) == format_date(dt.date(), "d MMM yyyy", locale=locale)
    assert format_stamp(date(987, 3, 4), locale, time=False) == format_date(date(987, 3, 4), "d MMM yyyy",
                                                                           locale=locale)


def test_other_patterns_go_to_babel():
    assert labels._number_pattern("#,##,##0.0") is None  # Indian grouping
    assert labels._number_pattern("¤#,##0.00") is None
    assert format_number(1234567.5, "#,##,##0.0", "en") == format_decimal(1234567.5, "#,##,##0.0", locale="en")
    assert format_number(float("nan"), "#,##0.0", "en") == format_decimal(float("nan"), "#,##0.0", locale="en")


def test_a_report_cell_and_delta_in_both_locales():
    id_, en = Labels("id", "Asia/Jakarta"), Labels("en", "Asia/Jakarta")
    assert id_.value(98558) == "98.558" and en.value(98558) == "98,558"
    assert id_.value(0.25, "sla_pct") == "25,0%"
    assert id_.value(0.03, "first_response_hours") == "0,03"
    assert id_.value(datetime(2026, 12, 1, 3, 4)) == "1 Des 2026 10:04"  # UTC shown in the site's zone
    assert id_.delta(120, 100, "open_tickets") == ("+20 (+20,0%)", 1)
    assert en.delta(0.5, 0.75, "sla_pct") == ("-25.0 pp", -1)
    assert en.delta(3, 0, "open_tickets") == ("+3", 1)
