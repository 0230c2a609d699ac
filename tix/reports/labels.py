"""Labels in English and Indonesian, and number/date formatting (CLDR's, as Babel has it).

Column names of the built-in reports have labels here; a report file can add or override
its own with `-- label: column = English | Indonesian`. An unknown column is shown as its
name with underscores turned into spaces.

Formatting follows the column name: `*_pct`, `*_rate` and `compliance` are fractions shown
as percentages; `*_hours`/`*_days` are durations with one decimal (two under one: 0,05 h); `weekday` (1 = Monday)
becomes the day's name; times are shown in the site time zone.
"""
from __future__ import annotations

import functools
from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from tix.model import VALUE_LABELS, value_label

LOCALES = ("id", "en")

# column or word -> (English, Indonesian)
LABELS: dict[str, tuple[str, str]] = {
    "number": ("Ticket", "Tiket"),
    "ticket": ("Ticket", "Tiket"),
    "subject": ("Subject", "Subjek"),
    "status": ("Status", "Status"),
    "priority": ("Priority", "Prioritas"),
    "category": ("Category", "Kategori"),
    "team": ("Team", "Tim"),
    "assignee": ("Assignee", "Penanggung jawab"),
    "agent": ("Agent", "Agen"),
    "channel": ("Channel", "Kanal"),
    "policy": ("Policy", "Kebijakan"),
    "target": ("Target", "Target"),
    "week": ("Week", "Minggu"),
    "weekday": ("Day", "Hari"),
    "hour": ("Hour", "Jam"),
    "day": ("Day", "Tanggal"),
    "tickets": ("Tickets", "Tiket"),
    "open_tickets": ("Open tickets", "Tiket terbuka"),
    "new_tickets": ("New tickets", "Tiket baru"),
    "resolved_tickets": ("Resolved tickets", "Tiket selesai"),
    "backlog": ("Open at end of week", "Terbuka di akhir minggu"),
    "created_at": ("Created", "Dibuat"),
    "age_days": ("Age (days)", "Umur (hari)"),
    "lt_1d": ("< 1 day", "< 1 hari"),
    "d1_3": ("1–3 days", "1–3 hari"),
    "d3_7": ("3–7 days", "3–7 hari"),
    "gt_7d": ("7+ days", "7+ hari"),
    "unassigned": ("Unassigned", "Belum ditugaskan"),
    "waiting_7d": ("Waiting 7+ days", "Menunggu 7+ hari"),
    "urgent_high": ("Urgent/high", "Mendesak/tinggi"),
    "median_age_days": ("Median age (days)", "Median umur (hari)"),
    "first_response_hours": ("First response (h)", "Respons pertama (jam)"),
    "reopened_tickets": ("Reopened", "Dibuka ulang"),
    "bucket": ("Time to first response", "Waktu ke respons pertama"),
    "responded": ("Responded", "Direspons"),
    "resolved": ("Resolved", "Selesai"),
    "first_response_median_hours": ("First response, median (h)", "Respons pertama, median (jam)"),
    "first_response_p90_hours": ("First response, 90th pct (h)", "Respons pertama, persentil 90 (jam)"),
    "resolution_median_hours": ("Resolution, median (h)", "Penyelesaian, median (jam)"),
    "resolution_p90_hours": ("Resolution, 90th pct (h)", "Penyelesaian, persentil 90 (jam)"),
    "first_response_median_business_hours": ("First response, median (business h)",
                                              "Respons pertama, median (jam kerja)"),
    "first_response_p90_business_hours": ("First response, 90th pct (business h)",
                                          "Respons pertama, persentil 90 (jam kerja)"),
    "resolution_median_business_hours": ("Resolution, median (business h)", "Penyelesaian, median (jam kerja)"),
    "resolution_p90_business_hours": ("Resolution, 90th pct (business h)",
                                      "Penyelesaian, persentil 90 (jam kerja)"),
    "measured": ("Measured", "Diukur"),
    "met": ("Met", "Terpenuhi"),
    "breached": ("Breached", "Dilanggar"),
    "near_miss": ("Near misses", "Nyaris dilanggar"),
    "running": ("Running", "Berjalan"),
    "compliance": ("Compliance", "Kepatuhan"),
    "compliance_pct": ("Compliance", "Kepatuhan"),
    "due_at": ("Due", "Tenggat"),
    "met_at": ("Met at", "Dipenuhi pada"),
    "overdue_hours": ("Over by (h)", "Terlambat (jam)"),
    "handled": ("Tickets handled", "Tiket ditangani"),
    "assigned_open": ("Open now", "Terbuka sekarang"),
    "replies": ("Replies", "Balasan"),
    "reopened": ("Reopened", "Dibuka ulang"),
    "reopen_rate": ("Reopen rate", "Tingkat buka ulang"),
    "share_pct": ("Share", "Porsi"),
    "previous": ("Previous period", "Periode sebelumnya"),
    "change_pct": ("Change", "Perubahan"),
    "metric": ("Measure", "Ukuran"),
    "value": ("This period", "Periode ini"),
    "change": ("Change", "Perubahan"),
    "resolved_in_period": ("Resolved", "Diselesaikan"),
    "first_response_median": ("First response, median", "Respons pertama, median"),
    "sla_compliance": ("SLA compliance", "Kepatuhan SLA"),
    "closed_unanswered": ("Closed without a reply", "Ditutup tanpa balasan"),
    "excluded_tickets": ("Spam and automatic mail", "Spam dan surat otomatis"),
    "excluded": ("Spam and automatic mail", "Spam dan surat otomatis"),
    "first_responses": ("First responses", "Respons pertama"),
    "cycle": ("Cycle", "Siklus"),
    "stopped_at": ("Stopped", "Berhenti"),
    # words used by the templates
    "period": ("Period", "Periode"),
    "generated": ("Generated", "Dibuat"),
    "parameters": ("Parameters", "Parameter"),
    "no_rows": ("Nothing to show.", "Tidak ada data."),
    "no_sla": ("No SLA policy is configured.", "Belum ada kebijakan SLA yang dikonfigurasi."),
    "missing_view": ("Needs the {view} view, which this store does not have.",
                     "Memerlukan view {view}, yang tidak ada di store ini."),
    "more_rows": ("{shown} of {total} rows shown.", "{shown} dari {total} baris ditampilkan."),
    "week_of": ("Week {week}", "Minggu {week}"),
    "vs_previous": ("vs. previous", "vs. sebelumnya"),
    "hours_unit": ("h", "jam"),
    "none": ("(none)", "(tidak ada)"),
    "report": ("Report", "Laporan"),
    "time_zone": ("Time zone", "Zona waktu"),
    "times_in": ("Times in {tz}.", "Waktu dalam zona {tz}."),
}

