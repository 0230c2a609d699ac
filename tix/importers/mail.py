"""Mail history: an mbox or maildir (e.g. Google Takeout of a shared inbox), or an IMAP
folder since a date, through the live email step of the intake.

The sources are the live ones (`tix.channels.mail.{mbox,maildir,imap}`, same keys, so a
message fetched live and imported is stored once), read only and in the order the
messages were written (their Date), so that a reply finds the message it answers.

`ImportMailStep` is the live `MailStep` plus what history needs: each message is taken in
at its Date; a message from the shop (an address of the store or an agent, or `--address`)
is the agent's reply, recorded as an imported `message.sent` on the ticket it answers; the
Gmail labels of a new ticket (`X-Gmail-Labels`) become its tags, with `imported`.
"""
from __future__ import annotations

import hashlib
import mailbox
import re
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime

from tix.channels.base import RawItem
from tix.channels.mail import imap, maildir, mbox
from tix.channels.mail import parse as mailparse
from tix.errors import UsageError
from tix.importers import TAG
from tix.ingest.intake import Identity, Inbound
from tix.ingest.mail import EVENT_TEXT_LIMIT, MailStep
from tix.store.log import iso, parse_ts_or_none

# Gmail's own labels: where a message is, not what it is about.
SYSTEM_LABELS = {"inbox", "sent", "important", "opened", "unread", "starred", "archived", "chat", "drafts",
                 "trash", "draft", "sent-mail", "all-mail"}
_SLUG = re.compile(r"[^\w-]+")
_HEADERS = BytesHeaderParser(policy=compat32)


def _date_of(raw: bytes) -> float:
    """The message's Date as a POSIX time (0 when missing or unreadable: first)."""
    try:
        value = _HEADERS.parsebytes(raw[:65536], headersonly=True)["Date"]
        return parsedate_to_datetime(str(value)).timestamp() if value else 0.0
    except (TypeError, ValueError, IndexError, OverflowError):
        return 0.0


def labels(raw: bytes) -> list[str]:
    """Tags from the Gmail labels of a Takeout message (system labels left out)."""
    value = _HEADERS.parsebytes(raw[:65536], headersonly=True)["X-Gmail-Labels"]
    if not value:
        return []
    try:
        text = str(make_header(decode_header(str(value))))
    except (UnicodeError, LookupError, ValueError):
        text = str(value)
    out = []
    for label in text.split(","):
        name = label.strip().lower()
        if not name or name in SYSTEM_LABELS or name.startswith("category "):
            continue
        tag = _SLUG.sub("-", name).strip("-")
        if tag and tag not in out:
            out.append(tag)
    return out


def _chunks(entries: list[tuple], size: int):
    """Entries (date, key, load) in date order, as lists of RawItem of at most `size`."""
    entries.sort(key=lambda e: (e[0], e[1]))
    for i in range(0, len(entries), size):
        yield [load() for _, _, load in entries[i:i + size]]


class MboxImport(mbox.MboxSource):
    def chunks(self, limit=None):
        if not self.path.is_file():
            raise UsageError(f"no mbox file at {self.path}")
        box = mailbox.mbox(str(self.path), create=False)
        try:
            entries = []
            for n, k in enumerate(box.iterkeys()):
                raw = box.get_bytes(k)
                key = f"mbox:{self.name}:{hashlib.sha256(raw).hexdigest()[:40]}"
                if not self.seen_key(key):
                    entries.append((_date_of(raw), n, lambda k=k, key=key, n=n: RawItem(
                        self.name, key, box.get_bytes(k), {"index": n, "where": f"{self.path}: message {n + 1}"})))
            self.total = len(entries)
            yield from _chunks(entries, self.batch_size)
        finally:
            box.close()


class MaildirImport(maildir.MaildirSource):
    def chunks(self, limit=None):
        from tix.store.files import read_regular

        entries = []
        for path in self.files():
            key = f"maildir:{self.name}:{path.name.split(':2,')[0]}"
            if self.seen_key(key):
                continue
            raw = read_regular(path)
            entries.append((_date_of(raw), path.name, lambda p=path, key=key: RawItem(
                self.name, key, read_regular(p), {"path": str(p), "where": str(p)})))
        self.total = len(entries)
        yield from _chunks(entries, self.batch_size)

    def ack(self, items):
        pass  # an import only reads


