"""The email step of the intake: parsed mail -> contacts, tickets, `message.received`.

    source.chunks() -> parse (Parser workers, while the next chunk is fetched: Prefetch)
        -> per message: de-duplicate -> contact -> thread -> raw pack + blobs -> event

Keys: the source key (IMAP UIDVALIDITY+UID, maildir name, mbox hash) lets a source skip a
known message without fetching it; the content key (Message-ID + body hash) makes the
same message a no-op wherever it comes from (another folder, a re-scan, a changed
UIDVALIDITY). A copy of a message tix sent (a Bcc, a Sent folder) is a duplicate.

Threading hints (the rules are `tix.ingest.intake`'s): In-Reply-To, then References
newest first, against every Message-ID tix has received or sent; then the subject tag
`[#N]` when the sender is the ticket's contact. Auto-submitted mail (`parse.is_auto_submitted`)
is passive: it never reopens a ticket; without a thread it opens a ticket tagged `auto`,
closed unless the source says `auto_messages: ticket`. Delivery reports become a
`ticket.note` (kind `bounce`) on the ticket of the message that bounced, or a
`message.unmatched` event, and never open a ticket. Mail from (or to the reply address of)
an agent who works from their mail client is `tix.ingest.agentmail`'s, before any threading.
"""
from __future__ import annotations

import re

from tix.channels import base
from tix.channels.mail import inbox_of, own_addresses
from tix.channels.mail import parse as mailparse
from tix.ingest.agentmail import AgentMail
from tix.ingest.intake import Identity, Inbound, NewTicket
from tix.ingest.parsing import Parser, Prefetch

EVENT_TEXT_LIMIT = 16_000  # characters of new text per event (`text_truncated`); the raw file keeps all
TAG_DIGITS = 12  # a longer `[#N]` (e.g. 30 digits) is not a ticket number


