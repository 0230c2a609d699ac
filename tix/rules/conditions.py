"""Rule conditions: fields of a message/ticket, operators, `all`/`any`/`not`, compiled once.

A condition in YAML is a mapping; every entry must hold (`all`). Before and after::

    if:                                    All(
      channel: whatsapp                      Leaf(channel equals 'whatsapp'),
      any:                                   Any(
        - subject: {keywords: [refund]}        Leaf(subject keywords any ['refund']),
        - body: {matches: 'INV-\\d+'}          Leaf(body matches 'INV-\\d+')),
      not: {from_domain: {in: [x.com]}}      Not(Leaf(from_domain in ['x.com'])))

`field: value` means `equals`, `field: [a, b]` means `in`. String comparisons ignore case
and accents. A list field (to, cc, recipients, ticket.tags) matches when any element does.
Each compiled node is callable on a `Context` (fast path) and has `explain()` saying why.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from tix.config import Config, suggest
from tix.errors import Problem
from tix.model import TICKET_COLUMNS
from tix.rules.text import Keywords, RegexRejected, Tokens, check_keyword, compile_regex

STR, LIST, BOOL, INT = "text", "list", "yes/no", "number"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = {
    **{d: d for d in WEEKDAYS},
    "monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu", "friday": "fri",
    "saturday": "sat", "sunday": "sun",
    "senin": "mon", "selasa": "tue", "rabu": "wed", "kamis": "thu", "jumat": "fri", "sabtu": "sat",
    "minggu": "sun", "ahad": "sun",
}


@lru_cache(maxsize=8192)
def cf(text) -> str:
    """Case- and accent-insensitive form of a value for equals/in/contains/starts_with."""
    s = str(text)
    if not s.isascii():
        s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
    return s.casefold().strip()


class Context:
    """One message being routed: the message, its ticket (as it is now), its contact, when."""

    __slots__ = ("msg", "ticket", "contact", "when", "arrived", "site", "seq", "bank", "kwbank", "_tokens",
                 "_local", "_hits", "_kwhits", "_hours")

    def __init__(self, msg: dict, ticket: dict, contact: dict | None, when: str, arrived: datetime, site,
                 bank=None, kwbank=None):
        self.msg = msg
        self.ticket = ticket
        self.contact = contact
        self.when = when
        self.arrived = arrived  # aware UTC datetime of the message
        self.site = site  # tix.rules.engine.Site: time zone, business hours
        self.seq = 0  # seq of the event that carried the message
        self.bank = bank  # tix.rules.text.RegexBank of the rule set
        self.kwbank = kwbank  # tix.rules.text.KeywordBank of the rule set
        self._tokens: dict = {}
        self._local = None
        self._hits: dict = {}
        self._kwhits: dict = {}
        self._hours = None

    def kwhits(self, name: str, getter) -> frozenset:
        """Indices of the rule set's keyword conditions on field `name` that hold."""
        h = self._kwhits.get(name)
        if h is None:
            h = self._kwhits[name] = self.kwbank.hits(name, self.tokens(name, getter))
        return h

    def in_business_hours(self) -> bool:
        if self._hours is None:
            self._hours = self.site.in_business_hours(self.arrived)
        return self._hours

    def hits(self, name: str, getter) -> frozenset:
        """Indices of the rule set's patterns on field `name` that match this message."""
        h = self._hits.get(name)
        if h is None:
            h = self._hits[name] = self.bank.hits(name, getter(self))
        return h

    def tokens(self, name: str, getter) -> Tokens:
        t = self._tokens.get(name)
        if t is None:
            if name == "text":  # subject + body: fold each once
                t = Tokens.join(self.tokens("subject", _subject), self.tokens("body", _body))
            else:
                value = getter(self)
                t = Tokens(" ".join(value) if isinstance(value, list) else value)
            self._tokens[name] = t
        return t

    @property
    def local(self) -> datetime:
        if self._local is None:
            self._local = self.arrived.astimezone(self.site.tz)
        return self._local

    def ticket_fields(self) -> dict:
        import orjson

        raw = self.ticket.get("fields")
        return orjson.loads(raw) if isinstance(raw, str) and raw else dict(raw or {})


