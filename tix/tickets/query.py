"""The filter language shared by `tix list`, `tix update` and rules tooling.

Designed for humans to type::

    status:open team:billing age>3d -tag:vip
    is:open assignee:none priority>=high "refund"
    channel:whatsapp,email updated>2h order_id:INV-1001

Terms are ANDed. `-` (or `!`) before a term negates it. In a shell, quote terms with `>` or `<`
(`'age>3d'`) or write them with a colon (`age:>3d`). `field:a,b` means any of the values.
`field:none` means empty. Comparisons: `age` and `idle` (time since created / updated,
durations like 30m, 4h, 1h30m, 3d, 2w: tix.durations), `created` / `updated` / `resolved`
(site-local dates or times such as 2026-11-01 or 2026-11-01T09:00, or durations meaning
"ago"), `priority` (by rank), `number`. Bare words and
"quoted phrases" search the subject (case-insensitive). A custom field declared in
tix.yaml filters like a built-in one.

`compile_filter()` returns SQL over the `tickets` view with `?` placeholders and the
values to bind: nothing typed by a user is ever pasted into SQL.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from tix import durations
from tix.errors import UsageError
from tix.model import OPEN_STATUSES, PRIORITIES, STATUSES
from tix.store.log import parse_local, utcnow

EQ_FIELDS = ("status", "team", "assignee", "priority", "category", "channel", "inbox", "contact", "number")
SPECIAL = ("tag", "is", "text")
TIME_FIELDS = {"age": "created_at", "idle": "updated_at", "created": "created_at",
               "updated": "updated_at", "resolved": "resolved_at"}
ALL_FIELDS = EQ_FIELDS + SPECIAL + tuple(TIME_FIELDS)
IS_VALUES = ("open", "closed", "unassigned", "assigned", "new", "pending", "resolved")

_TERM = re.compile(r"^(?P<neg>[-!])?(?P<field>[A-Za-z_][\w.]*)(?P<op>:|>=|<=|>|<|=)(?P<value>.*)$")


@dataclass
class Filter:
    sql: str = "TRUE"
    params: list = field(default_factory=list)
    mentions_status: bool = False


def parse_duration(text: str) -> timedelta:
    """A filter's duration (the grammar of tix.durations); UsageError when it is not one."""
    try:
        return timedelta(seconds=durations.parse_duration(text))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def compile_filter(text: str | list[str], custom_fields=(), now: datetime | None = None,
                   tz: str = "Asia/Jakarta") -> Filter:
    """Parse a filter; raise UsageError naming the bad term and the accepted values."""
    now = now or utcnow()
    tokens = _tokens(text)
    clauses: list[str] = []
    params: list = []
    mentions_status = False
    for tok in tokens:
        m = _TERM.match(tok)
        known = m is not None and (m.group("field") in ALL_FIELDS or m.group("field") in custom_fields)
        if not known:
            if m is not None and not tok.startswith(("http:", "https:")):
                from tix.config import suggest

                name = m.group("field")
                raise UsageError(f"unknown filter field {name!r}{suggest(name, (*ALL_FIELDS, *custom_fields))}; "
                                 f"fields: {', '.join((*ALL_FIELDS, *custom_fields))}")
            neg = tok.startswith(("-", "!")) and len(tok) > 1
            word = tok[1:] if neg else tok
            clauses.append(("NOT " if neg else "") + "(subject ILIKE ? ESCAPE '\\')")
            params.append("%" + _like_escape(word) + "%")
            continue
        neg, name, op, value = m.group("neg"), m.group("field"), m.group("op"), m.group("value")
        if op == ":" and value[:1] in "<>=" and value:
            # `age:>3d` is `age>3d` without a shell redirection to worry about
            op = value[:2] if value[:2] in (">=", "<=") else value[:1]
            value = value[len(op):]
        if name == "status" or (name == "is" and value in ("open", "closed", "new", "pending", "resolved")):
            mentions_status = True
        sql, vals = _term(name, op, value, custom_fields, now, tz)
        clauses.append(f"NOT ({sql})" if neg else f"({sql})")
        params += vals
    return Filter(" AND ".join(clauses) or "TRUE", params, mentions_status)


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
    return "status = ?", [value]


def _priority_term(op: str, value: str) -> tuple[str, list]:
    if op == ":":
        vals = _values(value)
        _check(vals, PRIORITIES, "priority")
        return _in("priority", vals)
    _check([value], PRIORITIES, "priority")
    rank = PRIORITIES.index(value)
    sqlop = "=" if op == "=" else op
    chosen = [p for i, p in enumerate(PRIORITIES) if _cmp(i, sqlop, rank)]
    return _in("priority", chosen) if chosen else ("FALSE", [])


def _cmp(a, op, b) -> bool:
    return {"=": a == b, ">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]


def _int_term(name: str, op: str, value: str) -> tuple[str, list]:
    vals = _values(value.lstrip("#")) if op == ":" else [value.lstrip("#")]
    try:
        ints = [int(v.lstrip("#")) for v in vals]
    except ValueError:
        raise UsageError(f"{name} must be a number, got {value!r}") from None
    if op == ":":
        return _in(name, ints)
    return f"{name} {op} ?", [ints[0]]


def _time_term(name: str, op: str, value: str, now: datetime, tz: str) -> tuple[str, list]:
    column = TIME_FIELDS[name]
    if op == ":":
        raise UsageError(f"{name} needs a comparison, e.g. {name}>3d or {name}<2026-11-01")
    if name in ("age", "idle"):
        cutoff = now - parse_duration(value)
        # age>3d: created before now-3d
        flipped = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "="}[op]
        return f"{column} {flipped} ?", [_naive(cutoff)]
    try:
        when = now - timedelta(seconds=durations.parse_duration(value))
    except ValueError:
        try:
            when = parse_local(value, tz)
        except ValueError:
            raise UsageError(f"{name} needs a date (2026-11-01) or a duration (3d), got {value!r}") from None
    return f"{column} {op} ?", [_naive(when)]


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