class MailStep:
    channel = "email"
    ext = "eml"

    def __init__(self, run):
        self.run = run
        self.own = own_addresses(run.config)
        self.parser = Parser(self.own)
        prefix = re.escape(str(run.config.setting("subject_tag")))
        self.tag_re = re.compile(r"\[" + prefix + r"(\d+)\]")
        self._prefetch: Prefetch | None = None
        self.agent_mail = AgentMail.load(run)  # None unless an agent works from their mail client

    # -- fetch and decode -----------------------------------------------------------------------
    def decode(self, source, budget):
        """Yield (chunk, [(item, Parsed | Unparseable | None)]): None is parsed in `take`."""
        self._prefetch = Prefetch(source.chunks(budget), self.parser.submit)
        for chunk, job in self._prefetch:
            parsed = self.parser.collect(job)
            self._preload(chunk, parsed)
            yield chunk, list(zip(chunk, parsed, strict=True))

    def decode_one(self, item: base.RawItem):
        return None

    def finish(self, source) -> None:
        """After a source, done or failed: stop fetching, close it, drop uncollected work."""
        if self._prefetch is not None:
            self._prefetch.stop()
        source.close()  # also ends a fetch the thread may still be blocked in
        if self._prefetch is not None:
            self._prefetch.join()
            self._prefetch = None
        if self.parser.pending:  # chunks given to the workers and never collected
            self.parser.close(failed=True)

    def close(self, failed: bool = False) -> None:
        self.parser.close(failed=failed)

    def _preload(self, chunk: list, parsed: list) -> None:
        """What this chunk's messages will ask the index (one query per table instead of
        one per message), and the rows of every ticket they may thread to, in one read."""
        numbers = set()
        index = self.run.index
        ok = [p for p in parsed if isinstance(p, mailparse.Parsed)]
        keys = [it.key for it in chunk] + [p.key for p in ok]
        index.keys.prefetch(keys)
        index.qkeys.prefetch(keys)
        index.sent.prefetch(p.message_id for p in ok)
        index.mids.prefetch(m for p in ok for m in (p.message_id, *p.in_reply_to, *p.references))
        index.prefetch_contacts((p.from_addr or "").strip().lower() for p in ok)
        for p in parsed:
            if not isinstance(p, mailparse.Parsed):
                continue
            for mid in (*p.in_reply_to, *p.references):
                number = index.ticket_of(mid)
                if number is not None:
                    numbers.add(number)
            numbers.update(self._tags(p))
        self.run.preload(numbers)

    # -- one message ----------------------------------------------------------------------------
    def key_of(self, item: base.RawItem, parsed) -> str:
        if isinstance(parsed, mailparse.Parsed):
            return parsed.key or mailparse.content_key(item.raw, parsed.message_id)
        return mailparse.content_key(item.raw)

    def replay_spec(self, entry: dict) -> dict:
        specs = {str(s.get("name")): s for s in self.run.config.section("channels", []) or []}
        return specs.get(entry.get("source") or "", {"name": entry.get("source") or "quarantine", "type": "maildir"})

    def take(self, item: base.RawItem, parsed, spec: dict, replay: bool = False) -> None:
        run = self.run
        if item.meta.get("known") or item.meta.get("gone"):
            run.report.duplicates += 1
            return
        p = parsed if parsed is not None else mailparse.parse(item.raw, self.own)
        ckey = self.key_of(item, p)
        index = run.index
        # our own reply coming back (a Bcc or Sent copy), or a message stored already
        if p.message_id in index.sent or index.seen(ckey) or (not replay and ckey in index.qkeys):
            run.remember(item.key)  # skip it cheaply next time (the saved index is a cache of the log)
            run.report.duplicates += 1
            return
        if self.agent_mail is not None and not p.bounce and self.agent_mail.claims(p):
            self.agent_mail.take(item, p, ckey, spec)  # an agent's reply: before any customer threading
        elif p.bounce:
            self._bounce(item, p, ckey, spec)
            run.report.bounces += 1
        else:
            cid = run.contact(Identity(name=p.from_name, email=p.from_addr), "email")
            number = run.thread(Inbound(
                "email", cid, self._new_ticket(p, spec), label=f"by email, {p.message_id or 'no Message-ID'}",
                refs=(*p.in_reply_to, *reversed(p.references)), tags=tuple(self._tags(p)),
                passive=p.auto_reason is not None))
            run.emit("message.received", ticket=number, data=self._data(item, p, ckey, spec))
            if p.message_id:
                index.add_mid(p.message_id, number, run.journal)
        run.remember(ckey, item.key)
        run.report.stored += 1

    def _tags(self, p) -> list[int]:
        """Ticket numbers in the subject tags (an absurd one, e.g. 30 digits, is ignored)."""
        return [int(m.group(1)) for m in self.tag_re.finditer(p.subject or "") if len(m.group(1)) <= TAG_DIGITS]

    def _new_ticket(self, p, spec: dict) -> NewTicket:
        auto = p.auto_reason is not None
        return NewTicket(subject=(p.subject or "").strip() or "(no subject)", inbox=inbox_of(spec, p),
                         team=spec.get("team"), priority=spec.get("priority") or "normal",
                         status="closed" if auto and (spec.get("auto_messages") or "closed") == "closed" else "new",
                         tags=("auto",) if auto else (),
                         why=f"email from {p.from_addr}" + (f" ({p.auto_reason})" if auto else ""))

    def _data(self, item: base.RawItem, p, ckey: str, spec: dict) -> dict:
        """The `message.received` data; writes the raw message and the attachments."""
        run = self.run
        rel, span = run.files.write_raw(item.raw, run.now)
        data = {"message": ckey, "channel": "email", "message_id": p.message_id, "from": p.from_addr,
                "from_name": p.from_name, "to": p.to, "cc": p.cc, "subject": p.subject,
                "text": p.text[:EVENT_TEXT_LIMIT],  # the whole text (quoted history too) is the raw's:
                **({"text_truncated": True} if len(p.text) > EVENT_TEXT_LIMIT else {}),  # parse.stored_text
                "html": p.html is not None, "raw": rel, "raw_span": span,
                "attachments": [self._blob(part, spec) for part in p.attachments],
                "auto": p.auto_reason is not None, "auto_reason": p.auto_reason, "language": None,
                "inbox": inbox_of(spec, p), "date": p.date, "source": item.source, "source_key": item.key}
        if p.calendar:
            data["calendar"] = p.calendar
        if p.reply_to:
            data["reply_to"] = p.reply_to
        return data

    def _blob(self, part: mailparse.Part, spec: dict) -> dict:
        limit = int(spec.get("attachment_limit") or base.DEFAULT_ATTACHMENT_LIMIT)
        info = {"name": part.name, "type": part.type, "size": part.size, "sha256": None}
        if part.inline:
            info["inline"] = True
        if part.size > limit:
            info["too_large"] = True
            return info
        info["sha256"] = self.run.files.write_blob(part.data, part.sha256)
        return info

    def _bounce(self, item: base.RawItem, p, ckey: str, spec: dict) -> None:
        run = self.run
        b = p.bounce or {}
        number = next((n for n in map(run.index.ticket_of, b.get("message_ids") or ()) if n is not None), None)
        data = {**self._data(item, p, ckey, spec), "kind": "bounce", "bounced_message_ids": b.get("message_ids"),
                "recipients": b.get("recipients"), "status": b.get("status"), "body": _bounce_body(b, p)}
        if number is None:  # kept in the log, never a ticket of its own
            run.emit("message.unmatched", data=data)
        else:
            run.emit("ticket.note", ticket=number, data=data)


def _bounce_body(b: dict, p) -> str:
    who = ", ".join(b.get("recipients") or []) or "the recipient"
    status = f" (status {b['status']})" if b.get("status") else ""
    first = (p.text or "").strip().splitlines()[:5]
    return f"Delivery to {who} failed{status}: {p.subject}\n" + "\n".join(first)
