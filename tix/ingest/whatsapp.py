"""The WhatsApp step of the intake: spooled payloads -> contacts, tickets and events.

    spool chunk -> decode (envelope) -> in time order (Meta's retries arrive late)
        -> per payload: every message / status / error report -> events -> keep the raw payload

A payload is one item: if any part of it fails (a phone_number_id not in tix.yaml, a
message without id or sender, a malformed message), everything the payload did is rolled
back and the payload goes to quarantine whole. The raw payload of every payload taken in
is kept under `messages/whatsapp/YYYY-MM/<sha256-prefix>.json` (a hard link to the spool
file, which the receiver fsynced), so a redelivered payload is kept once.

Format contract (events written here; see tix.store for the envelope):

- `message.received` data: `message` (the wamid, the idempotency key), `channel: "whatsapp"`,
  `wa_type`, `from` (wa_id, digits; null for a username-only user), `from_user_id` (BSUID),
  `from_name`, `to` ([business number]), `subject: null`, `text` (the text, caption or a
  `[placeholder]`), `attachments` (media: `media_id`, `name`, `type` (MIME), `sha256` as
  sent by Meta, `caption`, `status: "pending"`), `auto: false`, `language: null`, `inbox`,
  `context` (the replied-to wamid), `raw` (store-relative path of the payload under
  `messages/whatsapp/`), `sent_at` (the message's own time, UTC ISO), `phone_number_id`,
  plus per type `reaction`, `edit_of`, `revoke_of`, `reply`, `location`, `forwarded`, `errors`.
- `message.status` data: `message` (outbound wamid), `channel`, `status` (sent < delivered <
  read < played; `failed` is final), `at`, `recipient`, `errors`, `template_only` (131047).
  Only a status that moves a message forward is written. A status for a wamid tix does not
  know yet is written without a ticket and written again (`late: true`) with it once the
  wamid is known.
- `message.media` data: `message`, `media_id`, `status` (`stored` | `expired`), `blob`
  (`blobs/sha256/ab/<hex>`), `sha256` (hex), `size`, `type`.
- `whatsapp.system` (number or identity changes) and `whatsapp.error` (errors Meta reports
  in a webhook with no message, once per `key`) are kept in the log for the audit trail.

Threading (the rules are `tix.ingest.intake`'s): the conversation is the business
number, so there is one open ticket per (contact, business number); a reply (`context`)
names the message it answers; reactions, edits and deletions join the ticket of the
message they are about; reactions and deletions are passive. Contacts are found by the
business-scoped `user_id` (contact field `wa_user_id`) or the `wa_id` (a phone).
"""
from __future__ import annotations

import hashlib
from datetime import timedelta

import orjson

from tix.channels import base
from tix.channels.whatsapp import media as wamedia
from tix.channels.whatsapp.config import Settings, digits, load_settings
from tix.channels.whatsapp.payload import STATUS_RANK, MetaErrors, Payload, PayloadError, Skipped, Status, decode
from tix.errors import TixError
from tix.ingest.intake import Identity, Inbound, NewTicket
from tix.store.files import atomic_write
from tix.store.log import iso, parse_ts, parse_ts_or_none, utcnow
from tix.tickets import normalize_phone

PASSIVE = ("reaction", "revoke")  # never reopen a ticket, never change its status


