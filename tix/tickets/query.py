"""The filter language of `tix list` and `tix update` (and of the hints in their errors).

Made for typing in a shell: no common form needs quotes::

    status:open team:billing age:3d+ -tag:vip          open billing tickets 3 days old or more, not VIP
    is:open assignee:none priority:high+               unassigned, high or urgent
    channel:whatsapp,email idle:2h+ refund             quiet for 2 hours or more, "refund" in the subject
    created:2026-11-01..2026-11-30 order_id:INV-1001   created in November (site time zone)

Terms are ANDed. `-` before a term negates it (`!` too, but an interactive bash expands `!`).
`field:a,b` means any of the values; `field:none` means empty. `is:` takes open, closed, new,
pending, resolved, assigned, unassigned or any.

Ranges, for `age` and `idle` (time since created / last updated, a duration of tix.durations:
30m, 4h, 1h30m, 3d, 2w), `created`, `updated`, `resolved` (a site-local date 2026-11-01, a
month 2026-11, or a time 2026-11-01T09:00), `priority` (by rank) and `number`::

    FIELD:V+        V or more (older, later, higher)
    FIELD:-V        up to V
    FIELD:A..B      from A to B, both included (a date or a month with all of its days)
    created:2026-11-01, created:2026-11     that day, that month

The comparison forms `age>3d`, `age:>=3d`, `created<2026-11-01`, `priority>=high` are still
understood, but a shell reads `>` and `<` as redirections, so they need quotes ('age>3d').
When a shell has taken `idle>14d` as the word `idle` and a redirection (writing a file
`14d`), tix is left with a bare field name (or `idle:` without a value): that is an error
showing the shell-safe form, never a subject search.

Other bare words and "quoted phrases" search the subject and every message and note of the
ticket (case- and accent-insensitive, tix.store.search; a substring of the subject also
matches); `text:WORD` searches for a word that is also a field name. A custom field declared in tix.yaml filters
like a built-in one.

`tix list` and `tix update` both select open tickets (new, open, pending) unless the filter
names a status (`status:`, `is:open|closed|new|pending|resolved|any`) or `--all` is given:
see `Filter.mentions_status` and `tix.tickets.core.select`.

`compile_filter()` returns SQL over the `tickets` view with `?` placeholders and the
values to bind: nothing typed by a user is ever pasted into SQL.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from tix import durations
from tix.errors import UsageError
from tix.model import OPEN_STATUSES, PRIORITIES, STATUSES
from tix.store.log import parse_local, utcnow

EQ_FIELDS = ("status", "team", "assignee", "priority", "category", "channel", "inbox", "contact", "number")
SPECIAL = ("tag", "is", "text")
TIME_FIELDS = {"age": "created_at", "idle": "updated_at", "created": "created_at",
               "updated": "updated_at", "resolved": "resolved_at"}
ALL_FIELDS = EQ_FIELDS + SPECIAL + tuple(TIME_FIELDS)
IS_VALUES = ("open", "closed", "unassigned", "assigned", "new", "pending", "resolved", "any")
STATUS_IS = ("open", "closed", "new", "pending", "resolved", "any")
RANGED = ("age", "idle", "created", "updated", "resolved", "priority", "number")

# The shell-safe example of each ranged field, used by every hint.
EXAMPLE = {"age": "age:3d+", "idle": "idle:14d+", "created": "created:2026-11-01..2026-11-30",
           "updated": "updated:2026-11-01+", "resolved": "resolved:2026-11-01..2026-11-30",
           "priority": "priority:high+", "number": "number:1000+"}
MEANS = {"age": ("3 days old or more", "age:-2h", "up to 2 hours old"),
         "idle": ("no change for 14 days or more", "idle:-2h", "changed in the last 2 hours")}

_TERM = re.compile(r"^(?P<neg>[-!])?(?P<field>[A-Za-z_][\w.]*)(?P<op>:|>=|<=|>|<|=)(?P<value>.*)$")
_OPS = (">=", "<=", ">", "<", "=")


@dataclass
class Filter:
    sql: str = "TRUE"
    params: list = field(default_factory=list)
    mentions_status: bool = False


def shell_safe(name: str) -> str:
    """The shell-safe way to write a term on field `name`, for hints: `age:3d+ (3 days old or more)`."""
    if name in MEANS:
        more, less_example, less = MEANS[name]
        return f"{EXAMPLE[name]} ({more}) or {less_example} ({less})"
    if name in EXAMPLE:
        return EXAMPLE[name]
    return f"{name}:VALUE"


def parse_duration(text: str) -> timedelta:
    """A filter's duration (the grammar of tix.durations); UsageError when it is not one."""
    try:
        return timedelta(seconds=durations.parse_duration(text))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def compile_filter(text: str | list[str], custom_fields=(), now: datetime | None = None,
                   tz: str = "Asia/Jakarta", search=None) -> Filter:
    """Parse a filter; raise UsageError naming the bad term and the accepted values or forms.

    `search`: a function (words -> ticket numbers) over message bodies (tix.store.search);
    with it, bare words and `text:` match subjects and bodies, else subjects only.
    """
    now = now or utcnow()
    clauses: list[str] = []
    params: list = []
    mentions_status = False
    fields = (*ALL_FIELDS, *custom_fields)
    for tok in _tokens(text):
        m = _TERM.match(tok)
        if m is None or m.group("field") not in fields:
            clauses.append(_word(tok, m, fields))
            word = tok[1:] if _negated(tok) else tok
            params.append("%" + _like_escape(word) + "%")
            if search is not None:
                clauses[-1] = clauses[-1][:-1] + _IN_BODIES + ")"
                params.append(search(word))
            continue
        neg, name, op, value = m.group("neg"), m.group("field"), m.group("op"), m.group("value")
        if op == ":" and value[:1] in ("<", ">", "="):
            # `age:>3d` is `age>3d` (quoted, for the shell's sake) written the old way
            op = value[:2] if value[:2] in (">=", "<=") else value[:1]
            value = value[len(op):]
        if not value:
            raise UsageError(_empty_value(name, op))
        if name == "status" or (name == "is" and value in STATUS_IS):
            mentions_status = True
        sql, vals = _term(name, op, value, custom_fields, now, tz)
        if name == "text" and search is not None:
            sql, vals = f"{sql}{_IN_BODIES}", [*vals, search(value)]
        clauses.append(f"NOT ({sql})" if neg else f"({sql})")
        params += vals
    return Filter(" AND ".join(clauses) or "TRUE", params, mentions_status)


