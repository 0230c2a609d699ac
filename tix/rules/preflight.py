"""Render every template the rules use, before a customer's message does (`tix config check`).

`tix rules check` already knows that each template exists and compiles. A template can still
fail when it renders: a misspelt variable (templates are strict), a filter used wrongly.
Here each auto-reply and notification of every rule is rendered with the context `tix
route` gives it, for sample messages on email and on WhatsApp, arriving inside and outside
business hours (both branches of `{% if business_hours %}`). A template that renders for at
least one channel is fine (a WhatsApp-only template may use `message.wa_type`); one that
renders for none is a problem at the rule's action, `rules/FILE:LINE: …`.
"""
from __future__ import annotations

from datetime import datetime

from tix.errors import Problem
from tix.rules.conditions import Context
from tix.rules.engine import load
from tix.store.fold import empty_ticket
from tix.store.log import utcnow
from tix.templates import TemplateFailed

SAMPLE = {
    "email": {"channel": "email", "from": "pelanggan@example.com", "from_name": "Sari Pelanggan",
              "to": ["support@example.co.id"], "cc": [], "subject": "Pesanan INV-1001 belum sampai",
              "text": "Halo, pesanan saya INV-1001 belum sampai.", "attachments": [], "auto": False,
              "auto_reason": None, "language": "id", "inbox": "support@example.co.id"},
    "whatsapp": {"channel": "whatsapp", "from": "6281234567890", "from_name": "Sari Pelanggan", "to": [], "cc": [],
                 "subject": "", "text": "Halo, pesanan saya belum sampai", "attachments": [], "auto": False,
                 "auto_reason": None, "language": "id", "inbox": "6281100001111", "wa_type": "text"},
}


def sample_context(rt, ruleset, channel: str, arrived: datetime) -> Context:
    """A routing context for a sample new ticket on `channel`, arriving at `arrived` (aware)."""
    msg = dict(SAMPLE[channel])
    ticket = empty_ticket(1042)
    ticket.update(subject=msg["subject"] or "WhatsApp", channel=channel, status="new", priority="normal",
                  inbox=msg["inbox"], contact=12)
    contact = {"id": 12, "name": msg["from_name"], "emails": ["pelanggan@example.com"],
               "phones": ["6281234567890"], "fields": "{}", "merged_into": None}
    return Context(msg, ticket, contact, "new", arrived, rt.site, ruleset.bank, ruleset.kwbank)


def sample_times(rt, now: datetime) -> list[datetime]:
    """One time inside and one outside business hours, near `now` (fewer when the calendar has none)."""
    hours = rt.site.hours
    t = now.timestamp()
    spans = hours.calendar.intervals(t, t + 14 * 86400)
    out = []
    if spans:
        start, end = spans[0]
        out.append(datetime.fromtimestamp((start + end) / 2, now.tzinfo))
        if end < t + 14 * 86400 and not hours.is_open(datetime.fromtimestamp(end + 60, now.tzinfo)):
            out.append(datetime.fromtimestamp(end + 60, now.tzinfo))
    return out or [now]


def _parts(action) -> list[tuple[str, str]]:
    """("file", NAME) and ("text", SOURCE) an action renders."""
    out = []
    if getattr(action, "template", None):
        out.append(("file", action.template))
    for attr in ("subject", "body"):
        if getattr(action, attr, None):
            out.append(("text", getattr(action, attr)))
    return out


def template_problems(store, now: datetime | None = None) -> list[Problem]:
    """Every rule template that renders on no channel, as `rules/FILE:LINE: rule 'x': templates/…` problems."""
    from tix.rules.explain import _runtime

    ruleset = load(store)
    now = now or utcnow()
    rt = _runtime(store, store.read(), now, fresh=set())
    times = sample_times(rt, now)
    problems = []
    for rule in ruleset.rules:
        for action in rule.actions:
            parts = _parts(action)
            if not parts:
                continue
            errors = {ch: _render_errors(rt, ruleset, rule, parts, ch, times) for ch in SAMPLE}
            if all(errors.values()):
                problems.append(Problem(rule.file, getattr(action, "line", 0) or rule.line,
                                        f"rule {rule.name!r}: {errors['email'][0]}"))
    return problems


def _render_errors(rt, ruleset, rule, parts, channel: str, times) -> list[str]:
    errors = []
    for arrived in times:
        tctx = rt.template_context(rule, sample_context(rt, ruleset, channel, arrived))
        for kind, value in parts:
            try:
                if kind == "file":
                    rt.templates.render(value, tctx)
                else:
                    rt.templates.render_string(value, tctx)
            except TemplateFailed as exc:
                errors.append(str(exc))
    return errors