# -- fields ----------------------------------------------------------------------------------
def _msg(key):
    return lambda c: c.msg.get(key) or ""


def _sender(c) -> str:
    v = c.msg.get("from")
    return v.strip().lower() if isinstance(v, str) else str(v or "").strip().lower()


def _domain(c) -> str:
    v = c.msg.get("from")
    if not v or "@" not in v:
        return ""
    return str(v).rsplit("@", 1)[1].strip().lower()


def _addresses(key):
    return lambda c: [str(a).lower() for a in (c.msg.get(key) or [])]


def _recipients(c) -> list:
    return [str(a).lower() for a in (c.msg.get("to") or []) + (c.msg.get("cc") or [])]


def _subject(c) -> str:
    return c.msg.get("subject") or c.ticket.get("subject") or ""


def _body(c) -> str:
    return c.msg.get("text") or ""


def _text(c) -> str:
    return f"{_subject(c)}\n{c.msg.get('text') or ''}"


# name -> (kind, getter, help)
FIELDS: dict[str, tuple] = {
    "channel": (STR, lambda c: c.msg.get("channel") or c.ticket.get("channel") or "", "email, whatsapp, …"),
    "inbox": (STR, lambda c: c.msg.get("inbox") or c.ticket.get("inbox") or "",
              "the mailbox address or WhatsApp business number it arrived on"),
    "from": (STR, _sender, "sender address or phone number"),
    "from_name": (STR, _msg("from_name"), "sender display name"),
    "from_domain": (STR, _domain, "domain of the sender address"),
    "to": (LIST, _addresses("to"), "To addresses"),
    "cc": (LIST, _addresses("cc"), "Cc addresses"),
    "recipients": (LIST, _recipients, "To and Cc addresses"),
    "subject": (STR, _subject, "subject (of the message, else of the ticket)"),
    "body": (STR, _body, "message text"),
    "text": (STR, _text, "subject and body together"),
    "has_attachments": (BOOL, lambda c: bool(c.msg.get("attachments")), "true if it has attachments"),
    "attachments": (INT, lambda c: len(c.msg.get("attachments") or ()), "number of attachments"),
    "language": (STR, _msg("language"), "language code if known (id, en)"),
    "auto": (BOOL, lambda c: bool(c.msg.get("auto")), "true for auto-generated mail (Auto-Submitted, bulk)"),
    "wa_type": (STR, _msg("wa_type"), "WhatsApp message type: text, image, document, …"),
    "weekday": (STR, lambda c: WEEKDAYS[c.local.weekday()], "arrival weekday (mon … sun) in the site time zone"),
    "hour": (INT, lambda c: c.local.hour, "arrival hour 0–23 in the site time zone"),
    "business_hours": (BOOL, lambda c: c.in_business_hours(),
                       "true if it arrived inside the business calendar"),
}

_TICKET_KINDS = {"tags": LIST, "messages_in": INT, "messages_out": INT, "notes": INT, "reopened": INT,
                 "number": INT, "contact": INT}
_TICKET_FIELDS = ("subject", "status", "priority", "category", "team", "assignee", "tags", "channel",
                  "inbox", "messages_in", "messages_out", "notes", "reopened", "number")
_CONTACT_FIELDS = ("name", "emails", "phones")


