"""Decoding WhatsApp webhook payloads (Cloud API, API-NOTES §1) into the items intake takes in.

A spooled payload (the body of one signed POST, byte for byte) is decoded in two steps:

- `decode(body, settings)` checks the envelope (JSON, `object`, an `entry` list) and returns
  a `Payload`; anything else raises `PayloadError` (the payload is quarantined whole).
- `Payload.parts()` then yields, change by change, what the payload says:
  - from `messages`-like fields (`messages`, `smb_message_echoes`, `user_preferences`,
    `calls`): a `Message` (one inbound message: its wamid, the idempotency key; the
    sender's wa_id / business-scoped user_id and profile; the business `Number` it came
    to; the message's own time; and `describe(msg)`: text or a `[placeholder]`,
    attachments, context and the type's own data; a `system` message needs no sender), an
    `Echo` (sent by the business from the phone app), a `Status`, a `Preference`, a
    `Call`, `MetaErrors` (errors Meta reports with no message);
  - an `AccountEvent` for a change of an `ACCOUNT_FIELDS` field (account, number,
    template, group), with its severity (`incident` for a ban, restriction, rejection,
    flag or pause);
  - `Skipped` for what tix knowingly leaves out (an unknown field, `history`, a group
    message), counted in the fetch summary;
  - `BadChange` for a change that cannot be used (malformed, or a phone_number_id not in
    tix.yaml): intake quarantines that change alone, as a one-change payload that
    `tix quarantine replay` can take in after a fix; its siblings are taken in.

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
    """Something tix does not take in (counted per `field` in the fetch summary, nothing stored):
    a change of an unknown field, a group message, a history sync, an app-state sync."""

    field: str
    why: str = "not handled"


@dataclass
class BadChange:
    """A change that cannot be read: it is quarantined alone (`body` is a one-change payload
    that `tix quarantine replay` can take in again), never its siblings."""

    field: str
    error: str
    body: bytes


@dataclass
class AccountEvent:
    """A change about the account, a number or a template (`whatsapp.account` event data);
    `data["severity"]` is `incident` for a ban, restriction, rejection or pause."""

    key: str
    data: dict


@dataclass
class Echo:
    """A message the business sent from the WhatsApp Business app on its phone (coexistence)."""

    wamid: str
    kind: str
    wa_id: str | None  # the customer it was sent to
    user_id: str | None
    number: Number
    sent_at: str | None
    data: dict  # `describe(msg)`


@dataclass
class Preference:
    """A customer's messaging preference (`user_preferences`: marketing stop / resume)."""

    key: str
    wa_id: str | None
    user_id: str | None
    name: str | None
    number: Number
    data: dict  # category, value, detail, at


@dataclass
class Call:
    """A WhatsApp call event (connect, terminate) with the customer."""

    key: str
    wa_id: str | None
    user_id: str | None
    name: str | None
    number: Number
    data: dict


# Fields whose value is about the account, a business number or a template: each change is
# recorded as a `whatsapp.account` event (an admin sees it; an incident can alert).
ACCOUNT_FIELDS = (
    "account_update", "account_review_update", "account_alerts", "account_settings_update",
    "business_capability_update", "business_status_update", "phone_number_name_update",
    "phone_number_quality_update", "message_template_status_update", "message_template_quality_update",
    "message_template_components_update", "template_category_update", "template_correct_category_detection",
    "security", "payment_configuration_update", "group_lifecycle_update", "group_participants_update",
    "group_settings_update", "group_status_update", "flows", "partner_solutions", "automatic_events",
)
# Fields that carry customer messages and their like (messages, echoes, preferences, calls).
MESSAGE_FIELDS = ("messages", "smb_message_echoes", "user_preferences", "calls")
# Fields tix knowingly does not take in (counted as skipped, with this reason).
SKIP_FIELDS = {"history": "the phone app's past chats are not imported",
               "smb_app_state_sync": "the phone app's contact book is not synced"}