_IN_BODIES = " OR number IN (SELECT unnest(?::BIGINT[]))"


def _negated(tok: str) -> bool:
    return tok.startswith(("-", "!")) and len(tok) > 1


def _word(tok: str, m, fields) -> str:
    """A bare word: a subject search, unless it is a field name (or an unknown `field:`)."""
    if m is not None and not tok.startswith(("http:", "https:")):
        from tix.config import suggest

        name = m.group("field")
        raise UsageError(f"unknown filter field {name!r}{suggest(name, fields)}; fields: {', '.join(fields)}")
    word = tok[1:] if _negated(tok) else tok
    if word.lower() in fields:
        raise UsageError(f"{word!r} alone is not a filter term: a shell takes `{word}>…` or `{word}<…` as a "
                         f"redirection (`>` writes a file named after it); write {shell_safe(word.lower())}. "
                         f"To search subjects for the word, write text:{word}")
    return ("NOT " if _negated(tok) else "") + "(subject ILIKE ? ESCAPE '\\')"


def _empty_value(name: str, op: str) -> str:
    if op == ":" and name in RANGED:
        return (f"{name}: has no value (did a shell take `{name}:>…` as a redirection and write a file?); "
                f"write {shell_safe(name)}")
    return f"filter term {name}{op} needs a value, e.g. {shell_safe(name) if name in RANGED else 'status:open'}"


def _tokens(text) -> list[str]:
    if isinstance(text, (list, tuple)):
        text = " ".join(shlex.quote(t) if " " in t else t for t in text)
    try:
        return shlex.split(text or "")
    except ValueError as exc:
        raise UsageError(f"filter does not parse: {exc}") from None


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _values(value: str) -> list[str]:
    vals = [v for v in value.split(",") if v != ""]
    if not vals:
        raise UsageError("filter term needs a value, e.g. status:open")
    return vals


