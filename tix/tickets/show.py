"""`tix show`: one ticket, its customer, the conversation, and (optionally) the audit trail."""
from __future__ import annotations

from zoneinfo import ZoneInfo

import orjson

from tix import access
from tix.errors import NotFound
from tix.model import fmt_phone
from tix.store import Store
from tix.store.log import parse_ts
from tix.tickets.attachments import safe_name

CONVERSATION = ("ticket.created", "message.received", "message.sent", "ticket.note", "whatsapp.system",
                "whatsapp.preference", "whatsapp.call")


def ticket_view(store: Store, number: int) -> dict:
    """Everything `tix show` prints, as data: ticket, contact, conversation, events."""
    reader = store.read()
    row = reader.ticket(number)
    if row is None:
        raise NotFound(f"ticket #{number} not found")
    access.check_ticket(row)  # an agent reads the tickets of their teams
    from tix.tickets.merge import conversation, other_open_tickets

    contact = reader.contact(row["contact"]) if row.get("contact") else None
    events = store.events_for(ticket=number)
    folded = conversation(store, number, events)
    media = {(e["data"].get("message"), e["data"].get("media_id")): e["data"]  # WhatsApp downloads
             for e in folded if e["type"] == "message.media" and e.get("data")}
    return {"ticket": dict(row), "contact": dict(contact) if contact else None, "events": events,
            "conversation": [e for e in folded if e["type"] in CONVERSATION], "media": media,
            "other_open": other_open_tickets(reader, row)}


