"""Why rules did (or would) do what they do: `tix route --explain N`, `tix rules test MSG`.

Both evaluate the rules on one message with a dry batch (nothing is written) and print,
for every rule in order, whether it matched, the condition tree with `+` (held) and `-`
(failed) for each part, and the actions it would take::

    Ticket #7: new ticket, email from rina@example.id, arrived Tue 2026-11-24 10:15 WIB (business hours); not routed yet
    rules/20-classify.yaml:12 refund: MATCH
      + any
        + subject keywords ['refund', 'pengembalian dana']: found ['refund']
        - body keywords ['refund', 'pengembalian dana']: none found
      -> set category=refund, priority=high
    rules/30-assign.yaml:3 vip: not evaluated (rule 'refund' stopped)
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import orjson

from tix.errors import NotFound, UsageError
from tix.rules.conditions import Context, Result
from tix.rules.engine import INTAKE_TYPES, DryBatch, RouteResult, Runtime, apply_rules, build_message, load
from tix.store import Store
from tix.store.fold import empty_ticket
from tix.store.log import parse_local, parse_ts, parse_ts_or_none, utcnow


def explain_rules(rt: Runtime, ruleset, ctx: Context) -> list[str]:
    lines: list[str] = []
    stopped_by = None
    for rule in ruleset.rules:
        head = f"{rule.where} {rule.name}"
        if stopped_by:
            lines.append(f"{head}: not evaluated (rule {stopped_by!r} stopped)")
            continue
        if not rule.applies(ctx.when):
            lines.append(f"{head}: skipped (when: {rule.when}; "
                         f"this is a {'new ticket' if ctx.when == 'new' else 'reply'})")
            continue
        res = rule.condition.explain(ctx)
        if isinstance(rt.assigner, _Replay):
            rt.assigner.rule = rule.name
        lines.append(f"{head}: {'MATCH' if res.ok else 'no match'}")
        lines += _tree(res, 1)
        if not res.ok:
            continue
        one = RouteResult(dry_run=True)
        single = type(ruleset)(rules=[rule], uses_contact=ruleset.uses_contact, bank=ruleset.bank,
                               kwbank=ruleset.kwbank)
        apply_rules(rt, single, ctx, one)
        lines += [f"  -> {ln.text}" for ln in one.lines if ln.text != "stop"]
        lines += [f"  !! {err}" for err in one.errors]
        if rule.stop:
            lines.append("  -> stop")
            stopped_by = rule.name
    if not ruleset.rules:
        lines.append("(no rules in rules/)")
    return lines


def _tree(res: Result, depth: int) -> list[str]:
    out = [f"{'  ' * depth}{'+' if res.ok else '-'} {res.text}"]
    for kid in res.children:
        out += _tree(kid, depth + 1)
    return out


def _header(ctx: Context, label: str) -> str:
    who = ctx.msg.get("from") or "unknown sender"
    channel = ctx.msg.get("channel") or ctx.ticket.get("channel") or "?"
    hours = "business hours" if ctx.site.in_business_hours(ctx.arrived) else "outside business hours"
    when = ctx.local.strftime("%a %Y-%m-%d %H:%M %Z")
    kind = "new ticket" if ctx.when == "new" else "reply"
    return f"{label}: {kind}, {channel} from {who}, arrived {when} ({hours})"


def explain(store: Store, number: int, now: datetime | None = None) -> list[str]:
    """Lines saying, for ticket `number`, what each rule did or would do and why."""
    ruleset = load(store)
    reader = store.read()
    ticket = reader.ticket(number)
    if ticket is None:
        raise NotFound(f"ticket #{number} not found")
    ticket = dict(ticket)
    events = store.events_for(ticket=number)
    routed_seq = int(ticket.get("routed_seq") or 0)
    intake_seq = int(ticket.get("intake_seq") or 0)
    recorded: dict[str, str] = {}
    if intake_seq > routed_seq:
        cutoff, state = routed_seq, "not routed yet"
    else:
        uptos = [int(e["data"].get("upto", e["seq"])) for e in events if e["type"] == "ticket.routed"]
        cutoff, state = (uptos[-2] if len(uptos) >= 2 else 0), "routed (showing its last routing)"
        ticket = _as_it_was(events, number, intake_seq) or ticket
        recorded = _assigned_by_rules(events, intake_seq)
    intake = [(e["seq"], e["ts"], e["type"], e.get("data") or {}) for e in events
              if e["type"] in INTAKE_TYPES and cutoff < e["seq"] <= intake_seq]
    when, msg, seq, arrived = build_message(intake, ticket)
    contact = reader.contact(ticket["contact"]) if ticket.get("contact") is not None else None
    rt = _runtime(store, reader, now, fresh=set())
    routed_at = [e["ts"] for e in events if e["type"] == "ticket.routed"]
    if routed_at and state != "not routed yet":  # act_within as it was when the ticket was routed
        rt.act_from = parse_ts(routed_at[-1]) - (rt.now - rt.act_from)
    if recorded:
        rt.assigner = _Replay(rt.assigner, recorded)
    ctx = Context(msg, ticket, contact, when, arrived, rt.site, ruleset.bank, ruleset.kwbank)
    ctx.seq = seq
    return [f"{_header(ctx, f'Ticket #{number}')}; {state}", *explain_rules(rt, ruleset, ctx)]


def _assigned_by_rules(events: list[dict], intake_seq: int) -> dict[str, str]:
    """rule name -> the agent it assigned in the ticket's last routing (from the recorded events).

    Round robin and least loaded depend on state that has moved on since (issue 15: the
    explanation named the agent the next ticket would get); what was done is in the log.
    """
    routed = [e["seq"] for e in events if e["type"] == "ticket.routed"]
    if not routed:
        return {}
    lo = max([intake_seq, *(s for s in routed if s < routed[-1])])
    out = {}
    for e in events:
        by_rule = str(e.get("actor", "")).startswith("rule:")
        if lo < e["seq"] <= routed[-1] and e["type"] == "ticket.updated" and by_rule:
            agent = (e.get("data") or {}).get("set", {}).get("assignee")
            if agent:
                out[e["actor"][5:]] = agent
    return out


class _Replay:
    """The Assigner of an explanation: a rule picks the agent it recorded, others as usual."""

    def __init__(self, assigner, recorded: dict[str, str]):
        self._assigner, self._recorded, self.rule = assigner, recorded, None

    def pick(self, *args, **kwargs):
        if self.rule in self._recorded:
            return self._recorded[self.rule]
        return self._assigner.pick(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._assigner, name)


def _as_it_was(events: list[dict], number: int, upto: int) -> dict | None:
    """The ticket as routing saw it: its events folded up to the message routed."""
    from tix.store.fold import State

    state = State().apply_all(e for e in events if e["seq"] <= upto)
    return state.tickets.get(number)


def _runtime(store, reader, now, fresh) -> Runtime:
    con = reader.connect()
    rt = Runtime(store, DryBatch(store, reader, via="tix route --explain"), True,
                 now or utcnow(), lambda: con)
    rt.replies.fresh = fresh
    return rt


# -- tix rules test MESSAGE ------------------------------------------------------------------
def test_message(store: Store, path: str | Path, reply: bool = False, at: datetime | None = None) -> list[str]:
    """What the rules would do to the message in `path` (.eml, or .json for WhatsApp)."""
    ruleset = load(store)
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    msg, arrived = (parse_json(raw, path) if path.suffix.lower() == ".json" else parse_eml(raw))
    if at is not None:
        arrived = at
    reader = store.read()
    ticket = empty_ticket(0)
    ticket.update(subject=msg.get("subject") or "", channel=msg.get("channel"), inbox=msg.get("inbox"),
                  status="new")
    contact = _find_contact(reader, msg)
    if contact:
        ticket["contact"] = contact["id"]
    rt = _runtime(store, reader, None, fresh={0})
    rt.act_from = min(rt.act_from, arrived or rt.now)  # a message tried here is as if it arrived now
    ctx = Context(msg, ticket, contact, "reply" if reply else "new", arrived or rt.now, rt.site,
                  ruleset.bank, ruleset.kwbank)
    return [_header(ctx, str(path)), *explain_rules(rt, ruleset, ctx)]


def _find_contact(reader, msg: dict) -> dict | None:
    from tix.tickets import normalize_phone

    sender = str(msg.get("from") or "").strip().lower()
    if not sender:
        return None
    con = reader.connect()
    if "@" in sender:
        cur = con.execute("SELECT * FROM contacts WHERE list_contains(emails, ?) LIMIT 1", [sender])
    else:
        cur = con.execute("SELECT * FROM contacts WHERE list_contains(phones, ?) LIMIT 1", [normalize_phone(sender)])
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row, strict=True)) if row else None


def parse_eml(raw: bytes) -> tuple[dict, datetime | None]:
    """The message fields rules see, from an RFC 5322 message, parsed as email intake parses it
    (the one parser, tix.channels.mail.parse: same addresses, same auto-reply detection)."""
    from tix.channels.mail.parse import Unparseable, parse

    try:
        p = parse(raw)
    except Unparseable as exc:
        raise UsageError(f"not a mail message: {exc}") from None
    delivered = p.headers.get("Delivered-To") if p.headers is not None else None
    msg = {"channel": "email", "from": p.from_addr, "from_name": p.from_name, "to": p.to, "cc": p.cc,
           "subject": p.subject, "text": p.text_full or p.text, "attachments": [a.name for a in p.attachments],
           "auto": p.auto_reason is not None, "auto_reason": p.auto_reason, "language": None,
           "inbox": (str(delivered).strip().lower() if delivered else None) or (p.to[0] if p.to else None)}
    return msg, parse_ts_or_none(p.date)


def parse_json(raw: bytes, path: Path) -> tuple[dict, datetime | None]:
    """A WhatsApp Cloud API webhook payload, or a message object with the fields rules see."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: expected a JSON object")
    if "entry" in doc:
        return _webhook(doc, path)
    msg = dict(doc)
    msg.setdefault("channel", "whatsapp")
    arrived = msg.pop("received_at", None) or msg.pop("ts", None)
    return msg, _when(arrived)


