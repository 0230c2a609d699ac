"""The durable outbox: every customer-facing message is written first, then sent,
then marked sent.

`queue(batch, ticket_row, channel, text, …)` composes the message with the channel's
composer (`COMPOSERS`), writes it under `messages/<channel>/out/…` and emits, in the
caller's batch, a `message.sent` event with `data.outbox = ID` and `data.state =
"queued"` (the ticket's first-response time is set by that event unless `auto`).
`flush(store)` sends every queued item through the channel's sender (`SENDERS`) and
records `outbox.sent` or `outbox.failed` (attempt, next retry with exponential backoff,
`permanent`), each naming the ticket and the outbox id. A failed send stays queued and
is retried by the next `tix fetch` or `tix outbox flush`; after `MAX_ATTEMPTS`, or on a
permanent error, it is given up and a `ticket.note` (kind `send_failed`) says so.

Senders: `send_item(store, item) -> dict`. The item is the `message.sent` data plus
`id` (outbox id), `ticket` and `attempts`; it holds `raw` (the stored file), `to`,
`cc`, `from`, `message_id` and `payload` (what the composer returned). A sender raises
`SendTemporary`, `SendPermanent` or `ChannelStopped` (tix.errors); an optional module
function `finish()` is called once after a flush (to close connections).

Composers: `compose(store, reader, ticket_row, text, template=None) -> dict` (the
payload), raising `UsageError` when the message may not be sent (e.g. no address, or
WhatsApp outside the 24 h window). A composer module may provide `render(payload, auto,
outbox_id, ticket=…, x_loop=…, now=…) -> bytes`; otherwise the payload is stored as JSON.

Auto-replies (`auto=True`) to machine addresses (mailer-daemon, no-reply, our own) are
suppressed (`{"state": "suppressed"}`, nothing written), and they are capped per recipient per
24 hours (`outbound.auto_reply_cap`, default 3) for every caller: over the cap, `queue` returns
`{"state": "capped"}` and writes nothing.
"""
from __future__ import annotations

import importlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import orjson

from tix.errors import ChannelStopped, SendPermanent, SendTemporary, UsageError
from tix.store.log import iso, utcnow

SENDERS = {"email": "tix.channels.smtp:send_item", "whatsapp": "tix.channels.whatsapp_send:send_item"}
COMPOSERS = {"email": "tix.channels.smtp:compose", "whatsapp": "tix.channels.whatsapp_send:compose"}
EXT = {"email": "eml"}
MAX_ATTEMPTS = 12
BACKOFF_FIRST = 60  # seconds; doubled per attempt
BACKOFF_MAX = 6 * 3600
DEFAULT_AUTO_REPLY_CAP = 3


def _load(target: str):
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def _index(store):
    from tix.channels.smtp import _index as idx

    return idx(store)


def auto_reply_cap(config) -> int:
    out = config.section("outbound", {}) or {}
    ar = config.section("auto_reply", {}) or {}
    value = out.get("auto_reply_cap", ar.get("cap") if isinstance(ar, dict) else None)
    return DEFAULT_AUTO_REPLY_CAP if value is None else int(value)


def queue(batch, ticket_row: dict, channel: str, body_text: str, *, actor: str | None = None, auto: bool = False,
          subject: str | None = None, template: str | None = None, extra: dict | None = None) -> dict:
    """Compose and queue one outgoing message in `batch`; returns the `message.sent` data.

    Raises UsageError (nothing written) when the channel is unknown or its composer refuses.
    """
    store = batch.store
    if channel not in COMPOSERS:
        raise UsageError(f"cannot send on channel {channel!r}; channels: {', '.join(COMPOSERS)}")
    try:
        compose = _load(COMPOSERS[channel])
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"channel {channel!r} has no composer yet ({exc})") from None
    payload = compose(store, batch.reader, ticket_row, body_text, template)
    if subject:
        payload["subject"] = subject
    raw_to = payload.get("to") or []
    to = [str(a).lower() for a in ([raw_to] if isinstance(raw_to, str) else raw_to)]
    now = utcnow()
    if auto and _machine_address(batch.store.config, to):
        # RFC 3834: never answer a machine automatically (it may answer back: a mail loop)
        return {"state": "suppressed", "ticket": ticket_row["number"], "to": to, "auto": True}
    if auto and _over_cap(batch, to, now):
        return {"state": "capped", "ticket": ticket_row["number"], "to": to, "auto": True}
    oid = f"o{now.strftime('%Y%m%d%H%M%S')}{secrets.token_hex(4)}"
    rel = _write(store, channel, oid, payload, auto, ticket_row["number"], now)
    data = {"outbox": oid, "state": "queued", "channel": channel, "message_id": payload.get("message_id"),
            "from": payload.get("from"), "to": to, "cc": payload.get("cc") or [], "subject": payload.get("subject"),
            "text": body_text, "raw": rel, "auto": bool(auto), "template": template, "payload": payload}
    if extra:
        data.update(extra)
    batch.emit("message.sent", ticket=ticket_row["number"], data=data, actor=actor)
    if auto:
        _pending_auto(batch).extend(to)
    return {**data, "ticket": ticket_row["number"]}


def _pending_auto(batch) -> list[str]:
    """Recipients of auto-replies queued in this batch (not yet in the log), kept on the batch."""
    pend = getattr(batch, "_tix_auto_pending", None)
    if pend is None:
        pend = []
        batch._tix_auto_pending = pend
    return pend


def _machine_address(config, to: list[str]) -> bool:
    from tix.channels.mailparse import is_auto_submitted
    from tix.ingest import own_addresses

    own = own_addresses(config)
    return any("@" in a and is_auto_submitted({"From": a}, own) for a in to)