class ImapImport(imap.ImapSource):
    """The folder's messages written since a date (`SENTSINCE`: by their Date header), read
    only (BODY.PEEK, no flag, no cursor), in date order; the keys are the live source's, so
    a message both fetched and imported is stored once."""

    def __init__(self, store, spec, known=None):
        super().__init__(store, spec, known)
        self.cursor = {}

    def _select(self, client, folder: str) -> list[int]:
        info = client.select_folder(folder, readonly=True)
        self.folder = folder
        self.cursor[folder] = {"uidvalidity": int(info.get(b"UIDVALIDITY") or 0), "last_uid": 0}
        since = self.spec.get("since")
        return sorted(client.search(["SENTSINCE", since] if since else ["ALL"]))  # by the Date header

    def chunks(self, limit=None):
        for chunk in super().chunks(limit):
            chunk.sort(key=lambda it: (_date_of(it.raw), it.meta["uid"]))
            yield chunk

    def ack(self, items):
        pass  # an import only reads: no flag, no move, no cursor

    def close(self) -> None:
        self._cursor_dirty = False
        super().close()


class ImportMailStep(MailStep):
    """The live email step, for history (see the module docstring)."""

    def __init__(self, run, address: str | None = None):
        super().__init__(run)
        agents = run.config.agents
        self.agent_of = {a.email.lower(): login for login, a in agents.items() if a.email}
        self.ours = {*self.own, *self.agent_of, *([address.lower()] if address else [])}
        self.last: dict[int, tuple[str, str]] = {}  # ticket -> ("in" | "out", time of its last message)
        self._labels: list[str] = []

    def take(self, item: RawItem, parsed, spec: dict, replay: bool = False) -> None:
        if item.meta.get("known") or item.meta.get("gone"):
            return super().take(item, parsed, spec, replay)
        run = self.run
        p = parsed if parsed is not None else mailparse.parse(item.raw, self.own)
        run.at(parse_ts_or_none(p.date))
        if (p.from_addr or "").lower() in self.ours and not p.bounce:
            return self._reply(item, p, spec)
        self._labels = labels(item.raw)
        stored = run.report.stored
        super().take(item, p, spec, replay)
        number = run.index.ticket_of(p.message_id) if p.message_id else None
        if run.report.stored > stored and number is not None:
            self._note(number, "in")

    def _new_ticket(self, p, spec: dict):
        new = super()._new_ticket(p, spec)
        new.tags = tuple(dict.fromkeys((*new.tags, TAG, *self._labels)))
        return new

    def _note(self, number: int, side: str) -> None:
        self.run.journal.set(self.last, number, (side, self.run.ts or iso(self.run.clock())))

    def _reply(self, item: RawItem, p, spec: dict) -> None:
        """The shop's message: an imported `message.sent` on the ticket it answers (a new
        ticket with its first recipient as the customer when it answers none)."""
        run, index = self.run, self.run.index
        ckey = self.key_of(item, p)
        if p.message_id in index.sent or index.seen(ckey):
            run.remember(item.key)
            run.report.duplicates += 1
            return
        refs = (*p.in_reply_to, *reversed(p.references))
        number = next((n for n in map(index.ticket_of, refs) if n is not None), None)
        if number is None:
            to = next((a for a in p.to if a.lower() not in self.ours), None)
            self._labels = labels(item.raw)
            cid = run.contact(Identity(email=to), "email") if to else None
            new = self._new_ticket(p, spec)
            new.why = f"imported: a message from {p.from_addr} to {to or 'nobody'}"
            number = run.thread(Inbound("email", cid, new, label=f"by email, {p.message_id}", passive=True))
        rel, span = run.files.write_raw(item.raw, run.clock())
        agent = self.agent_of.get(p.from_addr.lower()) or p.from_addr.lower()
        run.batch.emit("message.sent", ticket=number, actor=f"user:{agent}", ts=run.ts, data={
            "message": ckey, "channel": "email", "message_id": p.message_id, "from": p.from_addr,
            "to": p.to, "cc": p.cc, "subject": p.subject, "text": p.text[:EVENT_TEXT_LIMIT], "raw": rel,
            "raw_span": span, "date": p.date, "imported": True, "source": item.source, "source_key": item.key})
        if p.message_id:
            index.add_mid(p.message_id, number, run.journal)
            run.journal.add(index.sent, p.message_id)
        run.remember(ckey, item.key)
        run.report.stored += 1
        run.report.replies += 1
        self._note(number, "out")