def _term(name: str, op: str, value: str, custom_fields, now: datetime, tz: str) -> tuple[str, list]:
    if name in TIME_FIELDS:
        return _time_term(name, op, value, now, tz)
    if op != ":" and name not in ("priority", "number"):
        raise UsageError(f"{name} takes ':' (e.g. {name}:VALUE), not {op!r}")
    if name == "is":
        return _is_term(value)
    if name == "tag":
        vals = _values(value)
        return "list_has_any(tags, ?::VARCHAR[])", [vals]
    if name == "text":
        return "subject ILIKE ? ESCAPE '\\'", ["%" + _like_escape(value) + "%"]
    if name in custom_fields:
        vals = _values(value)
        return "json_extract_string(fields, ?) IN (SELECT unnest(?::VARCHAR[]))", [f"$.{name}", vals]
    if name == "priority":
        return _priority_term(op, value)
    if name in ("number", "contact"):
        return _int_term(name, op, value)
    vals = _values(value)
    if name == "status":
        _check(vals, STATUSES, "status")
    if vals == ["none"]:
        return f"{name} IS NULL", []
    if "none" in vals:  # team:billing,none: billing's tickets and those of no team
        sql, params = _in(name, [v for v in vals if v != "none"])
        return f"({name} IS NULL OR {sql})", params
    return _in(name, vals)


def _in(column: str, values: list) -> tuple[str, list]:
    """`column IN (?, ?, …)`: plain comparisons that DuckDB pushes down into the Parquet scan."""
    return f"{column} IN ({', '.join('?' * len(values))})", list(values)


def _check(vals, allowed, what):
    from tix.config import suggest

    for v in vals:
        if v not in allowed:
            raise UsageError(f"invalid {what} {v!r}{suggest(v, allowed)}; {what} is one of: {', '.join(allowed)}")


def _is_term(value: str) -> tuple[str, list]:
    _check([value], IS_VALUES, "is:")
    if value == "open":
        return _in("status", list(OPEN_STATUSES))
    if value == "closed":
        return "status IN ('resolved', 'closed')", []
    if value == "unassigned":
        return "assignee IS NULL", []
    if value == "assigned":
        return "assignee IS NOT NULL", []
    if value == "any":
        return "TRUE", []
    return "status = ?", [value]


def _range(value: str) -> tuple[str, str] | None:
    """`V+` -> (V, ''), `-V` -> ('', V), `A..B` -> (A, B); None for a single value."""
    if ".." in value:
        lo, _, hi = value.partition("..")
        if not lo and not hi:
            raise UsageError(f"a range needs at least one end: {value!r}")
        return lo, hi
    if value.endswith("+") and len(value) > 1:
        return value[:-1], ""
    if value.startswith("-") and len(value) > 1:
        return "", value[1:]
    return None


def _rank_tests(op: str, value: str, rank) -> list:
    """Tests on a rank for `priority>=high` or `priority:high+` / `-normal` / `normal..high`."""
    if op != ":":
        r = rank(value)
        return [lambda x: _cmp(x, op, r)]
    lo, hi = _range(value)
    tests = []
    if lo:
        r_lo = rank(lo)
        tests.append(lambda x: x >= r_lo)
    if hi:
        r_hi = rank(hi)
        tests.append(lambda x: x <= r_hi)
    return tests


def _priority_term(op: str, value: str) -> tuple[str, list]:
    def rank(v):
        _check([v], PRIORITIES, "priority")
        return PRIORITIES.index(v)

    if op == ":" and _range(value) is None:
        vals = _values(value)
        _check(vals, PRIORITIES, "priority")
        return _in("priority", vals)
    tests = _rank_tests(op, value, rank)
    chosen = [p for i, p in enumerate(PRIORITIES) if all(t(i) for t in tests)]
    return _in("priority", chosen) if chosen else ("FALSE", [])


