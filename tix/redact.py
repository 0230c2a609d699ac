"""Redaction for sharing (issue 14, item 5): `--redact` on `tix report`, `tix list`, `tix show`.

One function masks the data before any renderer sees it, so terminal, JSON, CSV, Markdown
and HTML (charts included) show the same masks: `Redactor.value(data)` walks dicts, lists
and strings and replaces

- email addresses with `[email]`, phone numbers (9 to 15 digits, with spaces, dots, dashes
  or brackets between them, an optional leading +) with `[phone]`;
- each pattern of `redact: patterns:` in tix.yaml (label: regex) with `[label]`, e.g.
  `order: 'INV-\\d+'` turns `INV-1001` into `[order]`;
- whole values of fields that name or identify a person (`name`, `from_name`, `emails`,
  `phones`, `from`, `to`, `wa_user_id`, … and the fields listed under `redact: fields:`)
  with `[name]`, `[email]`, `[phone]` or `[FIELD]`;
- the names of the customers in the output (and each word of them, 3 letters or more)
  wherever they appear in other text, e.g. a subject or a message, with `[name]`.

Times, ticket numbers, statuses, teams, agents and counts are kept: a redacted report still
adds up. Redaction is a help for sharing, not anonymisation: a free-text message can still
tell who wrote it (an address written out in words, a name no field carries).

    redact:
      patterns:
        order: 'INV-\\d{4,}'
        awb: '\\bJNE\\d{10,}\\b'
      fields: [order_id]
"""
from __future__ import annotations

import re

import orjson

