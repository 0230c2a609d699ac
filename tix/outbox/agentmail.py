"""Mail to agents who work from their own mail client (`mail_client: true` under `agents:`).

`queue_agent_mail(store)` runs in `tix fetch` (after the intake, before the outbox is sent)
and in `tix outbox flush`. It reads the events appended since its last run (its position
is `state/agent-mail.json`, a cache: without it, the events of the last `act_within`) and
queues one notification per ticket and agent, through the one outbox, when:

- the ticket was assigned to an agent with `mail_client: true` who still has it, or
- a customer message (not an automatic one) arrived on a ticket such an agent has,

and the ticket is not resolved or closed, and the event is not older than the setting
`act_within` nor imported history (DESIGN invariant 9, as for every notification). The
mail is `templates/agent_mail.txt.j2` (the one template environment) with the ticket, its
customer, the agent, why it is sent and the last `agent_mail.summary` messages and notes;
its Reply-To carries the reply token (`tix.channels.mail.agentauth`) naming the ticket, the
agent and the seq of the ticket's last event the mail shows. The agent's reply comes back through `tix fetch`
(`tix.ingest.agentmail`). Each mail is keyed `agentmail:TICKET:AGENT:SEQ` (the seq of the
assignment or customer message that caused it): running twice queues nothing twice.
"""
from __future__ import annotations

from datetime import timedelta
from email.utils import formataddr
from zoneinfo import ZoneInfo

import orjson

from tix.channels.mail import agentauth
from tix.errors import UsageError
from tix.outbox.enqueue import notify
from tix.store.files import atomic_write
from tix.store.log import Position, iso, parse_ts, segment_name, seq_before, utcnow

CURSOR = ("state", "agent-mail.json")
CONVERSATION = ("message.received", "message.sent", "ticket.note")
PASSIVE = ("reaction", "revoke")  # WhatsApp reactions and deletions are no news (tix.ingest.whatsapp)
TEXT_LIMIT = 2000  # characters of one message in the summary


def queue_agent_mail(store, now=None, via: str = "tix fetch") -> int:
    """Queue the mail agents should get for what happened since the last run; how many."""
    config = store.config
    agents = {a.name: a for a in agentauth.mail_agents(config).values()}
    if not agents:
        return 0
    spec = agentauth.settings(config)
    if "@" not in spec["reply_to"]:
        raise UsageError("agent_mail: no reply address (set agent_mail.reply_to or outbound.from)")
    now = now or utcnow()
    floor = iso(now - timedelta(seconds=config.act_within()))
    queued = 0
    with store.writing(actor="system", via=via) as batch:
        todo, end = _scan(store, _cursor(store, floor), floor)
        mail = []
        rows = batch.reader.tickets(todo.keys()) if todo else {}
        for number, seen in sorted(todo.items()):
            row = rows.get(number)
            agent = agents.get(row.get("assignee")) if row else None
            if agent is not None and row["status"] not in ("resolved", "closed") and (agent.name in seen["assigned"]
                                                                    or seen["customer"]):
                mail.append((dict(row), agent, "assigned" if agent.name in seen["assigned"] else "customer", seen))
        if mail:
            key = agentauth.secret(store, create=True)
            history = conversations(store, [m[0] for m in mail])
            for row, agent, reason, seen in mail:
                ctx = context(store, batch.reader, row, agent, reason, history[row["number"]], int(spec["summary"]))
                queued += _queue_one(store, batch, ctx, agent, seen, key, spec)
    if end is not None:
        atomic_write(store.path(*CURSOR), orjson.dumps({"segment": end[0].segment, "offset": end[0].offset,
                                                        "seq": end[1]}), mode=0o600)
    return queued


def _cursor(store, floor: str) -> Position:
    """Where the last run stopped (if the log was not rewritten since: an erasure); else the
    start of the segment of `floor`. Starting earlier than needed only costs reading: the
    notifications' keys keep anything from being queued twice."""
    try:
        saved = orjson.loads(store.path(*CURSOR).read_bytes())
        pos = Position(str(saved["segment"]), int(saved["offset"]))
        if seq_before(store.log.dir / pos.segment, pos.offset) == saved["seq"]:
            return pos
    except (OSError, ValueError, KeyError, TypeError):  # a missing or damaged cache
        pass
    return Position(segment_name(floor), 0)


def _scan(store, start: Position, floor: str) -> tuple[dict, tuple | None]:
    """{ticket: {"seq", "trigger", "assigned": {agents}, "customer": bool}} for the events after
    `start` (`seq`: the ticket's last event; `trigger`: its last assignment or customer message),
    and (position, seq) of the last event."""
    todo: dict[int, dict] = {}
    end = None
    for ev, pos in store.log.read(start):
        end = (pos, ev.get("seq"))
        number = ev.get("ticket")
        if number is None or str(ev.get("ts") or "") < floor or (ev.get("data") or {}).get("imported"):
            continue
        seen = todo.setdefault(number, {"seq": 0, "trigger": 0, "assigned": set(), "customer": False})
        seq = int(ev.get("seq") or 0)
        seen["seq"] = max(seen["seq"], seq)
        data = ev.get("data") or {}
        kind = ev.get("type")
        if kind == "ticket.created" and data.get("assignee"):
            seen["assigned"].add(data["assignee"])
        elif kind == "ticket.updated" and (data.get("set") or {}).get("assignee"):
            seen["assigned"].add(data["set"]["assignee"])
        elif kind == "message.received" and not data.get("auto") and data.get("wa_type") not in PASSIVE:
            seen["customer"] = True
        else:
            continue
        seen["trigger"] = seq
    return {n: s for n, s in todo.items() if s["assigned"] or s["customer"]}, end


