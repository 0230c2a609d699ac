"""The WhatsApp step of the intake: spooled payloads -> contacts, tickets and events.

    spool chunk -> decode (envelope) -> in time order (Meta's retries arrive late)
        -> per payload: every message / status / error report -> events -> keep the raw payload

A payload is one item, taken in change by change: a change that cannot be used (a
phone_number_id not in tix.yaml, a message without id or sender, a malformed value) is
quarantined alone as a one-change payload (once: keyed by its content, so a redelivered
POST does not quarantine it again), and the rest of the payload is taken in; a
payload that is not JSON or not a WhatsApp object is quarantined whole. An unexpected
failure rolls the whole payload back and quarantines it. The raw payload of every payload taken in
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
- `whatsapp.system` (`user_changed_number`, `user_changed_user_id`, with or without `from`):
  `message`, `system`, `text`, `sent_at`, `previous` {wa_id, user_ids}, `new` {wa_id,
  user_id}; on the conversation's ticket (open, else the last one) if there is one. The
  contact gets the new number (`add_phones`), `fields.wa_user_id` and
  `fields.wa_previous_user_ids` (a `contact.updated`).
- `message.sent` with `from_phone: true`: a message the business sent from the WhatsApp
  Business app (coexistence echo): `message` (wamid), `state: "sent"`, `to`, `text`,
  `attachments`, `sent_at`, `wa_type`; on the conversation's ticket (never reopening it),
  else a new `pending` ticket.
- `whatsapp.preference`: `key`, `category`, `value` (`stop` | `resume`), `detail`, `at`,
  `text`; the contact gets `fields.wa_marketing` (marketing_messages) or
  `fields.wa_pref_<category>`. `whatsapp.call`: `key`, `call`, `event`, `direction`,
  `status`, `duration`, `start`, `end`, `at`, `text`. Both on the contact, and on the
  conversation's ticket where one exists.
- `whatsapp.account`: `key`, `field`, `event`, `severity` (`incident` | `info`), `text`,
  `waba`, `phone_number`, `template`, `at` (the entry's time, if Meta gave one), `value`
  (Meta's), `raw`; an incident also queues the `whatsapp.alerts` notification once (not
  when `at` is more than `ALERT_DAYS` old).
- `whatsapp.error` (errors Meta reports in a webhook with no message, once per `key`).
- message data also keeps, per type: `order` {catalog_id, text, items [{sku, quantity,
  price, currency}]}, `flow` {name, fields} (an `nfm_reply`), `product` {catalog_id, sku}
  (a question about a catalog product), `referral` (a click-to-WhatsApp ad), `errors`.

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
from tix.channels.whatsapp.payload import (STATUS_RANK, AccountEvent, BadChange, Call, Echo, MetaErrors, Payload,
                                           PayloadError, Preference, Skipped, Status, decode)
from tix.errors import TixError
from tix.ingest.intake import Identity, Inbound, NewTicket
from tix.store.files import atomic_write
from tix.store.log import iso, parse_ts, parse_ts_or_none, utcnow
from tix.tickets import normalize_phone

PASSIVE = ("reaction", "revoke")  # never reopen a ticket, never change its status
ALERT_DAYS = 7  # an incident Meta reported longer ago (its `entry.time`) is recorded but alerts no one


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
        for n, part in enumerate(payload.parts()):
            if isinstance(part, BadChange):
                if replay and payload.changes == 1:  # replaying the bad change itself: still bad
                    raise PayloadError(part.error)
                # (replaying a whole payload quarantined by an older tix splits it: the bad change
                # gets an entry of its own, the rest is taken in)
                key = "wa-change:" + hashlib.sha256(part.body).hexdigest()[:24]  # the same change redelivered
                if key in run.index.qkeys:  # is quarantined already: once
                    run.report.duplicates += 1
                    continue
                bad = base.RawItem(item.source, key, part.body,
                                   {**item.meta, "where": f"{item.where} change {n} ({part.field})"})
                run.quarantine(self, bad, part.error)
            elif isinstance(part, Skipped):
                run.report.skip(part.field, part.why)
            elif isinstance(part, Status):
                self._status(part)
            elif isinstance(part, MetaErrors):
                self._meta_errors(part, raw)
            elif isinstance(part, AccountEvent):
                self._account(part, raw)
            elif isinstance(part, Echo):
                self._echo(part, raw)
            elif isinstance(part, Preference):
                self._preference(part, raw)
            elif isinstance(part, Call):
                self._call(part, raw)
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
        """An identity change (`user_changed_number`, `user_changed_user_id`; no `from` needed):
        the old and new number / user id are linked on one contact, and the notice joins the
        conversation."""
        run = self.run
        if run.index.seen(m.wamid):
            run.report.duplicates += 1
            return
        system = m.system
        new_phone = digits(system.get("wa_id") or system.get("new_wa_id")) or None
        new_user = system.get("user_id") or None
        old_users = [u for u in (system.get("previous_user_id"), m.user_id) if u and u != new_user]
        old_phone = m.wa_id if m.wa_id != new_phone else None
        cid = self._find(old_users, old_phone, new_user, new_phone)
        if cid is None:
            if not (new_phone or new_user or old_phone or old_users):
                run.report.skip("messages (system)", f"{system.get('type')} names no number or user id")
                return
            cid = run.contact(Identity(name=m.name, phone=new_phone or old_phone, user_id=new_user), "WhatsApp")
        self._link(cid, system, new_phone, new_user, old_users, old_phone)
        ticket = self._last_ticket(cid, m.number.number)
        text = _linked(m.data["text"], old_phone, new_phone, old_users, new_user)
        run.emit("whatsapp.system", ticket=ticket, contact=cid,
                 data={"message": m.wamid, "channel": "whatsapp", "system": system, "text": text,
                       "raw": raw, "inbox": m.number.number, "sent_at": m.sent_at,
                       "previous": {"wa_id": old_phone, "user_ids": old_users},
                       "new": {"wa_id": new_phone, "user_id": new_user}})
        run.remember(m.wamid)
        if ticket is not None:
            run.index.add_mid(m.wamid, ticket, run.journal, thread=False)
        run.report.contact_events += 1

    def _find(self, old_users, old_phone, new_user, new_phone) -> int | None:
        """The contact of an identity change: by the old ids first, then the new ones."""
        idx = self.run.contacts
        for user, phone in [*((u, None) for u in old_users), (None, old_phone), (new_user, None), (None, new_phone)]:
            cid = idx.find(user_id=user) if user else idx.find(phone=phone) if phone else None
            if cid is not None:
                return cid
        return None

    def _link(self, cid: int, system: dict, new_phone, new_user, old_users, old_phone) -> None:
        """Put the new number and user id on the contact; keep the user ids it had before
        (`fields.wa_previous_user_ids`), so a late message under an old id still finds it."""
        from tix.tickets.contacts import contact_fields

        run = self.run
        idx, j = run.contacts, run.journal
        change: dict = {}
        sets: dict = {}
        if new_phone and idx.find(phone=new_phone) != cid:
            change["add_phones"] = [new_phone]
            j.set(idx.by_phone, normalize_phone(new_phone), cid)
        if old_phone and idx.find(phone=old_phone) is None:
            change.setdefault("add_phones", []).append(old_phone)
            j.set(idx.by_phone, normalize_phone(old_phone), cid)
        if new_user and idx.by_user.get(new_user) != cid:
            sets["fields.wa_user_id"] = new_user
            j.set(idx.by_user, new_user, cid)
        row = run.batch.reader.contact(cid)
        had = contact_fields(row) if row else {}
        previous = [u for u in [*(had.get("wa_previous_user_ids") or []), had.get("wa_user_id"), *old_users]
                    if u and u != new_user]
        previous = list(dict.fromkeys(previous))
        if previous != (had.get("wa_previous_user_ids") or []):
            sets["fields.wa_previous_user_ids"] = previous
            for u in previous:
                j.set(idx.by_user, u, cid)
        if sets:
            change["set"] = sets
        if change:
            what = "number" if system.get("type") == "user_changed_number" else "WhatsApp user id"
            run.emit("contact.updated", contact=cid, data=change, why=f"WhatsApp: the customer changed {what}")

    def _last_ticket(self, cid: int, inbox: str) -> int | None:
        """The conversation's ticket (open, else the last one), where a notice about the contact shows."""
        row = self.run.row(self.run.index.final(self.run.conversation(cid, inbox)))
        return row["number"] if row is not None else None

    # -- coexistence: the phone app, preferences, calls, the account ------------------------------
    def _echo(self, e: Echo, raw: str) -> None:
        """A message the business sent from the WhatsApp Business app: an outbound message on
        the customer's ticket (never reopening it), marked `from_phone`."""
        run = self.run
        if run.index.seen(e.wamid):
            run.report.duplicates += 1
            return
        cid = run.contact(Identity(phone=e.wa_id, user_id=e.user_id), "WhatsApp")
        data = dict(e.data)
        context = data.pop("context", None)
        subject = " ".join(str(data.get("text") or "").split())[:80] or "WhatsApp message"
        new = NewTicket(subject=subject, inbox=e.number.number, team=e.number.team or self.settings.team,
                        status="pending", why="WhatsApp conversation started from the phone app")
        number = run.thread(Inbound("whatsapp", cid, new, label="from the phone app",
                                    refs=(context,) if context else (), conversation=e.number.number,
                                    about=data.get("edit_of") or data.get("revoke_of"),
                                    sent_at=parse_ts_or_none(e.sent_at), passive=True))
        full = {"message": e.wamid, "channel": "whatsapp", "wa_type": e.kind, "from_phone": True, "state": "sent",
                "auto": False, "from": e.number.number, "to": [e.wa_id or e.user_id], "subject": None,
                "text": data.pop("text"), "attachments": data.pop("attachments"), "context": context, "raw": raw,
                "sent_at": e.sent_at, "phone_number_id": e.number.phone_number_id, "inbox": e.number.number, **data}
        run.emit("message.sent", ticket=number, contact=cid, data=full, why="sent from the WhatsApp Business app")
        run.remember(e.wamid)
        run.index.add_mid(e.wamid, number, run.journal, thread=False)
        run.report.echoes += 1

    def _preference(self, p: Preference, raw: str) -> None:
        """Marketing stop / resume: kept on the contact (`fields.wa_marketing`), honoured by
        template sends (`tix.channels.whatsapp.send`), and noted in the conversation."""
        run = self.run
        if run.index.seen(p.key):
            run.report.duplicates += 1
            return
        cid = run.contact(Identity(name=p.name, phone=p.wa_id, user_id=p.user_id), "WhatsApp")
        category, value = str(p.data.get("category") or "unknown"), p.data.get("value")
        field = "wa_marketing" if category == "marketing_messages" else f"wa_pref_{category}"
        run.emit("contact.updated", contact=cid, data={"set": {f"fields.{field}": value}},
                 why=f"WhatsApp: the customer chose {value!r} for {category}")
        text = f"[{category.replace('_', ' ')}: {value}]" + (f" {p.data['detail']}" if p.data.get("detail") else "")
        run.emit("whatsapp.preference", ticket=self._last_ticket(cid, p.number.number), contact=cid,
                 data={"channel": "whatsapp", "key": p.key, **p.data, "text": text, "raw": raw,
                       "inbox": p.number.number, "sent_at": p.data.get("at")})
        run.remember(p.key)
        run.report.contact_events += 1

    def _call(self, c: Call, raw: str) -> None:
        """A call with the customer: recorded, on the contact's ticket where one exists."""
        run = self.run
        if run.index.seen(c.key):
            run.report.duplicates += 1
            return
        if not c.wa_id and not c.user_id:
            run.report.skip("calls", "a call that names no customer")
            return
        cid = run.contact(Identity(name=c.name, phone=c.wa_id, user_id=c.user_id), "WhatsApp")
        d = c.data
        how = "call from the customer" if str(d.get("direction") or "").upper() != "BUSINESS_INITIATED" \
            else "call to the customer"
        text = f"[{how}: {d.get('event') or '?'}" + (f", {d['status']}" if d.get("status") else "") + \
            (f", {d['duration']} s" if d.get("duration") is not None else "") + "]"
        run.emit("whatsapp.call", ticket=self._last_ticket(cid, c.number.number), contact=cid,
                 data={"channel": "whatsapp", "key": c.key, **d, "text": text, "raw": raw, "inbox": c.number.number,
                       "sent_at": d.get("at")})
        run.remember(c.key)
        run.report.contact_events += 1

    def _account(self, a: AccountEvent, raw: str) -> None:
        """A change about the account, a number or a template: a `whatsapp.account` event; an
        incident (ban, restriction, rejection, pause) also queues the `whatsapp.alerts` notification."""
        run = self.run
        if run.index.seen(a.key):
            run.report.duplicates += 1
            return
        run.emit("whatsapp.account", data={**a.data, "raw": raw})
        run.remember(a.key)
        run.report.account_events += 1
        if a.data["severity"] == "incident":
            run.report.warnings.append(f"whatsapp account: {a.data['text']}")
            at = parse_ts_or_none(a.data.get("at"))
            if at is None or run.clock() - at <= timedelta(days=ALERT_DAYS):  # never alert on old news
                self._alert(a)

    def _alert(self, a: AccountEvent) -> None:
        from tix.outbox import notify

        alerts = self.settings.raw.get("alerts") if self.settings is not None else None
        if not isinstance(alerts, dict):
            return
        subject = f"WhatsApp incident: {a.data['field']} {a.data.get('event') or ''}".strip()
        body = f"{a.data['text']}\n\nSee: tix sql \"SELECT ts, data FROM events WHERE type = 'whatsapp.account'\"\n"
        emails = alerts.get("email") or []
        for addr in [emails] if isinstance(emails, str) else emails:
            notify(self.run.batch, "email", str(addr), subject, body, key=f"{a.key}:{addr}")
        if alerts.get("webhook"):
            notify(self.run.batch, "webhook", str(alerts["webhook"]), subject, body,
                   payload={"slack": True} if alerts.get("slack") else None, key=f"{a.key}:webhook")

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
        for wamid, (rank, on_ticket, data) in run.index.late_statuses():
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