# (field, value key, values) that make an account event an incident.
INCIDENTS = {
    "account_update": ("event", {"DISABLED_UPDATE", "ACCOUNT_VIOLATION", "ACCOUNT_RESTRICTION", "ACCOUNT_DELETED",
                                 "PARTNER_REMOVED"}),
    "account_review_update": ("decision", {"REJECTED"}),
    "phone_number_name_update": ("decision", {"REJECTED"}),
    "phone_number_quality_update": ("event", {"FLAGGED", "DOWNGRADE"}),
    "message_template_status_update": ("event", {"REJECTED", "PAUSED", "DISABLED", "FLAGGED", "PENDING_DELETION"}),
    "message_template_quality_update": ("new_quality_score", {"RED"}),
    "account_alerts": ("alert_severity", {"CRITICAL"}),
}


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
                 for key in ("messages", "statuses", "message_echoes", "calls", "user_preferences")
                 for item in (value.get(key) if isinstance(value.get(key), list) else ()) if isinstance(item, dict)]
        return min(times, default=0)

    @property
    def changes(self) -> int:
        """How many changes (an entry without a changes list counts as one) the payload holds."""
        return sum(len(e["changes"]) if isinstance(e, dict) and isinstance(e.get("changes"), list) else 1
                   for e in self.payload["entry"])

    def _values(self) -> Iterator[dict]:
        for entry in self.payload["entry"]:
            changes = entry.get("changes") if isinstance(entry, dict) else None
            for change in changes if isinstance(changes, list) else ():
                value = change.get("value") if isinstance(change, dict) else None
                if isinstance(value, dict):
                    yield value

    def parts(self) -> Iterator[Message | Status | MetaErrors | Skipped | BadChange | AccountEvent | Echo
                                | Preference | Call]:
        """Change by change: what it says, or one `BadChange` for a change that cannot be read
        (its siblings are unaffected)."""
        for entry in self.payload["entry"]:
            changes = entry.get("changes") if isinstance(entry, dict) else None
            if not isinstance(changes, list):
                yield BadChange("?", "an entry without a changes list", _one(entry, None))
                continue
            for change in changes:
                field = str(change.get("field") or "messages") if isinstance(change, dict) else "?"
                try:
                    got = list(self._change(entry, change, field))
                except PayloadError as exc:
                    error = str(exc)
                except (AttributeError, TypeError, KeyError, ValueError, OverflowError) as exc:
                    # a value of the wrong JSON type somewhere Meta's format has an object or
                    # a list: the change is malformed, whatever the field (found by fuzzing)
                    error = f"malformed {field} change: {type(exc).__name__}: {exc}"
                else:
                    yield from got
                    continue
                yield BadChange(field, error, _one(entry, change))

    def _change(self, entry: dict, change, field: str):
        if not isinstance(change, dict):
            raise PayloadError("a change that is not an object")
        value = change.get("value")
        if not isinstance(value, dict):
            raise PayloadError(f"a {field} change without a value object")
        if field in ACCOUNT_FIELDS:
            yield account_event(entry.get("id"), field, value, _iso_unix(entry.get("time")))
            return
        if field in SKIP_FIELDS:
            yield Skipped(field, SKIP_FIELDS[field])
            return
        if field not in MESSAGE_FIELDS:
            yield Skipped(field, "unknown field")
            return
        meta = value.get("metadata") or {}
        pnid = str(meta.get("phone_number_id") or "")
        settings = self.settings
        if settings.numbers and pnid not in settings.numbers:
            raise PayloadError(f"phone_number_id {pnid!r} is not one of whatsapp.numbers in tix.yaml")
        number = settings.number_for(pnid, meta.get("display_phone_number"))
        profiles = value.get("contacts") or []
        found = False
        msgs = _by_time(value.get("messages"), "message")
        for msg in msgs:
            found = True
            if msg.get("group_id"):
                yield Skipped("messages (group)", "group messages are not taken in")
                continue
            m = _message(msg, profiles, number)
            if isinstance(value.get("errors"), list) and value["errors"] and not m.data.get("errors"):
                m.data["errors"] = value["errors"]  # errors Meta reports beside the message are about it
            yield m
        for echo in _by_time(value.get("message_echoes"), "message echo"):
            found = True
            yield _echo(echo, number)
        for st in _by_time(value.get("statuses"), "status"):
            found = True
            if st.get("type") == "call":  # ringing / accepted / rejected of a call: the call events tell it
                yield Skipped(f"{field} (call status)", "call statuses are not recorded")
            else:
                yield _status(st, pnid)
        for pref in _by_time(value.get("user_preferences"), "user preference"):
            found = True
            yield _preference(pref, profiles, number)
        for call in _by_time(value.get("calls"), "call"):
            found = True
            yield _call(call, profiles, number)
        if value.get("errors") and not msgs:
            found = True
            errors = value["errors"]
            key = orjson.dumps([entry.get("id"), pnid, errors], option=orjson.OPT_SORT_KEYS)
            yield MetaErrors(hashlib.sha256(key).hexdigest()[:24], errors, pnid)
        if not found:
            yield Skipped(field, "no messages, statuses or errors in it")


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
    return Payload(body, payload, settings)