def show_ticket(store: Store, number: int, history: bool = False, fmt: str = "text", out=None,
                redact: bool = False) -> None:
    """Print one ticket as text or JSON; `redact`: names, addresses, phones and patterns masked (tix.redact)."""
    view = ticket_view(store, number)
    if redact:
        from tix.redact import Redactor

        view = Redactor.for_store(store).learn(view).value(view)
    if fmt == "json":
        data = {"ticket": view["ticket"], "contact": view["contact"], "conversation": view["conversation"],
                "other_open_tickets": view["other_open"]}
        if history:
            data["history"] = view["events"]
        out.write(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
        return
    tz = ZoneInfo(store.config.setting("timezone"))
    t = view["ticket"]
    out.write(f"#{t['number']}  {t['subject']}\n")
    fields = orjson.loads(t.get("fields") or "{}")
    line = [f"status: {t['status']}", f"priority: {t['priority']}", f"channel: {t['channel'] or '-'}",
            f"team: {t['team'] or '-'}", f"assignee: {t['assignee'] or '-'}"]
    out.write("  " + "   ".join(line) + "\n")
    extra = []
    if t.get("category"):
        extra.append(f"category: {t['category']}")
    if t.get("tags"):
        extra.append("tags: " + ", ".join(t["tags"]))
    extra += [f"{k}: {v}" for k, v in fields.items()]
    if extra:
        out.write("  " + "   ".join(extra) + "\n")
    out.write(f"  created: {_local(t['created_at'], tz)}   updated: {_local(t['updated_at'], tz)}")
    if t.get("first_response_at"):
        out.write(f"   first response: {_local(t['first_response_at'], tz)}")
    out.write("\n")
    c = view["contact"]
    if c:
        who = c.get("name") or "(no name)"
        ids = [*(c.get("emails") or []), *(fmt_phone(p) for p in c.get("phones") or [])]
        out.write(f"  customer: {who} <{', '.join(ids)}> (contact {c['id']})\n")
    if view["other_open"]:
        out.write("  other open tickets: " + ", ".join(
            f"#{o['number']} {o['status']} {clip_words(' '.join(str(o['subject'] or '').split()), 40)!r}"
            for o in view["other_open"]) + "\n")
    out.write("\n")
    shown = [0]  # attachments so far: `tix attachment N INDEX` counts them in this order
    for ev in view["conversation"]:
        if ev["ticket"] != number and ev["type"] != "ticket.created":
            ev = {**ev, "merged_from": ev["ticket"]}
        _conversation_entry(ev, tz, out, shown, view["media"], number)
    if history:
        out.write("History:\n")
        _history(view["events"], tz, out)


def _history(events: list[dict], tz, out) -> None:
    """One line per event; the time, actor, command and type columns as wide as their widest entry."""
    rows = [(_local(ev["ts"], tz), str(ev.get("actor") or "-"), str(ev.get("via") or "-"), ev["type"],
             _summary(ev) + (f"  why: {ev['why']}" if ev.get("why") else "")) for ev in events]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(4)]
    for r in rows:
        out.write(("  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]).rstrip()
                  + "\n")


def _conversation_entry(ev: dict, tz, out, shown: list | None = None, media: dict | None = None,
                        number: int | None = None) -> None:
    data = ev.get("data") or {}
    # a message's own time (Meta's timestamp: when the customer sent it), else when it was recorded
    when = _local(data.get("sent_at") or ev["ts"], tz)
    if ev["type"] == "ticket.created":
        out.write(f"--- {when}  opened by {ev['actor']} via {data.get('channel') or '-'}\n\n")
        return
    if ev["type"] == "ticket.note":
        kind = data.get("kind")
        label = "customer (logged)" if kind == "intake" else f"note ({kind})" if kind else "internal note"
        out.write(f"--- {when}  {label} by {ev['actor']}\n{data.get('body', '').rstrip()}\n\n")
        return
    if ev["type"].startswith("whatsapp."):  # identity change, preference, call: a notice in the conversation
        out.write(f"--- {when}  WhatsApp notice\n{str(data.get('text') or '').rstrip()}\n\n")
        return
    sender = fmt_phone(data.get("from")) if data.get("channel") == "whatsapp" else data.get("from")
    who = data.get("from_name") or sender or ev["actor"]
    ref = f"  [msg {ev['seq']}]" + (f" (from #{ev['merged_from']})" if ev.get("merged_from") else "")
    if ev["type"] == "message.received":
        out.write(f"--- {when}  from {who} <{sender or ''}> via {data.get('channel', '')}{ref}\n")
    elif data.get("from_phone"):
        out.write(f"--- {when}  reply sent from the WhatsApp Business app (phone) via whatsapp{ref}\n")
    else:
        state = "auto-reply" if data.get("auto") else "reply"
        out.write(f"--- {when}  {state} by {ev['actor']} via {data.get('channel', '')}{ref}\n")
    text = data.get("text") or ""
    out.write(text.rstrip() + "\n")
    for att in data.get("attachments") or ():
        if shown is not None and isinstance(att, dict):
            shown[0] += 1
        got = {**att, **((media or {}).get((data.get("message"), att.get("media_id"))) or {})} \
            if isinstance(att, dict) and att.get("media_id") else att
        _attachment(got, shown[0] if shown is not None else None, number, out)
    _details(data, out)
    out.write("\n")


def _attachment(att: dict, index: int | None, number: int | None, out) -> None:
    """One attachment: name, type, size and (WhatsApp media) whether it is stored yet, and
    how to save it (`tix attachment N INDEX`)."""
    name = safe_name(att.get("name"), index, att.get("type")) if index is not None else att.get("name")
    parts = [str(name or "(unnamed)"), str(att.get("type"))]
    if att.get("size") is not None:
        parts.append(f"{att['size']} bytes")
    status = att.get("status")
    if status is not None:  # WhatsApp media: downloaded by `tix fetch` after the message
        parts.append({"pending": "not downloaded yet (tix fetch retries)",
                      "expired": "expired: Meta keeps media 7 days"}.get(status, status))
    elif att.get("size") is None:
        parts.append("size unknown")
    out.write(f"    [attachment{'' if index is None else f' {index}'}: {', '.join(parts)}]\n")
    stored = att.get("blob") or (status is None and att.get("sha256"))
    if stored and index is not None and number is not None:
        out.write(f"      save: tix attachment {number} {index} -o FILE\n")


def _details(data: dict, out) -> None:
    """What a WhatsApp message carries besides its text: errors, flow answers, an order, a
    product, an ad it came from."""
    if data.get("forwarded"):
        out.write(f"    (forwarded{' many times' if data['forwarded'] == 'frequently' else ''})\n")
    for err in data.get("errors") or ():
        if isinstance(err, dict):
            details = (err.get("error_data") or {}).get("details") if isinstance(err.get("error_data"), dict) else None
            out.write(f"    ! WhatsApp error {err.get('code')}: {err.get('title') or err.get('message') or ''}"
                      f"{' - ' + str(details) if details else ''}\n")
    flow = data.get("flow")
    if isinstance(flow, dict):
        out.write(f"    flow reply{' (' + str(flow['name']) + ')' if flow.get('name') else ''}:\n")
        for key, value in (flow.get("fields") or {}).items():
            out.write(f"      {key}: {_plain(value)}\n")
    order = data.get("order")
    if isinstance(order, dict):
        out.write(f"    order (catalog {order.get('catalog_id') or '-'}):\n")
        for item in order.get("items") or ():
            out.write(f"      {item.get('sku')}  x{item.get('quantity')}  {item.get('price')} "
                      f"{item.get('currency') or ''}".rstrip() + "\n")
    product = data.get("product")
    if isinstance(product, dict):
        out.write(f"    about product {product.get('sku')} (catalog {product.get('catalog_id')})\n")
    ref = data.get("referral")
    if isinstance(ref, dict):
        head = f'"{ref["headline"]}" ' if ref.get("headline") else ""
        out.write(f"    came from {ref.get('source_type') or 'a referral'} {head}<{ref.get('source_url') or '-'}>\n")


def _summary(ev: dict) -> str:
    data = ev.get("data") or {}
    if ev["type"] == "ticket.updated":
        return ", ".join(f"{k}: {data.get('old', {}).get(k)} -> {v}" for k, v in (data.get("set") or {}).items())
    if ev["type"] == "ticket.tagged":
        return " ".join([*(f"+{t}" for t in data.get("add", [])), *(f"-{t}" for t in data.get("remove", []))])
    if ev["type"] == "ticket.created":
        return f"subject: {data.get('subject')!r}"
    if ev["type"] in ("message.received", "message.sent"):
        return f"{data.get('channel', '')} {data.get('message') or ''}".strip()
    if ev["type"].startswith("whatsapp.") and data.get("text"):
        return clip_words(" ".join(str(data["text"]).split()), 100)
    if ev["type"] == "ticket.note":
        return clip_words(" ".join((data.get("body") or "").split()), 60)
    return clip_words(", ".join(f"{k}: {_plain(v)}" for k, v in data.items()), 100)


def _plain(value) -> str:
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def clip_words(text: str, width: int) -> str:
    """`text` cut to at most `width` characters at a word boundary, with `…` when cut."""
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > width // 2 else cut).rstrip(" ,;:") + "…"


def _local(value, tz) -> str:
    if value is None:
        return "-"
    return parse_ts(value).astimezone(tz).strftime("%Y-%m-%d %H:%M")