from tix.errors import Problem

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w+:.-])[+(]?\d(?:[\s().-]{0,2}\d){8,14}(?![\w:])")
_DATE = re.compile(r"\d{4}-\d\d-\d\d|\d\d?[./-]\d\d?[./-]\d{4}")  # 2026-11-24, 24/11/2026: a date, not a phone


def _phone(m: re.Match) -> str:
    return m.group(0) if _DATE.match(m.group(0)) else "[phone]"

NAME_KEYS = frozenset({"name", "from_name", "to_name", "customer", "customer_name", "contact_name",
                       "display_name"})
EMAIL_KEYS = frozenset({"email", "emails", "cc", "reply_to"})
PHONE_KEYS = frozenset({"phone", "phones", "wa_id", "wa_user_id", "from_user_id"})
# What is never personal and never masked: times, numbers, the helpdesk's own words.
KEEP_KEYS = frozenset({"ts", "seq", "number", "id", "ticket", "contact", "type", "status", "priority",
                       "channel", "team", "assignee", "agent", "actor", "via", "category", "tags", "inbox",
                       "message", "outbox", "kind", "auto"})


def validate_section(node, fname: str) -> list[Problem]:
    """`redact:` in tix.yaml: `patterns` (label: regex) and `fields` (names); every problem at once."""
    from tix.config import check_keys

    line = getattr(node, "line", None)
    if not isinstance(node, dict):
        return [Problem(fname, line, "redact must be a mapping with patterns: and fields:")]
    problems = check_keys(node, ("patterns", "fields"), fname, "redact", listing="keys")
    patterns = node.get("patterns") or {}
    if not isinstance(patterns, dict):
        problems.append(Problem(fname, _line(node, "patterns"), "redact: patterns must map a label to a regex"))
        patterns = {}
    for label, regex in patterns.items():
        at = _line(patterns, label)
        if not re.fullmatch(r"[A-Za-z_][\w-]*", str(label)):
            problems.append(Problem(fname, at, f"redact: pattern label {label!r} must be a word (e.g. order)"))
        try:
            if not isinstance(regex, str) or re.compile(regex).match(""):
                problems.append(Problem(fname, at, f"redact: pattern {label!r} must be a regex that matches "
                                                   f"something, not {regex!r}"))
        except re.error as exc:
            problems.append(Problem(fname, at, f"redact: pattern {label!r}: not a regex: {exc}"))
    fields = node.get("fields") or []
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        problems.append(Problem(fname, _line(node, "fields"), "redact: fields must be a list of field names"))
    return problems


def _line(node, key):
    return node.line_of(key) if hasattr(node, "line_of") else getattr(node, "line", None)


class Redactor:
    """Masks personal data in anything tix prints; see the module docstring for what and how."""

    def __init__(self, patterns: dict[str, str] | None = None, fields=(), names=()):
        self.patterns = [(re.compile(rx), f"[{label}]") for label, rx in (patterns or {}).items()]
        self.fields = frozenset(fields)
        self._names: set[str] = set()
        self._name_rx: re.Pattern | None = None
        self.learn_names(names)

    @classmethod
    def for_store(cls, store) -> Redactor:
        """The store's redactor (`redact:` in tix.yaml); ConfigError (exit 2) if that section is wrong."""
        from tix.config import CONFIG_NAME
        from tix.errors import ConfigError

        section = store.config.section("redact", {}) or {}
        problems = validate_section(section, str(store.root / CONFIG_NAME))
        if problems:
            raise ConfigError(problems)
        return cls(section.get("patterns") or {}, section.get("fields") or [])

    # -- names ------------------------------------------------------------------------------
    def learn_names(self, names) -> Redactor:
        """Mask these names (and each word of them, 3 letters or more) wherever they appear."""
        for name in names:
            name = " ".join(str(name or "").split())
            if not name or EMAIL.fullmatch(name) or PHONE.fullmatch(name):
                continue
            self._names.add(name)
            self._names.update(w for w in re.findall(r"[^\W\d_][\w'-]*", name) if len(w) >= 3)
        self._name_rx = (re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in sorted(self._names, key=len,
                                                                                         reverse=True))
                                    + r")(?!\w)", re.IGNORECASE) if self._names else None)
        return self

    def learn(self, data) -> Redactor:
        """Learn the names the data itself carries in name fields (a contact's, a sender's)."""
        found: list[str] = []
        _collect(data, found)
        return self.learn_names(found)

    def learn_contacts(self, reader, rows: list[dict]) -> Redactor:
        """Learn the names of the contacts of these ticket rows (their `contact` ids), in one read."""
        ids = {r["contact"] for r in rows if r.get("contact")}
        return self.learn_names(c.get("name") for c in reader.contacts(ids).values())

    # -- the one redaction -------------------------------------------------------------------
    def text(self, text: str) -> str:
        for rx, mask in self.patterns:
            text = rx.sub(mask, text)
        text = EMAIL.sub("[email]", text)
        text = PHONE.sub(_phone, text)
        if self._name_rx is not None:
            text = self._name_rx.sub("[name]", text)
        return text

    def value(self, value, key: str | None = None):
        """`value` with personal data masked; `key` is the field it is the value of (decides whole masks)."""
        if isinstance(value, dict):
            return {k: self.value(v, k) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            out = [self.value(v, key) for v in value]
            return tuple(out) if isinstance(value, tuple) else out
        if key in KEEP_KEYS or not isinstance(value, str) or not value:
            return value  # times, numbers, statuses, ids: never personal
        whole = self._whole_mask(key)
        if whole is not None:
            return whole
        if key == "fields" and value.startswith("{"):  # custom fields, stored as a JSON object
            return orjson.dumps(self.value(orjson.loads(value))).decode()
        return self.text(value)

    def _whole_mask(self, key: str | None) -> str | None:
        if key is None:
            return None
        if key in NAME_KEYS:
            return "[name]"
        if key in EMAIL_KEYS:
            return "[email]"
        if key in PHONE_KEYS:
            return "[phone]"
        if key in self.fields:
            return f"[{key}]"
        return None

    def rows(self, rows: list[dict]) -> list[dict]:
        return [self.value(r) for r in rows]


def _collect(data, out: list[str], key: str | None = None) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            _collect(v, out, k)
    elif isinstance(data, (list, tuple)):
        for v in data:
            _collect(v, out, key)
    elif isinstance(data, str) and key in NAME_KEYS:
        out.append(data)


def redact_report(result, redactor: Redactor):
    """A report result with every cell and parameter passed through `redactor` (same object shape)."""
    import dataclasses

    sections = []
    for s in result.sections:
        redactor.learn([dict(zip(s.columns, r, strict=True)) for r in s.rows])
    for s in result.sections:
        rows = [tuple(redactor.value(v, c) for c, v in zip(s.columns, r, strict=True)) for r in s.rows]
        sections.append(dataclasses.replace(s, rows=rows))
    params = dataclasses.replace(result.params, values=redactor.value(dict(result.params.values)),
                                 shown=redactor.value(dict(result.params.shown)))
    return dataclasses.replace(result, sections=sections, params=params)