def resolve_field(name: str, config: Config) -> tuple[str, object] | str:
    """(kind, getter) for a field name, or an error message with a suggestion."""
    if name in FIELDS:
        kind, getter, _ = FIELDS[name]
        return kind, getter
    if name.startswith("ticket."):
        return _ticket_field(name[7:], config)
    if name.startswith("contact."):
        key = name[8:]
        if not key:
            return "contact field name missing after 'contact.'"
        if key in ("emails", "phones"):
            return LIST, lambda c: list((c.contact or {}).get(key) or [])
        if key == "name":
            return STR, lambda c: (c.contact or {}).get("name") or ""
        return STR, _contact_custom(key[7:] if key.startswith("fields.") else key)
    choices = (*FIELDS, "all", "any", "not", *(f"ticket.{f}" for f in _TICKET_FIELDS))
    return f"unknown field {name!r}{suggest(name, choices)}; fields: {', '.join(FIELDS)}, ticket.FIELD, contact.FIELD"


def _ticket_field(key: str, config: Config):
    if key in _TICKET_FIELDS:
        kind = _TICKET_KINDS.get(key, STR)
        if kind == LIST:
            return kind, lambda c: list(c.ticket.get(key) or [])
        if kind == INT:
            return kind, lambda c: int(c.ticket.get(key) or 0)
        return kind, lambda c: c.ticket.get(key) or ""
    bare = key[7:] if key.startswith("fields.") else key
    if bare in config.custom_fields:
        return STR, lambda c: _scalar(c.ticket_fields().get(bare))
    choices = (*_TICKET_FIELDS, *config.custom_fields)
    if key in TICKET_COLUMNS:
        return f"ticket field {key!r} cannot be used in a condition; ticket fields: {', '.join(choices)}"
    return f"unknown ticket field {key!r}{suggest(key, choices)}; ticket fields: {', '.join(choices)}"


def _contact_custom(key: str):
    import orjson

    def get(c):
        raw = (c.contact or {}).get("fields")
        fields = orjson.loads(raw) if isinstance(raw, str) and raw else (raw or {})
        return _scalar(fields.get(key))
    return get


