"""Putting items in the outbox: customer messages, notifications, report mail.

Each function writes in the caller's batch (under the store lock); nothing is sent here.

- `queue(batch, ticket_row, channel, text, …)`: a reply or auto-reply. The channel's
  composer (`COMPOSERS`) makes the payload, raising `UsageError` when the message may not be
  sent (no address, WhatsApp outside the 24 h window); a composer module may provide
  `render(payload, auto, outbox_id, ticket=…, x_loop=…, now=…) -> bytes` (else the payload
  is stored as JSON) under `messages/<channel>/out/…`. Emits `message.sent` (`state:
  queued`). Auto-replies to machine addresses (mailer-daemon, no-reply, our own) are
  suppressed (`{"state": "suppressed"}`, nothing written), and they are capped per recipient
  per 24 hours (`outbound.auto_reply_cap`, default 3): over the cap `{"state": "capped"}`.
- `notify(batch, kind, target, subject, body, …, key=…)`: an internal notification by
  `email` or `webhook`, queued at most once per key (`outbox.queued`).
- `queue_mail(batch, to, subject, raw, …)`: a ready-made email (report mail).

Per-batch state (auto-replies and keys queued in this batch, not yet in the log; the index)
lives in `batch.cache` under `CACHE`; what a `Batch.rollback` took back no longer counts.
"""
from __future__ import annotations

import hashlib
import importlib
import secrets
from datetime import datetime, timedelta

import orjson

from tix.errors import UsageError
from tix.store.files import atomic_write
from tix.store.log import iso, utcnow

COMPOSERS = {"email": "tix.channels.mail.smtp:compose", "whatsapp": "tix.channels.whatsapp.send:compose"}
NOTIFY_KINDS = ("email", "webhook")
EXT = {"email": "eml"}
DEFAULT_AUTO_REPLY_CAP = 3
CACHE = "outbox"  # key of this module's per-batch state in `batch.cache`


def _load(target: str):
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def _cache(batch) -> dict:
    """This module's state for one batch: `auto` ([(event, recipients)] of the auto-replies
    queued in it), `keys` (notification key -> its `outbox.queued` event), `index` (loaded once)."""
    return batch.cache.setdefault(CACHE, {"auto": [], "keys": {}, "index": None})


def new_id(prefix: str, now: datetime) -> str:
    return f"{prefix}{now.strftime('%Y%m%d%H%M%S')}{secrets.token_hex(4)}"


def auto_reply_cap(config) -> int:
    out = config.section("outbound", {}) or {}
    ar = config.section("auto_reply", {}) or {}
    value = out.get("auto_reply_cap", ar.get("cap") if isinstance(ar, dict) else None)
    return DEFAULT_AUTO_REPLY_CAP if value is None else int(value)


# -- customer messages ---------------------------------------------------------------------------
def queue(batch, ticket_row: dict, channel: str, body_text: str, *, actor: str | None = None, auto: bool = False,
          subject: str | None = None, template: str | None = None, extra: dict | None = None,
          attachments=None) -> dict:
    """Compose and queue one message to the customer in `batch`; returns the `message.sent` data
    (plus `ticket`), or `{"state": "suppressed"|"capped", …}` for an auto-reply not sent.

    `attachments`: files checked by `tix.outbox.attachments.load` (WhatsApp: one), stored as
    blobs and named in the item (`attachments`: name, type, size, sha256).

    Raises UsageError (nothing written) when the channel is unknown or its composer refuses.
    """
    store = batch.store
    compose = _compose(channel)
    files = list(attachments or ())
    payload = compose(store, batch.reader, ticket_row, body_text or (files[0].name if files else body_text), template)
    infos = _attach(store, channel, payload, files) if files else None
    if subject:
        payload["subject"] = subject
    raw_to = payload.get("to") or []
    to = [str(a).lower() for a in ([raw_to] if isinstance(raw_to, str) else raw_to)]
    now = utcnow()
    if auto and _machine_address(store.config, to):
        # RFC 3834: never answer a machine automatically (it may answer back: a mail loop)
        return {"state": "suppressed", "ticket": ticket_row["number"], "to": to, "auto": True}
    if auto and _over_cap(batch, to, now):
        return {"state": "capped", "ticket": ticket_row["number"], "to": to, "auto": True}
    oid = new_id("o", now)
    rel = _write(store, channel, oid, payload, auto, ticket_row["number"], now, files)
    data = {"outbox": oid, "state": "queued", "channel": channel, "message_id": payload.get("message_id"),
            "from": payload.get("from"), "to": to, "cc": payload.get("cc") or [], "subject": payload.get("subject"),
            "text": body_text, "raw": rel, "auto": bool(auto), "template": template, "payload": payload}
    if infos:
        data["attachments"] = infos
    if extra:
        data.update(extra)
    ev = batch.emit("message.sent", ticket=ticket_row["number"], data=data, actor=actor)
    if auto:
        _cache(batch)["auto"].append((ev, to))
    return {**data, "ticket": ticket_row["number"]}