# A report's numbers and short dates, formatted here rather than by Babel: importing Babel
# and loading its locale data costs 15–25 ms a process, as much as three of a backlog
# report's queries (issue 16). This is Babel's own algorithm (NumberPattern.apply) for the
# plain patterns reports use (`#,##0.0`, `+#,##0.#;-#,##0.#`, `#,##0.0%`: digits,
# grouping by three, a sign or a percent), with CLDR's symbols and abbreviated month names
# for the two locales; tests/test_reports_labels.py checks both against Babel's output.
# Any other pattern, and day names and long dates, go to Babel.
SYMBOLS = {"id": (",", "."), "en": (".", ",")}  # (decimal, group); plus, minus, percent: + - %
MONTHS_ABBR = {
    "id": ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des"),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}
DECIMAL_PATTERN = "#,##0.###"  # CLDR's decimal format of both locales (format_decimal's default)
_AFFIX = set("+-%")


@functools.cache
def _number_pattern(pattern: str) -> tuple | None:
    """((prefix, suffix) positive, (prefix, suffix) negative, grouped, min int digits,
    min and max fraction digits, scale) of a plain pattern; None for any other."""
    def split(part: str):
        digits = [i for i, c in enumerate(part) if c in "#0,."]
        if not digits:
            return None
        i, j = digits[0], digits[-1] + 1
        if not set(part[:i] + part[j:]) <= _AFFIX:
            return None
        return part[:i], part[i:j], part[j:]

    pos, _, neg = pattern.partition(";")
    p, n = split(pos), split(neg) if neg else None
    if p is None or (neg and n is None):
        return None
    whole, _, frac = p[1].partition(".")
    groups = whole.split(",")
    if len(groups) > 2 or (len(groups) == 2 and len(groups[1]) != 3) or set(frac) - set("0#") or \
            set(whole) - set("#0,"):
        return None
    negative = (n[0], n[2]) if n else ("-" + p[0], p[2])
    return ((p[0], p[2]), negative, len(groups) == 2, whole.count("0"), frac.count("0"),
            frac.count("0") + frac.count("#"), 2 if "%" in p[0] + p[2] else 0)


def format_number(value, pattern: str, locale: str) -> str:
    """`value` (int, float or Decimal) in a CLDR number pattern, as Babel's format_decimal
    and format_percent write it."""
    spec = _number_pattern(pattern)
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    if spec is None or locale not in SYMBOLS or not d.is_finite():
        from babel.numbers import format_decimal

        return format_decimal(value, pattern, locale=locale)
    pos, neg, grouped, min_int, min_frac, max_frac, scale = spec
    d = d.scaleb(scale)
    prefix, suffix = neg if d.is_signed() else pos
    a, _, b = f"{abs(d).normalize().quantize(Decimal(10) ** -max_frac):f}".partition(".")
    decimal_sign, group_sign = SYMBOLS[locale]
    a = "0" * (min_int - len(a)) + a
    if grouped:
        tail = ""
        while len(a) > 3:
            a, tail = a[:-3], group_sign + a[-3:] + tail
        a += tail
    b = (b or "0").ljust(min_frac, "0")
    if max_frac == 0 or (min_frac == 0 and int(b) == 0):
        b = ""
    else:
        b = decimal_sign + (b[:min_frac] + b[min_frac:].rstrip("0"))
    return f"{prefix}{a}{b}{suffix}"


def format_stamp(value: date, locale: str, time: bool = True) -> str:
    """`d MMM yyyy HH:mm` (without `time`: `d MMM yyyy`) of a date or a datetime as it is."""
    text = f"{value.day} {MONTHS_ABBR[locale][value.month - 1]} {value.year:04d}"
    return f"{text} {value.hour:02d}:{value.minute:02d}" if time else text


PERCENT_SUFFIXES = ("_pct", "_rate")
PERCENT_NAMES = ("compliance", "sla_compliance")
DURATION_SUFFIXES = ("_hours", "_days", "_hours_business")


class Labels:
    """Labels and formatting for one locale and time zone."""

    def __init__(self, locale: str = "id", tz: str = "Asia/Jakarta", extra: dict | None = None,
                 names: dict | None = None):
        self.locale = locale if locale in LOCALES else "en"
        self.tz = ZoneInfo(tz)
        self.tz_name = tz
        self.extra = extra or {}
        self.names = names or {}  # column -> {key: display name}: teams and agents (tix.config.Config.display_names)
        self._i = 0 if self.locale == "en" else 1

    def __call__(self, key: str, **fmt) -> str:
        return self.label(key, **fmt)

    def label(self, key: str, **fmt) -> str:
        if key in self.extra:
            text = self.extra[key].get(self.locale) or self.extra[key].get("en") or key
        elif key in LABELS:
            text = LABELS[key][self._i]
        else:
            text = key.replace("_", " ").strip().capitalize()
        return text.format(**fmt) if fmt else text

    # -- values -----------------------------------------------------------------------------
    def is_percent(self, column: str) -> bool:
        return column.endswith(PERCENT_SUFFIXES) or column in PERCENT_NAMES

    def value(self, value, column: str = "") -> str:
        """A cell for people: localized numbers, site-time dates, day names, '–' for none."""
        if value is None:
            return "–"
        if isinstance(value, str) and column in self.names:
            return self.names[column].get(value, value)
        if isinstance(value, str) and column in VALUE_LABELS:
            return value_label(column, value, self.locale)
        if isinstance(value, bool):
            return "✓" if value else "✗"
        if isinstance(value, datetime):
            local = self.local(value)
            return format_stamp(local, self.locale)
        if isinstance(value, date):
            return format_stamp(value, self.locale, time=False)
        if column in ("ticket", "number") and isinstance(value, int):
            return f"#{value}"
        if column == "weekday" and isinstance(value, int) and 1 <= value <= 7:
            return self.day_name(value)
        if isinstance(value, (int, float)) and self.is_percent(column):
            return format_number(value, "#,##0.0%", self.locale)
        if isinstance(value, float) and value.is_integer() and not column.endswith(DURATION_SUFFIXES):
            value = int(value)  # a count that came through a DOUBLE column
        if isinstance(value, float) or (hasattr(value, "as_tuple") and not isinstance(value, int)):
            value = float(value)
            if column.endswith(DURATION_SUFFIXES) and 0 < abs(value) < 0.95:
                # under an hour (a day): two decimals, so 3 minutes is 0,05 h, not 0,0
                if abs(value) < 0.005:  # a few seconds: shown as such; below zero, a clock's skew: 0
                    return "< " + format_number(0.01, "0.00", self.locale) if value > 0 else \
                        format_number(0, "0.0", self.locale)
                return format_number(round(value, 2), "#,##0.0#", self.locale)
            return format_number(round(value, 1) + 0.0, "#,##0.0", self.locale)  # + 0.0: never -0,0
        if isinstance(value, int):
            return format_number(value, DECIMAL_PATTERN, self.locale)
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        return str(value)

    def number(self, value, column: str = "") -> str:
        return self.value(value, column)

    def local(self, value: datetime) -> datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(self.tz)

    def day_name(self, isodow: int, width: str = "abbreviated") -> str:
        from babel.dates import get_day_names

        return get_day_names(width, locale=self.locale)[isodow - 1]

    def date(self, value: date | datetime, fmt: str = "d MMMM yyyy") -> str:
        from babel.dates import format_date

        if isinstance(value, datetime):
            value = self.local(value).date() if value.tzinfo is None else value.date()
        return format_date(value, fmt, locale=self.locale)

    def datetime(self, value: datetime, fmt: str = "d MMMM yyyy HH:mm") -> str:
        from babel.dates import format_datetime

        return format_datetime(self.local(value), fmt, locale=self.locale)

    def delta(self, value, previous, column: str) -> tuple[str, int]:
        """Week-over-week change as text, and its sign (-1, 0, 1)."""
        if value is None or previous is None:
            return "–", 0
        diff = float(value) - float(previous)
        sign = (diff > 0) - (diff < 0)
        if self.is_percent(column):
            pts = format_number(diff * 100, "+#,##0.0;-#,##0.0", self.locale)
            return f"{pts} pp", sign
        if previous == 0:
            absolute = format_number(diff, "+#,##0.#;-#,##0.#", self.locale)
            return absolute, sign
        rel = format_number(diff / float(previous), "+#,##0.0%;-#,##0.0%", self.locale)
        absolute = format_number(diff, "+#,##0.#;-#,##0.#", self.locale)
        return f"{absolute} ({rel})", sign
