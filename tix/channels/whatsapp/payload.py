"""Decoding WhatsApp webhook payloads (Cloud API, API-NOTES §1) into the items intake takes in.

A spooled payload (the body of one signed POST, byte for byte) is decoded in two steps:

- `decode(body, settings)` checks the envelope (JSON, `object`, an `entry` list, each with
  a `changes` list) and returns a `Payload`; anything else raises `PayloadError`.
- `Payload.parts()` then yields, change by change, what the payload says: a `Message`
  (one inbound message: its wamid, the idempotency key; the sender's wa_id / business-scoped
  user_id and profile; the business `Number` it came to; the message's own time; and
  `describe(msg)`: text or a `[placeholder]`, attachments, context and the type's own
  data), a `Status` (delivery status of a message tix sent), `MetaErrors` (errors Meta
  reports with no message) or `Skipped` (a change of another field). It raises
  `PayloadError` when it reaches something unusable (a phone_number_id not in tix.yaml, a
  message without id or sender, a malformed message), so intake rolls back what it already
  did with the payload and quarantines it whole.

Messages and statuses of one change come in time order. Nothing here reads or writes the
store: `tix.ingest.whatsapp` turns the parts into contacts, tickets and events.
"""
from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

from tix.channels.base import Undecodable
from tix.channels.whatsapp.config import Number, Settings, digits
from tix.store.log import iso