def _machine_address(config, to: list[str]) -> bool:
    from tix.channels.mail.parse import is_auto_submitted
    from tix.ingest import own_addresses

    own = own_addresses(config)
    return any("@" in a and is_auto_submitted({"From": a}, own) for a in to)


def _over_cap(batch, to: list[str], now: datetime) -> bool:
    from tix.channels.mail.smtp import _index

    cap = auto_reply_cap(batch.store.config)
    idx = _index(batch.store)
    since = iso(now - timedelta(days=1))
    # the auto-replies of this batch the index cannot see yet: kept, and not committed (it reads those)
    pending = [a for ev, addrs in _cache(batch)["auto"] if batch.kept(ev) and ev["seq"] > batch.committed
               for a in addrs]
    return any(idx.auto_count(addr, since) + pending.count(addr) >= cap for addr in to)


def _attach(store, channel: str, payload: dict, files: list) -> list[dict]:
    from tix.outbox.attachments import store_blobs

    infos = store_blobs(store, files)
    if channel == "whatsapp":
        from tix.channels.whatsapp.send import as_media

        as_media(payload, infos)
    else:
        payload["attachments"] = infos
    return infos


def _write(store, channel: str, oid: str, payload: dict, auto: bool, ticket: int, now: datetime,
           files=()) -> str:
    body, ext = _render(store, channel, oid, payload, auto, ticket, now, files)
    return write_raw(store, channel, oid, body, ext, now)


def _render(store, channel: str, oid: str, payload: dict, auto: bool, ticket: int, now: datetime, files=()):
    """(the bytes stored and sent, their file extension) of a composed message."""
    mod = importlib.import_module(COMPOSERS[channel].split(":")[0])
    render = getattr(mod, "render", None)
    if render is None:
        return orjson.dumps(payload, option=orjson.OPT_INDENT_2), "json"
    x_loop = (store.config.section("outbound", {}) or {}).get("x_loop")
    try:
        extra = {"files": files} if files else {}
        return render(payload, auto, oid, ticket=ticket, x_loop=x_loop, now=now, **extra), EXT.get(channel, "eml")
    except (ValueError, TypeError, UnicodeError) as exc:  # e.g. an address the email library refuses
        raise UsageError(f"cannot make the {channel} message: {' '.join(str(exc).split())}") from None


def preview(store, reader, ticket_row: dict, channel: str, body_text: str, template: str | None = None,
            files=()) -> str:
    """`tix reply --preview`: what `queue` would store for this reply, as text for a person:
    the headers, the body and the attachments (`files`: tix.outbox.attachments.load, checked,
    not stored). Nothing is written, queued or sent."""
    import email
    from email import policy

    compose = _compose(channel)
    files = list(files or ())
    payload = compose(store, reader, ticket_row, body_text or (files[0].name if files else body_text), template)
    if files and channel != "whatsapp":
        payload["attachments"] = [f.info() for f in files]
    body, ext = _render(store, channel, "o-preview", payload, False, ticket_row["number"], utcnow(), files)
    listed = [f"[attachment: {f.name}, {f.type}, {f.size} bytes]" for f in files]
    if ext == "json":
        return "\n".join([body.decode("utf-8"), *listed]) + "\n"
    msg = email.message_from_bytes(body, policy=policy.default)
    lines = [f"{k}: {v}" for k, v in msg.items() if k.lower() not in ("x-tix-outbox", "content-transfer-encoding",
                                                                        "mime-version")]
    part = msg.get_body(("plain",))
    text = part.get_content() if part is not None else ""
    lines += ["", text.replace("\r\n", "\n").rstrip("\n"), ""]
    for att in msg.iter_attachments():
        size = len(att.get_payload(decode=True) or b"")
        lines.append(f"[attachment: {att.get_filename() or '(unnamed)'}, {att.get_content_type()}, {size} bytes]")
    return "\n".join(lines).rstrip("\n") + "\n"