def _linked(text: str, old_phone, new_phone, old_users, new_user) -> str:
    """The system notice with what tix linked on the contact."""
    links = []
    if new_phone and old_phone != new_phone:
        links.append(f"number +{old_phone} -> +{new_phone}" if old_phone else f"number +{new_phone} added")
    if new_user and old_users:
        links.append(f"user id {', '.join(old_users)} -> {new_user}")
    return f"{text} (linked on the contact: {'; '.join(links)})" if links else text


def account_events(store, incidents: bool = False) -> list[dict]:
    """`tix webhook events`: the recorded `whatsapp.account` events (bans, restrictions,
    number and template changes), oldest first; only incidents with `incidents`."""
    con = store.read().connect()
    rows = con.execute(
        "SELECT ts, data->>'field', data->>'event', data->>'severity', data->>'phone_number', data->>'template', "
        "data->>'text' FROM events WHERE type = 'whatsapp.account' AND (NOT ? OR data->>'severity' = 'incident') "
        "ORDER BY seq", [incidents]).fetchall()
    con.close()
    names = ("ts", "field", "event", "severity", "number", "template", "text")
    return [dict(zip(names, r, strict=True)) for r in rows]


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
        "FROM events WHERE (type = 'message.received' OR (type = 'message.sent' AND data->>'from_phone' = 'true')) "
        "AND data->>'channel' = 'whatsapp' "
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