def _webhook(doc: dict, path: Path) -> tuple[dict, datetime | None]:
    try:
        value = doc["entry"][0]["changes"][0]["value"]
        m = value["messages"][0]
    except (KeyError, IndexError, TypeError):
        raise UsageError(f"{path}: a WhatsApp webhook payload without a message "
                         "(entry[0].changes[0].value.messages[0])") from None
    wa_type = m.get("type") or "text"
    part = m.get(wa_type) if isinstance(m.get(wa_type), dict) else {}
    if wa_type != "text":
        text = part.get("body") or part.get("caption") or ""
    else:
        text = (m.get("text") or {}).get("body", "")
    profile = ((value.get("contacts") or [{}])[0].get("profile") or {})
    attachments = [wa_type] if wa_type in ("image", "document", "audio", "video", "sticker") else []
    msg = {"channel": "whatsapp", "from": str(m.get("from") or ""), "from_name": profile.get("name"),
           "to": [], "cc": [], "subject": "", "text": text, "attachments": attachments, "auto": False,
           "auto_reason": None, "language": None, "wa_type": wa_type,
           "inbox": (value.get("metadata") or {}).get("display_phone_number")}
    return msg, _when(m.get("timestamp"))


def _when(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) or str(value).isdigit():
        return datetime.fromtimestamp(int(value), timezone.utc)
    return parse_ts_or_none(value)


def parse_at(text: str, tz: str) -> datetime:
    """`--at "2026-11-24 20:00"` in the site time zone -> aware UTC datetime (see `parse_local`)."""
    try:
        return parse_local(text, tz)
    except ValueError as exc:
        raise UsageError(f"--at: {exc}") from None


test_message.__test__ = False  # a library function, not a pytest test