STATUS_RANK = {"sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 100}


class PayloadError(Undecodable):
    """A spooled payload that cannot be processed (it goes to quarantine/ with this message)."""


@dataclass
class Message:
    """One inbound message (or a `system` notice) as the customer sent it."""

    wamid: str
    kind: str  # the message `type` (text, image, reaction, system, …)
    wa_id: str | None  # the sender's phone (digits); None for a username-only user
    user_id: str | None  # the business-scoped user id (BSUID)
    name: str | None
    username: str | None
    number: Number  # the business number it was sent to
    sent_at: str | None  # the message's own time (UTC ISO), as Meta stamped it
    data: dict  # `describe(msg)`
    system: dict | None = None  # kind `system`: what changed


@dataclass
class Status:
    """A delivery status of a message tix sent (`data` is the `message.status` event's)."""

    wamid: str
    status: str
    data: dict


@dataclass
class MetaErrors:
    """Errors Meta reports in a change without messages (kept once, by `key`)."""

    key: str
    errors: list
    phone_number_id: str


@dataclass
class Skipped:
    """A change of a field other than `messages` (a warning, nothing stored)."""

    field: str


@dataclass
class Payload:
    body: bytes
    payload: dict
    settings: Settings

    @property
    def time(self) -> int:
        """The earliest message or status time (0 when it has none): Meta's retries arrive
        late, so a chunk is applied in this order (API-NOTES §1)."""
        times = [_int(item.get("timestamp")) for value in self._values()
                 for key in ("messages", "statuses") for item in value.get(key) or () if isinstance(item, dict)]
        return min(times, default=0)

    def _values(self) -> Iterator[dict]:
        for entry in self.payload["entry"]:
            for change in entry.get("changes") or ():
                value = change.get("value") if isinstance(change, dict) else None
                if isinstance(value, dict):
                    yield value

    def parts(self) -> Iterator[Message | Status | MetaErrors | Skipped]:
        for entry in self.payload["entry"]:
            for change in entry.get("changes") or ():
                value = change.get("value") if isinstance(change, dict) else None
                if not isinstance(value, dict):
                    raise PayloadError("a change without a value object")
                if change.get("field", "messages") != "messages":
                    yield Skipped(str(change.get("field")))
                    continue
                try:
                    yield from self._change(entry, value)
                except (AttributeError, TypeError, KeyError, ValueError, OverflowError) as exc:
                    # a value of the wrong JSON type somewhere Meta's format has an object or
                    # a list: the payload is malformed, whatever the field (found by fuzzing)
                    raise PayloadError(f"malformed messages change: {type(exc).__name__}: {exc}") from None

    def _change(self, entry: dict, value: dict):
        meta = value.get("metadata") or {}
        pnid = str(meta.get("phone_number_id") or "")
        settings = self.settings
        if settings.numbers and pnid not in settings.numbers:
            raise PayloadError(f"phone_number_id {pnid!r} is not one of whatsapp.numbers in tix.yaml")
        number = settings.number_for(pnid, meta.get("display_phone_number"))
        profiles = value.get("contacts") or []
        msgs = _by_time(value.get("messages"), "message")
        for msg in msgs:
            yield _message(msg, profiles, number)
        for st in _by_time(value.get("statuses"), "status"):
            yield _status(st, pnid)
        if value.get("errors") and not msgs:
            errors = value["errors"]
            key = orjson.dumps([entry.get("id"), pnid, errors], option=orjson.OPT_SORT_KEYS)
            yield MetaErrors(hashlib.sha256(key).hexdigest()[:24], errors, pnid)


def decode(body: bytes, settings: Settings) -> Payload:
    """Check a payload's envelope; raises PayloadError (see the module docstring)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise PayloadError("not a WhatsApp webhook payload (no entry list)")
    if payload.get("object") not in (None, "whatsapp_business_account"):
        raise PayloadError(f"unexpected object {payload.get('object')!r}")
    for entry in payload["entry"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("changes", []), list):
            raise PayloadError("an entry without a changes list")
    return Payload(body, payload, settings)


def _by_time(items, what: str) -> list:
    items = items or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise PayloadError(f"a {what} that is not an object")
    return sorted(items, key=lambda m: _int(m.get("timestamp"))) if len(items) > 1 else items


def _message(msg: dict, profiles: list, number: Number) -> Message:
    wamid = msg.get("id")
    if not isinstance(wamid, str) or not wamid:
        raise PayloadError("a message without an id (wamid)")
    profile = _profile(msg, profiles)
    wa_id = digits(msg.get("from")) or digits(profile.get("wa_id")) or None
    user_id = msg.get("from_user_id") or profile.get("user_id") or None
    if not wa_id and not user_id:
        raise PayloadError(f"message {wamid}: no sender (neither from nor from_user_id)")
    kind = msg.get("type") or "unknown"
    try:
        data = describe(msg)
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        raise PayloadError(f"message {wamid}: malformed {kind} message ({type(exc).__name__}: {exc})") from None
    about = profile.get("profile") or {}
    system = (msg.get("system") or {}) if kind == "system" else None
    if system is not None and not isinstance(system, dict):
        raise PayloadError(f"message {wamid}: malformed system message")
    return Message(wamid, kind, wa_id, user_id, about.get("name"), about.get("username"), number,
                   _iso_unix(msg.get("timestamp")), data, system)


def _status(st: dict, pnid: str) -> Status:
    wamid, status = st.get("id"), st.get("status")
    if not wamid or not status:
        raise PayloadError("a status without id or status")
    errors = st.get("errors") or []
    data = {"message": wamid, "channel": "whatsapp", "status": status, "at": _iso_unix(st.get("timestamp")),
            "recipient": st.get("recipient_id"), "phone_number_id": pnid}
    if errors:
        data["errors"] = errors
    if st.get("biz_opaque_callback_data"):
        data["callback"] = st["biz_opaque_callback_data"]
    if any(isinstance(e, dict) and e.get("code") == 131047 for e in errors):
        data["template_only"] = True
    return Status(wamid, status, data)


# -- reading one message ---------------------------------------------------------------------
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")


def describe(msg: dict) -> dict:
    """Text (or a placeholder), attachments and type-specific data of one inbound message."""
    kind = msg.get("type") or "unknown"
    body = msg.get(kind) if isinstance(msg.get(kind), dict) else {}
    out: dict = {"attachments": []}
    ctx = msg.get("context") or {}
    if ctx.get("id"):
        out["context"] = ctx["id"]
    if ctx.get("forwarded") or ctx.get("frequently_forwarded"):
        out["forwarded"] = "frequently" if ctx.get("frequently_forwarded") else True
    if msg.get("referral"):
        out["referral"] = msg["referral"]
    if msg.get("errors"):
        out["errors"] = msg["errors"]
    handler = _DESCRIBE.get(kind)
    out["text"] = (handler(body, out, msg) if handler else _unknown(kind, msg, out)) or f"[empty {kind} message]"
    return out


def _text(body, out, msg):
    return str(body.get("body") or "")


def _media(body, out, msg):
    kind = msg.get("type")
    label = "voice message" if body.get("voice") else ("animated sticker" if body.get("animated") else kind)
    out["attachments"].append(_attachment(kind, body))
    caption = body.get("caption")
    if kind == "document":
        return caption or f"[document: {body.get('filename') or 'unnamed'}]"
    return caption or f"[{label}]"


def _attachment(kind: str, body: dict) -> dict:
    mime = str(body.get("mime_type") or "").split(";")[0].strip()
    name = body.get("filename") or f"{kind}{mimetypes.guess_extension(mime) or ''}"
    return {"kind": kind, "media_id": body.get("id"), "name": name,
            "type": body.get("mime_type"), "size": None, "sha256": body.get("sha256"),
            "caption": body.get("caption"), "status": "pending", "blob": None}


def _location(body, out, msg):
    out["location"] = {k: body.get(k) for k in ("latitude", "longitude", "name", "address", "url") if k in body}
    where = ", ".join(str(body[k]) for k in ("name", "address") if body.get(k))
    return f"[location] {where + ' ' if where else ''}({body.get('latitude')}, {body.get('longitude')})"


def _contacts(body, out, msg):
    cards = msg.get("contacts") or []
    shown = []
    for card in cards:
        nm = (card.get("name") or {}).get("formatted_name") or "?"
        phones = ", ".join(p.get("phone") or p.get("wa_id") or "" for p in card.get("phones") or ())
        shown.append(f"{nm} {phones}".strip())
    return "[contact card] " + "; ".join(shown)


def _interactive(body, out, msg):
    itype = body.get("type")
    reply = body.get(itype) if isinstance(body.get(itype), dict) else None
    if not reply:
        return "[interactive message]"
    out["reply"] = {"type": itype, **reply}
    extra = f" ({reply['description']})" if reply.get("description") else ""
    label = reply.get("title") or reply.get("body") or reply.get("id") or f"[{itype}]"
    return f"{label}{extra}"


def _button(body, out, msg):
    out["reply"] = {"type": "button", "payload": body.get("payload"), "text": body.get("text")}
    return str(body.get("text") or body.get("payload") or "[button]")


def _reaction(body, out, msg):
    emoji = body.get("emoji") or ""
    out["reaction"] = {"message_id": body.get("message_id"), "emoji": emoji or None}
    return f"[reaction {emoji}]" if emoji else "[reaction removed]"


def _edit(body, out, msg):
    out["edit_of"] = body.get("original_message_id")
    inner = body.get("message") or {}
    if inner.get("type"):
        sub = describe(inner)
        out["attachments"] += sub["attachments"]
        return f"[edited] {sub['text']}"
    return "[edited message]"


def _revoke(body, out, msg):
    out["revoke_of"] = body.get("original_message_id")
    return "[message deleted by the customer]"


def _unsupported(body, out, msg):
    what = body.get("type")
    err = (msg.get("errors") or [{}])[0]
    return f"[unsupported message{': ' + what if what else ''}{' - ' + err['title'] if err.get('title') else ''}]"


def _order(body, out, msg):
    items = body.get("product_items") or []
    text = body.get("text") or ""
    return f"[order: {len(items)} item{'s' if len(items) != 1 else ''}] {text}".strip()


def _system_text(body, out, msg):
    return f"[system] {body.get('body') or body.get('type') or ''}".strip()


def _unknown(kind, msg, out):
    return f"[{kind} message]"


_DESCRIBE = {"text": _text, "image": _media, "video": _media, "audio": _media, "document": _media,
             "sticker": _media, "location": _location, "contacts": _contacts, "interactive": _interactive,
             "button": _button, "reaction": _reaction, "edit": _edit, "revoke": _revoke,
             "unsupported": _unsupported, "order": _order, "system": _system_text}




# -- small helpers ---------------------------------------------------------------------------
def _profile(msg: dict, profiles: list) -> dict:
    for p in profiles:
        if not isinstance(p, dict):
            continue
        if (msg.get("from") and p.get("wa_id") == msg.get("from")) or (
                msg.get("from_user_id") and p.get("user_id") == msg.get("from_user_id")):
            return p
    return profiles[0] if len(profiles) == 1 and isinstance(profiles[0], dict) else {}


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _iso_unix(value) -> str | None:
    """Meta's Unix-seconds string as a store time; None when missing or out of any real range."""
    t = _int(value)
    if not t:
        return None
    try:
        return iso(datetime.fromtimestamp(t, timezone.utc))
    except (OverflowError, OSError, ValueError):  # '999…9' from a hostile or broken sender
        return None