def _one(entry, change) -> bytes:
    """A payload holding only this change (or this entry), to quarantine it alone."""
    if change is None:
        return orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]})
    return orjson.dumps({"object": "whatsapp_business_account",
                         "entry": [{"id": entry.get("id"), "time": entry.get("time"), "changes": [change]}]})


def account_event(waba, field: str, value: dict, at: str | None = None) -> AccountEvent:
    """The `whatsapp.account` event of one change about the account, a number or a template."""
    event = value.get("event") or value.get("decision") or value.get("alert_type") or None
    severity = "info"
    rule = INCIDENTS.get(field)
    if rule and str(value.get(rule[0]) or "").upper() in rule[1]:
        severity = "incident"
    ban = value.get("ban_info") if isinstance(value.get("ban_info"), dict) else {}
    if field == "account_update" and (ban.get("waba_ban_state") in ("DISABLE", "SCHEDULE_FOR_DISABLE")
                                      or value.get("restriction_info")):
        severity = "incident"
    data = {"channel": "whatsapp", "field": field, "event": event, "severity": severity,
            "text": account_text(field, value), "waba": str(waba) if waba is not None else None,
            "phone_number": digits(value.get("display_phone_number") or value.get("phone_number")) or None,
            "template": value.get("message_template_name"), "at": at, "value": value}
    key = orjson.dumps([waba, field, value], option=orjson.OPT_SORT_KEYS)
    data["key"] = "acct:" + hashlib.sha256(key).hexdigest()[:24]
    return AccountEvent(data["key"], data)


def account_text(field: str, v: dict) -> str:
    """One line a person reads: what changed on the account, number or template."""
    g = v.get
    if field == "account_update":
        parts = [f"account {g('event') or 'updated'}"]
        ban = g("ban_info") if isinstance(g("ban_info"), dict) else {}
        if ban:
            parts.append(f"ban: {ban.get('waba_ban_state')}" + (f" on {ban['waba_ban_date']}"
                                                                if ban.get("waba_ban_date") else ""))
        for r in g("restriction_info") or ():
            if isinstance(r, dict):
                parts.append(f"restricted: {r.get('restriction_type')} until {r.get('expiration')}")
        vio = g("violation_info") if isinstance(g("violation_info"), dict) else {}
        if vio.get("violation_type"):
            parts.append(f"violation: {vio['violation_type']}")
        if g("phone_number"):
            parts.append(f"number {g('phone_number')}")
        return "; ".join(parts)
    if field == "account_review_update":
        return f"account review: {g('decision')}"
    if field == "phone_number_name_update":
        why = f" ({g('rejection_reason')})" if g("rejection_reason") not in (None, "", "NONE") else ""
        return f"number {g('display_phone_number')} display name {g('requested_verified_name')!r}: {g('decision')}{why}"
    if field == "phone_number_quality_update":
        limit = g("current_limit") or g("messaging_limit_tier") or g("max_daily_conversation_per_phone")
        return f"number {g('display_phone_number')} quality: {g('event')}" + (f" (limit {limit})" if limit else "")
    if field.startswith("message_template") or field.startswith("template_"):
        name = f"template {g('message_template_name')} ({g('message_template_language')})"
        if field == "message_template_status_update":
            text = f"{name}: {g('event')}"
            if g("reason") not in (None, "", "NONE"):
                text += f", reason {g('reason')}"
            other = g("other_info") if isinstance(g("other_info"), dict) else {}
            if other:
                text += f": {other.get('title') or ''} {other.get('description') or ''}".rstrip()
            dis = g("disable_info") if isinstance(g("disable_info"), dict) else {}
            if dis.get("disable_date"):
                text += f"; scheduled to be disabled on {dis['disable_date']}"
            return text
        if field == "message_template_quality_update":
            return f"{name}: quality {g('previous_quality_score')} -> {g('new_quality_score')}"
        if "category" in field:
            new = g("new_category") or g("correct_category")
            return f"{name}: category {g('previous_category') or g('category')} -> {new}"
        return f"{name}: {field.replace('_', ' ')}"
    scalars = ", ".join(f"{k}: {val}" for k, val in v.items() if isinstance(val, (str, int, float, bool)))
    return f"{field.replace('_', ' ')}" + (f": {scalars}" if scalars else "")


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
    kind = msg.get("type") or "unknown"
    if not wa_id and not user_id and kind != "system":  # a system message names its ids in `system`
        raise PayloadError(f"message {wamid}: no sender (neither from nor from_user_id)")
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