def _scalar(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# -- operators -------------------------------------------------------------------------------
STR_OPS = ("equals", "in", "contains", "starts_with", "ends_with", "matches", "keywords", "empty")
OPS_BY_KIND = {
    STR: STR_OPS,
    LIST: STR_OPS,
    BOOL: ("equals",),
    INT: ("equals", "in", "gt", "gte", "lt", "lte", "between"),
}
ALL_OPS = tuple(dict.fromkeys(op for ops in OPS_BY_KIND.values() for op in ops))


class BadCondition(ValueError):
    pass


def _strings(operand, op: str) -> list[str]:
    items = operand if isinstance(operand, list) else [operand]
    if not items:
        raise BadCondition(f"'{op}' needs at least one value")
    for v in items:
        if isinstance(v, (dict, list)) or v is None:
            raise BadCondition(f"'{op}' needs text values, got {v!r}")
    return [cf(_scalar(v)) for v in items]


def _str_test(op: str, operand, field: str):
    """(test(value) -> bool, shown operand) for a text operator."""
    if op == "equals":
        if isinstance(operand, list):
            raise BadCondition("'equals' takes one value; use 'in' for a list")
        want = _strings(operand, op)[0]
        if field == "weekday":
            want = _weekday(want)
        test = lambda v: cf(v) == want  # noqa: E731
        test.want = want
        return test, operand
    if op == "in":
        values = _strings(operand, op)
        if field == "weekday":
            values = [_weekday(v) for v in values]
        want = frozenset(values)
        test = lambda v: cf(v) in want  # noqa: E731
        test.want = want
        return test, list(operand) if isinstance(operand, list) else [operand]
    if op == "contains":
        parts = _strings(operand, op)
        return (lambda v: any(p in cf(v) for p in parts)), operand
    if op in ("starts_with", "ends_with"):
        parts = tuple(_strings(operand, op))
        if op == "starts_with":
            return (lambda v: cf(v).startswith(parts)), operand
        return (lambda v: cf(v).endswith(parts)), operand
    if op == "matches":
        patterns = operand if isinstance(operand, list) else [operand]
        try:
            compiled = [compile_regex(p) for p in patterns]
        except RegexRejected as exc:
            raise BadCondition(str(exc)) from None
        return (lambda v: any(r.search(v) is not None for r in compiled)), operand
    if op == "empty":
        if not isinstance(operand, bool):
            raise BadCondition(f"'empty' takes true or false, got {operand!r}")
        return (lambda v: (not v) == operand), operand
    raise AssertionError(op)


def _keywords(operand) -> Keywords:
    mode = "any"
    if isinstance(operand, dict):
        keys = list(operand)
        if len(keys) != 1 or keys[0] not in ("any", "all"):
            raise BadCondition(f"keywords takes a list, or {{any: [...]}} / {{all: [...]}}; got keys {keys}")
        mode = keys[0]
        operand = operand[mode]
    words = operand if isinstance(operand, list) else [operand]
    if not words:
        raise BadCondition("'keywords' needs at least one keyword")
    for kw in words:
        why = check_keyword(kw)
        if why:
            raise BadCondition(why)
    return Keywords([str(w) for w in words], mode)


def _weekday(v: str) -> str:
    day = _WEEKDAY_NAMES.get(v)
    if day is None:
        raise BadCondition(f"unknown weekday {v!r}{suggest(v, _WEEKDAY_NAMES)}; use mon, tue, … sun")
    return day


def _int(v, op) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BadCondition(f"'{op}' needs a number, got {v!r}")
    return v


def _int_test(op: str, operand):
    if op == "equals":
        n = _int(operand, op)
        return lambda v: v == n
    if op == "in":
        values = frozenset(_int(x, op) for x in (operand if isinstance(operand, list) else [operand]))
        return lambda v: v in values
    if op == "between":
        if not isinstance(operand, list) or len(operand) != 2:
            raise BadCondition("'between' takes two numbers [LOW, HIGH] (HIGH excluded)")
        lo, hi = (_int(x, op) for x in operand)
        if lo <= hi:
            return lambda v: lo <= v < hi
        return lambda v: v >= lo or v < hi  # wraps around, e.g. hour between [17, 8]
    n = _int(operand, op)
    return {"gt": lambda v: v > n, "gte": lambda v: v >= n, "lt": lambda v: v < n, "lte": lambda v: v <= n}[op]


# -- nodes -----------------------------------------------------------------------------------
@dataclass
class Result:
    ok: bool
    text: str
    children: list


class Leaf:
    __slots__ = ("field", "op", "shown", "kind", "get", "test", "keywords", "fn", "trigger")

    def __init__(self, field, op, shown, kind, get, test, keywords=None):
        self.field, self.op, self.shown, self.kind = field, op, shown, kind
        self.get, self.test, self.keywords = get, test, keywords
        self.fn = test  # the fast path: ctx -> bool
        self.trigger = None  # ("kw"|"rx", field, bank ids): the rule needs one of these hits

    def __call__(self, ctx: Context) -> bool:
        return self.test(ctx)

    def describe(self) -> str:
        return f"{self.field} {self.op} {_show(self.shown)}"

    def explain(self, ctx: Context) -> Result:
        ok = self.test(ctx)
        if self.keywords is not None:
            found = self.keywords.found(Tokens(_joined(self.get(ctx))))
            value = f"found {_show(found)}" if found else "none found"
        else:
            value = f"value {_show(self.get(ctx))}"
        return Result(ok, f"{self.describe()}: {value}", [])


def _all(fns):
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns
        return lambda ctx: a(ctx) and b(ctx)

    def every(ctx):
        for f in fns:
            if not f(ctx):
                return False
        return True
    return every


def _any(fns):
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns
        return lambda ctx: a(ctx) or b(ctx)

    def some(ctx):
        for f in fns:
            if f(ctx):
                return True
        return False
    return some


class All:
    __slots__ = ("children", "fn")
    name = "all"

    def __init__(self, children):
        self.children = tuple(children)
        self.fn = _all(tuple(c.fn for c in self.children)) if self.children else (lambda ctx: True)

    def __call__(self, ctx) -> bool:
        for c in self.children:
            if not c(ctx):
                return False
        return True

    def explain(self, ctx) -> Result:
        kids = [c.explain(ctx) for c in self.children]
        return Result(all(k.ok for k in kids), self.name, kids)


class Any(All):
    __slots__ = ()
    name = "any"

    def __init__(self, children):
        self.children = tuple(children)
        self.fn = _any(tuple(c.fn for c in self.children)) if self.children else (lambda ctx: False)

    def __call__(self, ctx) -> bool:
        for c in self.children:
            if c(ctx):
                return True
        return False

    def explain(self, ctx) -> Result:
        kids = [c.explain(ctx) for c in self.children]
        return Result(any(k.ok for k in kids), self.name, kids)


class Not:
    __slots__ = ("child", "fn")

    def __init__(self, child):
        self.child = child
        f = child.fn
        self.fn = lambda ctx: not f(ctx)

    def __call__(self, ctx) -> bool:
        return not self.child(ctx)

    def explain(self, ctx) -> Result:
        kid = self.child.explain(ctx)
        return Result(not kid.ok, "not", [kid])


class Always:
    fn = staticmethod(lambda ctx: True)

    def __call__(self, ctx) -> bool:
        return True

    def explain(self, ctx) -> Result:
        return Result(True, "no conditions (always)", [])


def _joined(value) -> str:
    return " ".join(value) if isinstance(value, list) else (value or "")


def trigger_of(node):
    """A bank lookup the condition cannot hold without (None: evaluate it every time).

    A keyword or regex leaf, alone or as one of the parts of an `all`, is such a trigger:
    `route` evaluates a rule only when its trigger fired on the message.
    """
    if isinstance(node, Leaf):
        return node.trigger
    if type(node) is All:
        for child in node.children:
            t = trigger_of(child)
            if t is not None:
                return t
    return None


def _show(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    if isinstance(v, str):
        return repr(v if len(v) <= 60 else v[:57] + "...")
    return repr(v)


# -- compiling -------------------------------------------------------------------------------
class Compiler:
    """Turns the YAML of a rule's `if:` into nodes, collecting every problem with its line."""

    COMBINATORS = ("all", "any", "not")

    def __init__(self, config: Config, fname: str, problems: list[Problem], bank=None, kwbank=None):
        from tix.rules.text import KeywordBank, RegexBank

        self.config, self.fname, self.problems = config, fname, problems
        self.bank = bank if bank is not None else RegexBank()
        self.kwbank = kwbank if kwbank is not None else KeywordBank()
        self.uses_contact = False

    def problem(self, line, message) -> None:
        self.problems.append(Problem(self.fname, line, message))

    def compile(self, node, line):
        if node is None:
            return Always()
        if isinstance(node, list):
            return All(self._list(node, line, "all"))
        if not isinstance(node, dict):
            self.problem(line, f"a condition must be a mapping like 'subject: {{keywords: [refund]}}', got {node!r}")
            return None
        parts = []
        for key, value in node.items():
            kline = node.line_of(key) if hasattr(node, "line_of") else line
            part = self._entry(str(key), value, kline)
            if part is not None:
                parts.append(part)
        return parts[0] if len(parts) == 1 else All(parts)

    def _list(self, items, line, what):
        if not isinstance(items, list) or not items:
            self.problem(line, f"'{what}' takes a non-empty list of conditions")
            return []
        out = []
        lines = getattr(items, "lines", [line] * len(items))
        for item, iline in zip(items, lines, strict=True):
            c = self.compile(item, iline)
            if c is not None:
                out.append(c)
        return out

    def _entry(self, key: str, value, line):
        if key == "all":
            return All(self._list(value, line, "all"))
        if key == "any":
            return Any(self._list(value, line, "any"))
        if key == "not":
            child = self.compile(value, line)
            return Not(child) if child is not None else None
        return self._field(key, value, line)

    def _field(self, name: str, value, line):
        resolved = resolve_field(name, self.config)
        if isinstance(resolved, str):
            self.problem(line, resolved)
            return None
        if name.startswith("contact."):
            self.uses_contact = True
        kind, getter = resolved
        if isinstance(value, dict):
            leaves = []
            for op, operand in value.items():
                oline = value.line_of(op) if hasattr(value, "line_of") else line
                leaf = self._leaf(name, kind, getter, str(op), operand, oline)
                if leaf is not None:
                    leaves.append(leaf)
            if not value:
                self.problem(line, f"field {name!r} needs an operator, e.g. {{equals: VALUE}}")
            return leaves[0] if len(leaves) == 1 else (All(leaves) if leaves else None)
        op = "in" if isinstance(value, list) and kind != BOOL else "equals"
        return self._leaf(name, kind, getter, op, value, line)

    def _leaf(self, name, kind, getter, op, operand, line):
        allowed = OPS_BY_KIND[kind]
        if op not in allowed:
            if op in ALL_OPS:
                self.problem(line, f"operator {op!r} does not apply to {name} (a {kind} field); "
                                   f"use: {', '.join(allowed)}")
            else:
                self.problem(line, f"unknown operator {op!r}{suggest(op, ALL_OPS)}; operators: {', '.join(allowed)}")
            return None
        try:
            return self._build(name, kind, getter, op, operand)
        except BadCondition as exc:
            self.problem(line, f"{name} {op}: {exc}")
            return None

    def _build(self, name, kind, getter, op, operand) -> Leaf:
        if kind == BOOL:
            if not isinstance(operand, bool):
                raise BadCondition(f"takes true or false, got {operand!r}")
            return Leaf(name, op, operand, kind, getter, lambda c: getter(c) == operand)
        if kind == INT:
            t = _int_test(op, operand)
            return Leaf(name, op, operand, kind, getter, lambda c: t(getter(c)))
        message_field = not name.startswith("ticket.")  # ticket fields change during a run
        if op == "keywords":
            kw = _keywords(operand)
            shown = kw.keywords if kw.mode == "any" else {"all": kw.keywords}
            if not message_field:
                return Leaf(name, op, shown, kind, getter, lambda c: kw.test(Tokens(_joined(getter(c)))), kw)
            k = self.kwbank.add(name, kw)
            leaf = Leaf(name, op, shown, kind, getter, lambda c: k in c.kwhits(name, getter), kw)
            leaf.trigger = ("kw", name, (k,))
            return leaf
        if op == "matches" and kind == STR and message_field:
            patterns = operand if isinstance(operand, list) else [operand]
            if not patterns or not all(isinstance(p, str) and p for p in patterns):
                raise BadCondition("takes a regular expression (or a list of them)")
            try:
                ids = [self.bank.add(name, p) for p in patterns]
            except RegexRejected as exc:
                raise BadCondition(str(exc)) from None
            if len(ids) == 1:
                i = ids[0]
                leaf = Leaf(name, op, operand, kind, getter, lambda c: i in c.hits(name, getter))
            else:
                leaf = Leaf(name, op, operand, kind, getter, lambda c: not c.hits(name, getter).isdisjoint(ids))
            leaf.trigger = ("rx", name, tuple(ids))
            return leaf
        t, shown = _str_test(op, operand, name)
        if kind == STR and op in ("equals", "in"):  # the common case, one call less per test
            want = t.want
            if op == "equals":
                return Leaf(name, op, shown, kind, getter, lambda c: cf(getter(c)) == want)
            return Leaf(name, op, shown, kind, getter, lambda c: cf(getter(c)) in want)
        if kind == LIST:
            if op == "empty":
                return Leaf(name, op, shown, kind, getter, lambda c: (not getter(c)) == operand)
            return Leaf(name, op, shown, kind, getter, lambda c: any(t(v) for v in getter(c)))
        return Leaf(name, op, shown, kind, getter, lambda c: t(getter(c)))