def _cmp(a, op, b) -> bool:
    return {"=": a == b, ">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]


def _int(name: str, v: str) -> int:
    try:
        return int(v.lstrip("#"))
    except ValueError:
        raise UsageError(f"{name} must be a number, got {v!r}") from None


def _int_term(name: str, op: str, value: str) -> tuple[str, list]:
    if op != ":":
        return f"{name} {op} ?", [_int(name, value)]
    bounds = _range(value) if name == "number" else None
    if bounds is None:
        return _in(name, [_int(name, v) for v in _values(value)])
    lo, hi = bounds
    sql, vals = [], []
    if lo:
        sql.append(f"{name} >= ?")
        vals.append(_int(name, lo))
    if hi:
        sql.append(f"{name} <= ?")
        vals.append(_int(name, hi))
    return " AND ".join(sql), vals


def _time_term(name: str, op: str, value: str, now: datetime, tz: str) -> tuple[str, list]:
    column = TIME_FIELDS[name]
    if op == ":":
        return _time_range(name, column, value, now, tz)
    if name in ("age", "idle"):
        cutoff = now - parse_duration(value)
        # age>3d: created before now-3d
        flipped = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "="}[op]
        return f"{column} {flipped} ?", [_naive(cutoff)]
    try:
        when = now - timedelta(seconds=durations.parse_duration(value))
    except ValueError:
        when = _period(name, value, tz)[0]
    return f"{column} {op} ?", [_naive(when)]


def _time_range(name: str, column: str, value: str, now: datetime, tz: str) -> tuple[str, list]:
    """`age:3d+`, `age:-2h`, `age:1d..3d`; `created:2026-11-01`, `created:2026-11-01..2026-11-30`."""
    bounds = _range(value)
    if name in ("age", "idle"):
        if bounds is None:
            raise UsageError(f"{name}:{value} says neither more nor less: write {name}:{value}+ "
                             f"({value} or more) or {name}:-{value} (up to {value})")
        lo, hi = bounds
        sql, vals = [], []
        if lo:  # at least `lo` old: the time is at or before now - lo
            sql.append(f"{column} <= ?")
            vals.append(_naive(now - parse_duration(lo)))
        if hi:
            sql.append(f"{column} >= ?")
            vals.append(_naive(now - parse_duration(hi)))
        return " AND ".join(sql), vals
    if bounds is None:
        start, end = _period(name, value, tz)
        if end is None:
            raise UsageError(f"{name}:{value} is one instant: write {name}:{value}+ (from then on) or "
                             f"{name}:-{value} (up to then)")
        return f"{column} >= ? AND {column} < ?", [_naive(start), _naive(end)]
    lo, hi = bounds
    sql, vals = [], []
    if lo:
        sql.append(f"{column} >= ?")
        vals.append(_naive(_period(name, lo, tz)[0]))
    if hi:
        start, end = _period(name, hi, tz)
        sql.append(f"{column} < ?" if end is not None else f"{column} <= ?")
        vals.append(_naive(end if end is not None else start))
    return " AND ".join(sql), vals


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def _period(name: str, value: str, tz: str) -> tuple[datetime, datetime | None]:
    """A site-local month, date or time -> (start, end of the period or None for an instant), UTC."""
    zone = ZoneInfo(tz)
    m = _MONTH.match(value)
    try:
        if m:
            first = date(int(m.group(1)), int(m.group(2)), 1)
            nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
            return _midnight(first, zone), _midnight(nxt, zone)
        if len(value) == 10:
            day = date.fromisoformat(value)
            return _midnight(day, zone), _midnight(day + timedelta(days=1), zone)
        return parse_local(value, tz), None
    except ValueError:
        raise UsageError(f"{name} needs a date (2026-11-01), a month (2026-11) or a time (2026-11-01T09:00), "
                         f"got {value!r}; e.g. {EXAMPLE[name]}") from None


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(timezone.utc)


def _naive(dt: datetime) -> datetime:
    return dt.astimezone(timezone.utc).replace(tzinfo=None)


SORT_KEYS = {
    "number": "number", "created": "created_at", "updated": "updated_at", "age": "created_at",
    "priority": "list_position(['low','normal','high','urgent'], priority)", "status": "status",
    "team": "team", "assignee": "assignee", "subject": "subject",
}


def order_by(sort: str) -> str:
    """`-created` -> `created_at DESC`; only known keys (never user text) reach SQL."""
    parts = []
    for key in sort.split(","):
        key = key.strip()
        desc = key.startswith("-")
        key = key.lstrip("-+")
        if key not in SORT_KEYS:
            from tix.config import suggest

            raise UsageError(f"unknown sort key {key!r}{suggest(key, SORT_KEYS)}; keys: {', '.join(SORT_KEYS)}")
        parts.append(f"{SORT_KEYS[key]} {'DESC' if desc else 'ASC'} NULLS LAST")
    return ", ".join(parts + ["number ASC"])