class WhatsAppStep:
    channel = "whatsapp"
    ext = "json"

    def __init__(self, run):
        self.run = run
        self.settings: Settings | None = None
        self.month = run.clock().strftime("%Y-%m")  # raw payloads are kept by the month of the run
        self._late_done = False

    # -- fetch and decode -----------------------------------------------------------------------
    def decode(self, source, budget):
        """Yield (chunk, [(item, Payload | PayloadError)]) in the order things happened."""
        self.settings = source.settings
        for chunk in source.chunks(budget):
            if not self._late_done:
                self._late_statuses()
            pairs = [(item, self.decode_one(item)) for item in chunk]
            pairs.sort(key=lambda p: (p[1].time if isinstance(p[1], Payload) else 0, p[0].key))
            yield chunk, pairs

    def decode_one(self, item: base.RawItem):
        if self.settings is None:
            self.settings = load_settings(self.run.store)
        try:
            return decode(item.raw, self.settings)
        except PayloadError as exc:
            return exc

    def finish(self, source) -> None:
        source.close()

    def close(self, failed: bool = False) -> None:
        pass

    def key_of(self, item: base.RawItem, payload) -> str | None:
        return None  # a payload has no key of its own: its messages' wamids are theirs

    def replay_spec(self, entry: dict) -> dict:
        return dict(base.WHATSAPP)

    # -- one payload ----------------------------------------------------------------------------
    def take(self, item: base.RawItem, payload: Payload, spec: dict, replay: bool = False) -> None:
        run = self.run
        raw = f"messages/whatsapp/{self.month}/{hashlib.sha256(item.raw).hexdigest()[:32]}.json"
        for part in payload.parts():
            if isinstance(part, Skipped):
                run.report.warnings.append(f"{raw}: skipped change field {part.field!r}")
            elif isinstance(part, Status):
                self._status(part)
            elif isinstance(part, MetaErrors):
                self._meta_errors(part, raw)
            elif part.kind == "system":
                self._system(part, raw)
            else:
                self._message(part, raw)
        run.files.keep(raw, item.raw, source=item.meta.get("path"))

    def _message(self, m, raw: str) -> None:
        run = self.run
        if run.index.seen(m.wamid):
            run.report.duplicates += 1
            return
        cid = self._contact(m)
        data = dict(m.data)
        about = (data.get("reaction") or {}).get("message_id") or data.get("edit_of") or data.get("revoke_of")
        context = data.pop("context", None)
        number = run.thread(Inbound(
            "whatsapp", cid, self._new_ticket(m, data), label="on WhatsApp", refs=(context,) if context else (),
            conversation=m.number.number, about=about, sent_at=parse_ts_or_none(m.sent_at),
            passive=m.kind in PASSIVE))
        full = {"message": m.wamid, "channel": "whatsapp", "wa_type": m.kind, "from": m.wa_id,
                "from_user_id": m.user_id, "from_name": m.name, "to": [m.number.number], "subject": None,
                "text": data.pop("text"), "attachments": data.pop("attachments"), "auto": False,
                "language": None, "inbox": m.number.number, "context": context,
                "raw": raw, "sent_at": m.sent_at, "phone_number_id": m.number.phone_number_id, **data}
        run.emit("message.received", ticket=number, contact=cid, data=full)
        run.remember(m.wamid)
        run.index.add_mid(m.wamid, number, run.journal, thread=False)
        run.report.stored += 1

    def _contact(self, m) -> int:
        return self.run.contact(Identity(name=m.name, phone=m.wa_id, user_id=m.user_id,
                                         fields={"wa_username": m.username}), "WhatsApp")

    def _new_ticket(self, m, data: dict) -> NewTicket:
        subject = " ".join(str(data.get("text") or "").split())[:80] or "WhatsApp message"
        return NewTicket(subject=subject, inbox=m.number.number, team=m.number.team or self.settings.team,
                         why="new WhatsApp conversation")

    def _system(self, m, raw: str) -> None:
        run = self.run
        if run.index.seen(m.wamid):
            run.report.duplicates += 1
            return
        cid = self._contact(m)
        system = m.system
        new_id = digits(system.get("wa_id") or system.get("new_wa_id"))
        if system.get("type") == "user_changed_number" and new_id and run.contacts.find(phone=new_id) is None:
            run.emit("contact.updated", contact=cid, data={"add_phones": [new_id]},
                     why="WhatsApp: the customer changed number")
            run.journal.set(run.contacts.by_phone, normalize_phone(new_id), cid)
        cur = run.row(run.conversation(cid, m.number.number))
        ticket = cur["number"] if cur is not None and cur["status"] in ("new", "open", "pending") else None
        run.emit("whatsapp.system", ticket=ticket, contact=cid,
                 data={"message": m.wamid, "channel": "whatsapp", "system": system, "text": m.data["text"],
                       "raw": raw, "inbox": m.number.number})
        run.remember(m.wamid)
        if ticket is not None:
            run.index.add_mid(m.wamid, ticket, run.journal, thread=False)
        run.report.stored += 1

    # -- statuses of what tix sent --------------------------------------------------------------
    def _status(self, st: Status) -> None:
        rank = self.run.index.status_of(st.wamid)[0]
        r = STATUS_RANK.get(st.status, 0)
        if r <= rank and not (r == 0 and st.wamid not in self.run.index.statuses):
            self.run.report.duplicates += 1
            return
        self._emit_status(st.wamid, st.data)

    def _emit_status(self, wamid: str, data: dict, late: bool = False) -> None:
        run = self.run
        ticket = run.index.ticket_of(wamid)
        run.emit("message.status", ticket=ticket, data=dict(data, late=True) if late else data)
        run.index.note_status(wamid, data["status"], ticket, data, run.journal)
        run.report.statuses += 1
        if ticket is not None and data["status"] == "failed":
            run.emit("ticket.note", ticket=ticket, data={"body": failed_note(ticket, data), "kind": "whatsapp"})

    def _late_statuses(self) -> None:
        """Statuses that arrived before tix knew the message: attach them to its ticket now."""
        self._late_done = True
        run = self.run
        run.actor = "channel:whatsapp"
        for wamid, (rank, on_ticket, data) in list(run.index.statuses.items()):
            if rank > on_ticket and data is not None and run.index.ticket_of(wamid) is not None:
                self._emit_status(wamid, data, late=True)
        run.journal.clear()

    def _meta_errors(self, part: MetaErrors, raw: str) -> None:
        run = self.run
        if run.index.seen(part.key):
            run.report.duplicates += 1
            return
        run.remember(part.key)
        run.emit("whatsapp.error", data={"channel": "whatsapp", "key": part.key, "errors": part.errors,
                                         "phone_number_id": part.phone_number_id, "raw": raw})
        for e in part.errors:
            e = e if isinstance(e, dict) else {}
            run.report.warnings.append(f"whatsapp {part.phone_number_id}: Meta reported error {e.get('code')}: "
                                       f"{e.get('title') or e.get('message')}")