def _compose(channel: str):
    if channel not in COMPOSERS:
        raise UsageError(f"cannot send on channel {channel!r}; channels: {', '.join(COMPOSERS)}")
    try:
        return _load(COMPOSERS[channel])
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"channel {channel!r} has no composer yet ({exc})") from None


def write_raw(store, channel: str, oid: str, body: bytes, ext: str, now: datetime) -> str:
    """Store an outgoing message durably under messages/<channel>/out/; its path in the store."""
    rel = f"messages/{channel}/out/{now.strftime('%Y/%m/%d')}/{oid}.{ext}"
    atomic_write(store.root / rel, body)
    return rel


# -- notifications and other mail ----------------------------------------------------------------
def notification_id(key: str) -> str:
    return "n" + hashlib.sha256(key.encode()).hexdigest()[:16]


def notify(batch, kind: str = "email", target: str = "", subject: str = "", body: str = "",
           payload: dict | None = None, key: str = "", ticket: int | None = None, index=None,
           error: str | None = None) -> str:
    """Queue a notification (an `outbox.queued` event in `batch`); return its id.

    Args:
        batch: events being written under the store lock (`Store.writing()`).
        kind: `email` (target: an address) or `webhook` (target: a URL or `env:VARIABLE`;
            payload `{"slack": true}` asks for a Slack-compatible body).
        key: what it is about; a key already queued (ever) is not queued again and its
            existing id is returned.
        ticket: the ticket it is about, if any (shown in `tix outbox list`).
        index: an `OutboxIndex` the caller keeps across batches (default: one per batch).
        error: the notification could not be made (e.g. its template raised): it is queued
            and failed for good at once, so that it is listed with this reason.
    """
    if kind not in NOTIFY_KINDS:
        raise UsageError(f"unknown notification kind {kind!r}; kinds: {', '.join(NOTIFY_KINDS)}")
    if not key:
        raise UsageError("a notification needs a key (what it is about), so that it is queued once")
    cache = _cache(batch)
    mine = cache["keys"].get(key)
    if mine is not None and batch.kept(mine):
        return mine["data"]["outbox"]
    known = _index(batch, index).keys.get(key)
    if known:
        return known
    oid = notification_id(key)
    data = {"outbox": oid, "purpose": "notification", "kind": kind, "key": key, "target": target,
            "subject": subject, "body": body, "payload": payload or {}}
    if ticket is not None:
        data["ticket"] = ticket
    ev = batch.emit("outbox.queued", data=data)
    if error:
        batch.emit("outbox.failed", data={"outbox": oid, "channel": kind, "attempt": 0, "permanent": True,
                                          "error": " ".join(str(error).split())[:500]})
    cache["keys"][key] = ev
    return oid


def _index(batch, index):
    if index is not None:
        return index
    cache = _cache(batch)
    if cache["index"] is None:
        from tix.outbox.index import OutboxIndex

        cache["index"] = OutboxIndex.load(batch.store)
    return cache["index"]


def queue_mail(batch, to: list[str], subject: str, raw: bytes, message_id: str | None = None,
               purpose: str = "report") -> str:
    """Queue a ready-made email (RFC 5322 bytes, e.g. report mail) to `to`; return its id."""
    now = utcnow()
    oid = new_id("r", now)
    rel = write_raw(batch.store, "email", oid, raw, "eml", now)
    batch.emit("outbox.queued", data={"outbox": oid, "purpose": purpose, "kind": "email", "target": ", ".join(to),
                                      "subject": subject, "body": "", "payload": {}, "raw": rel,
                                      "message_id": message_id})
    return oid