def _echo(msg: dict, number: Number) -> Echo:
    wamid = msg.get("id")
    if not isinstance(wamid, str) or not wamid:
        raise PayloadError("a message echo without an id (wamid)")
    to, uid = digits(msg.get("to")) or None, msg.get("to_user_id") or None
    if not to and not uid:
        raise PayloadError(f"message echo {wamid}: no recipient (neither to nor to_user_id)")
    kind = msg.get("type") or "unknown"
    data = describe(msg)
    if kind == "revoke":  # the business deleted one of its messages on the phone
        data["text"] = "[message deleted from the phone app]"
    return Echo(wamid, kind, to, uid, number, _iso_unix(msg.get("timestamp")), data)


def _preference(p: dict, profiles: list, number: Number) -> Preference:
    wa_id, uid = digits(p.get("wa_id")) or None, p.get("user_id") or None
    if not wa_id and not uid:
        raise PayloadError("a user preference without wa_id or user_id")
    about = _profile({"from": p.get("wa_id"), "from_user_id": uid}, profiles).get("profile") or {}
    data = {"category": p.get("category"), "value": p.get("value"), "detail": p.get("detail"),
            "at": _iso_unix(p.get("timestamp"))}
    key = orjson.dumps([wa_id, uid, data], option=orjson.OPT_SORT_KEYS)
    return Preference("pref:" + hashlib.sha256(key).hexdigest()[:24], wa_id, uid, about.get("name"), number, data)


def _call(c: dict, profiles: list, number: Number) -> Call:
    cid = c.get("id")
    if not isinstance(cid, str) or not cid:
        raise PayloadError("a call without an id")
    outgoing = str(c.get("direction") or "").upper() == "BUSINESS_INITIATED"
    wa_id = digits(c.get("to") if outgoing else c.get("from")) or None
    uid = (c.get("to_user_id") if outgoing else c.get("from_user_id")) or None
    about = _profile({"from": wa_id, "from_user_id": uid}, profiles).get("profile") or {}
    data = {"call": cid, "event": c.get("event"), "direction": c.get("direction"), "status": c.get("status"),
            "duration": c.get("duration"), "start": _iso_unix(c.get("start_time")),
            "end": _iso_unix(c.get("end_time")), "at": _iso_unix(c.get("timestamp"))}
    return Call(f"call:{cid}:{c.get('event')}:{c.get('status')}", wa_id, uid, about.get("name"), number, data)


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
    if isinstance(ctx.get("referred_product"), dict):  # a question about a catalog product
        ref = ctx["referred_product"]
        out["product"] = {"catalog_id": ref.get("catalog_id"), "sku": ref.get("product_retailer_id")}
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
    if itype == "nfm_reply":  # a WhatsApp Flow's answers: `response_json` is a JSON text
        try:
            fields = orjson.loads(reply.get("response_json") or "{}")
        except orjson.JSONDecodeError:
            fields = {"response_json": reply.get("response_json")}
        fields = fields if isinstance(fields, dict) else {"response": fields}
        fields.pop("flow_token", None)  # Meta's token for the flow session, not an answer
        out["flow"] = {"name": reply.get("name"), "fields": fields}
        shown = "; ".join(f"{k}: {_plain(v)}" for k, v in fields.items())
        return f"[flow reply{': ' + str(reply['name']) if reply.get('name') else ''}] {shown}".strip()
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
    return f"[unsupported message{': ' + what if what else ''}{_error_title(msg)}]"


def _error_title(msg: dict) -> str:
    errors = msg.get("errors")
    err = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    title = err.get("title") or err.get("message")
    return f" - {title}" if title else ""


def _order(body, out, msg):
    items = [i for i in body.get("product_items") or [] if isinstance(i, dict)]
    out["order"] = {"catalog_id": body.get("catalog_id"), "text": body.get("text"),
                    "items": [{"sku": i.get("product_retailer_id"), "quantity": i.get("quantity"),
                               "price": i.get("item_price"), "currency": i.get("currency")} for i in items]}
    text = body.get("text") or ""
    return f"[order: {len(items)} item{'s' if len(items) != 1 else ''}] {text}".strip()


def _system_text(body, out, msg):
    return f"[system] {body.get('body') or body.get('type') or ''}".strip()


def _unknown(kind, msg, out):
    return f"[{kind} message{_error_title(msg)}]"


def _plain(value) -> str:
    return orjson.dumps(value).decode() if isinstance(value, (dict, list)) else str(value)


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
