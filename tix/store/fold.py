"""Current state as a pure function of the events: `fold(rows, events)`.

This is the only place that knows how an event changes a ticket or a contact. Event
types it does not know (SLA steps, outbox bookkeeping, …) still bump the ticket's
`updated_at`/`last_seq` when they name a ticket, and are otherwise ignored here: they
live in the `events` view for whoever needs them.
"""
from __future__ import annotations

from typing import Iterable

from tix.model import CONTACT_COLUMNS, OPEN_STATUSES, TICKET_COLUMNS

# Tags are a set, kept sorted. Custom fields are a JSON object with sorted keys; a null
# value removes the key. `tix.store.sqlfold` implements the same fold in SQL.

# Bookkeeping events that are not a change to the ticket as people see it.
_QUIET = frozenset({"ticket.routed", "outbox.sent", "outbox.failed", "message.status"})


def empty_ticket(number: int) -> dict:
    row = dict.fromkeys(TICKET_COLUMNS)
    row.update(number=number, tags=[], fields="{}", messages_in=0, messages_out=0,
               notes=0, reopened=0, routed_seq=0, intake_seq=0, last_seq=0)
    return row


def empty_contact(cid: int) -> dict:
    row = dict.fromkeys(CONTACT_COLUMNS)
    row.update(id=cid, emails=[], phones=[], fields="{}")
    return row


class State:
    """Tickets and contacts folded so far (only those touched, when folding a tail)."""

    def __init__(self, tickets: dict | None = None, contacts: dict | None = None):
        self.tickets: dict[int, dict] = tickets if tickets is not None else {}
        self.contacts: dict[int, dict] = contacts if contacts is not None else {}
        self.max_ticket = max(self.tickets, default=0)
        self.max_contact = max(self.contacts, default=0)
        self.seq = 0

    def apply(self, ev: dict) -> None:
        self.seq = ev["seq"]
        kind = ev["type"]
        number = ev.get("ticket")
        if number is not None:
            _apply_ticket(self, kind, number, ev)
        cid = ev.get("contact")
        if cid is not None and kind.startswith("contact."):
            _apply_contact(self, kind, cid, ev)

    def apply_all(self, events: Iterable[dict]) -> "State":
        for ev in events:
            self.apply(ev)
        return self


def fold(events: Iterable[dict], base: State | None = None) -> State:
    """Fold events, in log order, onto `base` (or an empty state)."""
    return (base or State()).apply_all(events)


def _apply_ticket(state: State, kind: str, number: int, ev: dict) -> None:
    t = state.tickets.get(number)
    ts = ev["ts"]
    data = ev.get("data") or {}
    if kind == "ticket.created" or t is None:
        if t is None:
            t = state.tickets[number] = empty_ticket(number)
            t["created_at"] = ts
            t["status"] = "new"
            t["priority"] = "normal"
            if number > state.max_ticket:
                state.max_ticket = number
        if kind == "ticket.created":
            _created(t, data, ev)
            return
    if kind not in _QUIET:
        t["updated_at"] = ts
        t["last_seq"] = ev["seq"]
    handler = _TICKET_HANDLERS.get(kind)
    if handler is not None:
        handler(t, data, ev)


def _created(t: dict, data: dict, ev: dict) -> None:
    for key, value in data.items():
        if key == "fields":
            value = _loads(value) if isinstance(value, str) else value
            t["fields"] = _json({k: v for k, v in (value or {}).items() if v is not None})
        elif key == "tags":
            t["tags"] = sorted(set(value or ()))
        elif key in TICKET_COLUMNS:
            t[key] = value
    t["created_at"] = t["updated_at"] = ev["ts"]
    t["last_seq"] = t["intake_seq"] = ev["seq"]
    if t["status"] in ("resolved", "closed"):
        t["resolved_at"] = ev["ts"]
        if t["status"] == "closed":
            t["closed_at"] = ev["ts"]