def failed_note(ticket: int, data: dict) -> str:
    err = (data.get("errors") or [{}])[0]
    code = err.get("code")
    details = (err.get("error_data") or {}).get("details") or err.get("message") or err.get("title") or ""
    if data.get("template_only"):
        return (f"WhatsApp message {data['message']} was not delivered ({code} re-engagement): more than 24 hours "
                f"since the customer last wrote, so only an approved template can be sent now "
                f"(tix reply {ticket} --template NAME).")
    return f"WhatsApp message {data['message']} failed ({code} {err.get('title') or ''}): {details}".strip()


# -- media: after the spool, outside the lock while downloading ----------------------------------
def pending_media(store) -> list[dict]:
    """Media referenced by WhatsApp messages and not yet stored or given up on."""
    con = store.read().connect()
    done = {(m, mid) for m, mid in con.execute(
        "SELECT data->>'message', data->>'media_id' FROM events WHERE type = 'message.media'").fetchall()}
    rows = con.execute(
        "SELECT ticket, contact, ts, data->>'message', CAST(data->'attachments' AS VARCHAR), data->>'phone_number_id' "
        "FROM events WHERE type = 'message.received' AND data->>'channel' = 'whatsapp' "
        "AND json_array_length(data->'attachments') > 0 ORDER BY seq").fetchall()
    con.close()
    out = []
    for ticket, contact, ts, wamid, atts, pnid in rows:
        for att in orjson.loads(atts):
            if att.get("media_id") and (wamid, att["media_id"]) not in done:
                out.append({"ticket": ticket, "contact": contact, "received": parse_ts(ts),
                            "message": wamid, "phone_number_id": pnid, **att})
    return out


def fetch_media(store, report, now=None) -> None:
    """Download pending media into blobs/ and record it (`message.media`); a failure stays
    pending for the next run, media older than `MEDIA_DAYS` is recorded as expired."""
    settings = load_settings(store)
    todo = pending_media(store) if settings is not None else []
    if not todo:
        return
    now = now or utcnow()
    token = wamedia.token_or_none(settings)
    http = wamedia.session() if token else None
    done: list[tuple[dict, dict]] = []
    for item in todo:
        if now - item["received"] > timedelta(days=wamedia.MEDIA_DAYS):
            done.append((item, {"status": "expired"}))
        elif token is None:
            report.media_pending += 1
        else:
            try:
                got = wamedia.download_media(settings, http, token, item)
            except TixError as exc:
                report.media_pending += 1
                report.errors.append(f"whatsapp media {item['media_id']} of {item['message']}: {exc} (will retry)")
                continue
            done.append((item, _store_blob(store, got, item)))
            report.media_stored += 1
    if done:
        with store.writing(actor="channel:whatsapp", via="tix fetch") as batch:
            still = {(p["message"], p["media_id"]) for p in pending_media(store)}  # a concurrent fetch?
            for item, result in done:
                if (item["message"], item["media_id"]) in still:
                    batch.emit("message.media", ticket=item["ticket"], contact=item["contact"], ts=iso(now),
                               data={"message": item["message"], "channel": "whatsapp",
                                     "media_id": item["media_id"], **result})


def _store_blob(store, got: wamedia.Media, item: dict) -> dict:
    rel = f"blobs/sha256/{got.sha256[:2]}/{got.sha256}"
    path = store.path(rel)
    if not (path.exists() and path.stat().st_size == len(got.data)):
        atomic_write(path, got.data)
    return {"status": "stored", "blob": rel, "sha256": got.sha256, "size": len(got.data), "type": got.type,
            "name": item.get("name")}