def _queue_one(store, batch, ctx: dict, agent, seen: dict, key: bytes, spec: dict) -> int:
    """One mail: its token names the ticket's last event (the collision rule's starting point),
    its key the event that caused it (a scan run again from further back queues nothing twice)."""
    from tix import templates

    row = ctx["ticket"]
    number, seq = row["number"], seen["seq"]
    tag = agentauth.token(key, number, agent.name, seq)
    error = None
    try:
        body = templates.render(templates.environment(store), str(spec["template"]), ctx)
    except templates.TemplateFailed as exc:
        body, error = "", str(exc)
    prefix = str(store.config.setting("subject_tag"))
    subject = f"[{prefix}{number}] {row.get('subject') or ''}".strip()
    notify(batch, "email", formataddr((agent.display, agent.email)), subject, body,
           payload={"reply_to": agentauth.reply_address(spec["reply_to"], tag),
                    "agent_mail": {"ticket": number, "agent": agent.name, "seq": seq, "reason": ctx["reason"]}},
           key=f"agentmail:{number}:{agent.name}:{seen['trigger']}", ticket=number, error=error)
    return 1


def conversations(store, rows: list[dict]) -> dict[int, list[dict]]:
    """The messages and notes of these tickets, in log order: one pass backwards over the log,
    down to the creation of the oldest of them (recent tickets cost only the recent log)."""
    out: dict[int, list[dict]] = {row["number"]: [] for row in rows}
    left = set(out)  # tickets whose `ticket.created` is not reached yet
    for ev in store.log.read_backward():
        number = ev.get("ticket")
        if number in out:
            if ev.get("type") in CONVERSATION:
                out[number].append(ev)
            elif ev.get("type") == "ticket.created":
                left.discard(number)
                if not left:
                    break
    return {n: evs[::-1] for n, evs in out.items()}


def context(store, reader, row: dict, agent, reason: str, events: list[dict], summary: int) -> dict:
    """What `agent_mail.txt.j2` gets (see templates/agent_mail.txt.j2)."""
    contact = reader.contact(row["contact"]) if row.get("contact") is not None else None
    tz = ZoneInfo(store.config.setting("timezone"))
    entries = [e for e in (entry(ev, tz) for ev in events) if e is not None]
    last = next((e for e in reversed(entries) if e["kind"] == "customer"), None)
    return {"ticket": {**row, "ref": f"#{row['number']}"}, "contact": dict(contact) if contact else {"name": None},
            "agent": {"login": agent.name, "name": agent.display, "email": agent.email},
            "reason": reason, "message": last, "conversation": entries[-summary:] if summary else [],
            "earlier": max(len(entries) - summary, 0)}


def entry(ev: dict, tz) -> dict | None:
    """One message or note of the conversation as the template shows it."""
    data = ev.get("data") or {}
    if ev["type"] == "message.received":
        if data.get("auto"):
            return None
        kind, who, text = "customer", data.get("from_name") or data.get("from") or "customer", data.get("text")
    elif ev["type"] == "message.sent":
        if data.get("auto"):
            return None
        kind, who, text = "agent", str(ev.get("actor") or "").split(":", 1)[-1], data.get("text")
    else:
        if not data.get("body"):
            return None
        kind, who, text = "note", str(ev.get("actor") or "").split(":", 1)[-1], data.get("body")
    text = str(text or "").strip()
    if len(text) > TEXT_LIMIT:
        text = text[:TEXT_LIMIT] + " …"
    return {"kind": kind, "who": who, "text": text, "at": parse_ts(ev["ts"]).astimezone(tz),
            "channel": data.get("channel"), "seq": ev.get("seq")}


def check_template(store) -> list:
    """`tix config check`: the agent mail template rendered with a sample ticket (when an agent
    works from their mail client), so that a misspelt variable shows now, not in the first mail."""
    from types import SimpleNamespace

    from tix import templates
    from tix.config import CONFIG_NAME, _where
    from tix.errors import Problem
    from tix.store.fold import empty_ticket

    agents = list(agentauth.mail_agents(store.config).values())
    if not agents:
        return []
    spec = agentauth.settings(store.config)
    problems = []
    if "@" not in spec["reply_to"]:
        problems.append(Problem(str(store.root / CONFIG_NAME), store.config.line_of("agent_mail"),
                                "agent_mail: no reply address: set agent_mail.reply_to or outbound.from"))
    row = {**empty_ticket(1042), "subject": "Pesanan INV-1001 belum sampai", "status": "open", "channel": "email",
           "assignee": agents[0].name}
    ts = iso(utcnow())
    sample = [{"seq": 1, "ts": ts, "actor": "channel:support", "type": "message.received", "ticket": 1042,
               "data": {"from": "sari@example.com", "from_name": "Sari", "text": "Paket saya belum sampai.",
                        "channel": "email"}}]
    reader = SimpleNamespace(contact=lambda cid: None)
    for reason in ("assigned", "customer"):
        ctx = context(store, reader, row, agents[0], reason, sample, int(spec["summary"]))
        try:
            templates.render(templates.environment(store), str(spec["template"]), ctx)
        except templates.TemplateFailed as exc:
            problems.append(Problem(*_where(str(exc)), str(exc).split(": ", 1)[-1]))
            break
    return problems