def _updated(t: dict, data: dict, ev: dict) -> None:
    for key, value in (data.get("set") or {}).items():
        if key.startswith("fields."):
            fields = _loads(t["fields"])
            name = key[7:]
            if value is None:
                fields.pop(name, None)
            else:
                fields[name] = value
            t["fields"] = _json(fields)
        elif key == "status":
            _status(t, value, ev["ts"])
        elif key in TICKET_COLUMNS:
            t[key] = value


def _status(t: dict, new: str, ts: str) -> None:
    old = t["status"]
    t["status"] = new
    if new == "resolved":
        t["resolved_at"] = ts
        t["closed_at"] = None
    elif new == "closed":
        t["closed_at"] = ts
        if t["resolved_at"] is None:
            t["resolved_at"] = ts
    elif new in OPEN_STATUSES:
        if old in ("resolved", "closed"):
            t["reopened"] += 1
        t["resolved_at"] = None
        t["closed_at"] = None


def _tagged(t: dict, data: dict, ev: dict) -> None:
    tags = set(t["tags"] or ())
    tags.update(data.get("add") or ())
    tags.difference_update(data.get("remove") or ())
    t["tags"] = sorted(tags)


def _note(t: dict, data: dict, ev: dict) -> None:
    t["notes"] += 1


def _received(t: dict, data: dict, ev: dict) -> None:
    t["messages_in"] += 1
    t["last_customer_at"] = ev["ts"]
    t["intake_seq"] = ev["seq"]


def _sent(t: dict, data: dict, ev: dict) -> None:
    t["messages_out"] += 1
    if data.get("auto"):
        return  # auto-replies are not a response by a person
    t["last_agent_at"] = ev["ts"]
    if t["first_response_at"] is None:
        t["first_response_at"] = ev["ts"]


def _routed(t: dict, data: dict, ev: dict) -> None:
    t["routed_seq"] = data.get("upto", ev["seq"])


_TICKET_HANDLERS = {
    "ticket.updated": _updated,
    "ticket.tagged": _tagged,
    "ticket.note": _note,
    "message.received": _received,
    "message.sent": _sent,
    "ticket.routed": _routed,
}


def _apply_contact(state: State, kind: str, cid: int, ev: dict) -> None:
    c = state.contacts.get(cid)
    data = ev.get("data") or {}
    if c is None:
        c = state.contacts[cid] = empty_contact(cid)
        c["created_at"] = ev["ts"]
        if cid > state.max_contact:
            state.max_contact = cid
    c["updated_at"] = ev["ts"]
    if kind == "contact.created":
        c["name"] = data.get("name")
        c["emails"] = _uniq(data.get("emails") or [])
        c["phones"] = _uniq(data.get("phones") or [])
        c["fields"] = _json(data.get("fields") or {})
    elif kind == "contact.updated":
        for key, value in (data.get("set") or {}).items():
            if key == "name":
                c["name"] = value
            elif key.startswith("fields."):
                fields = _loads(c["fields"])
                if value is None:
                    fields.pop(key[7:], None)
                else:
                    fields[key[7:]] = value
                c["fields"] = _json(fields)
        c["emails"] = _edit(c["emails"], data.get("add_emails"), data.get("remove_emails"))
        c["phones"] = _edit(c["phones"], data.get("add_phones"), data.get("remove_phones"))
    elif kind == "contact.merged":
        c["merged_into"] = data.get("into")
    elif kind == "contact.erased":
        c.update(name=None, emails=[], phones=[], fields=_json({"erased": ev["ts"]}))


def _edit(values: list, add, remove) -> list:
    out = [v for v in values if v not in set(remove or ())]
    for v in add or ():
        if v not in out:
            out.append(v)
    return out


def _uniq(values) -> list:
    out: list = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _json(value) -> str:
    import orjson

    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _loads(text: str | None) -> dict:
    import orjson

    return orjson.loads(text) if text else {}