def _over_cap(batch, to: list[str], now: datetime) -> bool:
    cap = auto_reply_cap(batch.store.config)
    idx = _index(batch.store)
    since = iso(now - timedelta(days=1))
    pending = _pending_auto(batch)
    return any(idx.auto_count(addr, since) + pending.count(addr) >= cap for addr in to)


def _write(store, channel: str, oid: str, payload: dict, auto: bool, ticket: int, now: datetime) -> str:
    from tix.ingest import _durable_write

    mod = importlib.import_module(COMPOSERS[channel].split(":")[0])
    render = getattr(mod, "render", None)
    if render is not None:
        x_loop = (store.config.section("outbound", {}) or {}).get("x_loop")
        body = render(payload, auto, oid, ticket=ticket, x_loop=x_loop, now=now)
        ext = EXT.get(channel, "eml")
    else:
        body = orjson.dumps(payload, option=orjson.OPT_INDENT_2)
        ext = "json"
    d = now.strftime("%Y/%m/%d")
    rel = f"messages/{channel}/out/{d}/{oid}.{ext}"
    dirs: set = set()
    _durable_write(store.root / rel, body, dirs)
    from tix.store.log import fsync_dir

    for p in dirs:
        fsync_dir(p)
    return rel


@dataclass
class FlushReport:
    sent: int = 0
    failed: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)


def backoff(attempt: int) -> int:
    return min(BACKOFF_FIRST * 2 ** max(attempt - 1, 0), BACKOFF_MAX)


def flush(store, now: datetime | None = None, force: bool = False) -> FlushReport:
    """Send every queued item whose retry time has come (all of them with `force`)."""
    from tix.channels.index import MailIndex

    rep = FlushReport()
    now = (now or utcnow()).astimezone(timezone.utc)
    stopped: dict[str, str] = {}
    used: set[str] = set()
    with store.writing(actor="system", via="tix outbox flush") as batch:
        index = MailIndex.load(store)
        for oid, item in index.pending():
            channel = item.get("channel") or "email"
            due = item.get("next_retry")
            if (due and due > iso(now) and not force) or channel in stopped:
                rep.pending += 1
                continue
            try:
                sender = _load(SENDERS[channel])
            except (KeyError, ImportError, AttributeError) as exc:
                stopped[channel] = f"no sender for channel {channel!r} ({exc})"
                rep.pending += 1
                rep.errors.append(f"outbox {oid}: {stopped[channel]}")
                continue
            used.add(channel)
            _send_one(store, batch, index, oid, item, sender, now, rep, stopped)
            batch.flush()  # every outcome durable before the next send
        index.save(store, upto=batch)
    for channel in used:
        finish = getattr(importlib.import_module(SENDERS[channel].split(":")[0]), "finish", None)
        if finish is not None:
            finish()
    return rep


def _send_one(store, batch, index, oid, item, sender, now, rep: FlushReport, stopped: dict) -> None:
    data = item["data"]
    ticket = item.get("ticket")
    attempt = int(item.get("attempts") or 0) + 1
    full = {**data, "id": oid, "ticket": ticket, "attempts": attempt - 1}
    try:
        result = sender(store, full) or {}
    except SendPermanent as exc:
        _failed(batch, index, oid, item, attempt, str(exc), now, permanent=True)
        rep.failed += 1
        rep.errors.append(f"outbox {oid} (#{ticket}): gave up: {exc}")
        return
    except (SendTemporary, ChannelStopped) as exc:
        give_up = attempt >= MAX_ATTEMPTS
        _failed(batch, index, oid, item, attempt, str(exc), now, permanent=give_up)
        rep.failed += 1
        if not give_up:
            rep.pending += 1
        if isinstance(exc, ChannelStopped):
            stopped[item.get("channel") or "email"] = str(exc)
        rep.errors.append(f"outbox {oid} (#{ticket}): {exc}" + (" (gave up)" if give_up else ""))
        return
    ev = batch.emit("outbox.sent", ticket=ticket, ts=iso(now),
                    data={"outbox": oid, "channel": item.get("channel"), "attempt": attempt,
                          **{k: v for k, v in result.items() if isinstance(v, (str, int, float, list, type(None)))}})
    index.apply(ev)
    rep.sent += 1


def _failed(batch, index, oid, item, attempt, error, now, permanent: bool) -> None:
    ticket = item.get("ticket")
    error = " ".join(str(error).split())[:500]
    data = {"outbox": oid, "channel": item.get("channel"), "attempt": attempt, "error": error,
            "permanent": permanent}
    if not permanent:
        data["next_retry"] = iso(now + timedelta(seconds=backoff(attempt)))
    ev = batch.emit("outbox.failed", ticket=ticket, ts=iso(now), data=data)
    index.apply(ev)
    if permanent and ticket is not None:
        batch.emit("ticket.note", ticket=ticket, ts=iso(now),
                   data={"kind": "send_failed", "outbox": oid,
                         "body": f"Could not send the reply {oid} after {attempt} attempt(s): {error}"})


def items(store) -> list[dict]:
    """The queued (unsent) items, oldest first, for `tix outbox list`."""
    from tix.channels.index import MailIndex

    out = []
    for oid, item in MailIndex.load(store).pending():
        d = item["data"]
        out.append({"id": oid, "ticket": item.get("ticket"), "channel": item.get("channel"),
                    "to": ",".join(d.get("to") or []), "subject": d.get("subject"), "queued_at": item["queued_at"],
                    "attempts": item.get("attempts", 0), "next_retry": item.get("next_retry"),
                    "error": item.get("error")})
    return out
