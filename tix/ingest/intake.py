"""The intake stage every channel shares: one run's state and the rules that do not depend
on the channel.

`Intake` is one `tix fetch` run under the store's write lock (`tix.ingest.fetch_all`
drives it): the channel's step decodes what a source fetched, `take` takes each item in
(de-duplicate, contacts, tickets, events), `commit` makes the chunk durable (files
synced, then the events appended and fsynced), and only then is it acknowledged.

The shared rules, written once:

- **De-duplication**: every item has idempotency keys (`MessageIndex`); a stored key is a
  no-op, a quarantined one is skipped by fetch (not by replay).
- **Contacts** (`contact`): one `tix.tickets.ContactIndex`; a sender is found by WhatsApp
  user id, email address or phone (following merges), else created; identifiers and a
  missing name seen later are added to the contact.
- **Threading** (`thread`): a reaction, edit or deletion joins the ticket of the message
  it is about; a conversation (WhatsApp: contact + business number) with an open ticket
  joins it (one open ticket per conversation); else the first known message it answers
  (email In-Reply-To/References, WhatsApp `context`), else a subject tag `[#N]` of a ticket
  of the same contact, else the conversation's last ticket; else a new ticket. A ticket that
  was merged stands for the ticket it was merged into (`MessageIndex.final`).
- **Reopen** (`_continue`): a customer message on a pending ticket sets it open; on a
  resolved or closed one it reopens it when it was sent within `reopen_days` of the
  resolution (the `settings:` value, or the channel section's own `reopen_days`), else
  it opens a new ticket linked to the old one (custom field `linked` and a `linked` note
  on both). Passive messages (auto-submitted mail, reactions, deletions) never reopen and
  never change a status. The message's time is the one the channel vouches for (Meta's
  timestamp) or else the time of the run (an email's Date header is the sender's claim).
- **Savepoint and rollback** (`take`): an item that fails is undone whole (its events,
  the ticket and contact numbers, the in-memory entries, its counts) and quarantined.
- **Quarantine** (`quarantine`): the item, exactly as received, goes to `quarantine/`
  with its error (fsynced), a `message.quarantined` event records its keys, the report
  gets one error line; it is then acknowledged like any other, so it never blocks the
  batch and is never retried forever. `tix quarantine replay` runs it through `take`
  again (`replay=True`: a failure raises instead).

Events an item makes carry the run's time (`now`, when given) and the actor
`channel:SOURCE`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from tix import tickets
from tix.channels.base import FetchReport, RawItem, Undecodable
from tix.errors import TixError
from tix.ingest.files import Files, sync_files
from tix.ingest.index import MessageIndex
from tix.ingest.savepoint import Journal, Savepoint
from tix.store import quarantine
from tix.store.log import iso, parse_ts_or_none, utcnow

OPEN = ("new", "open", "pending")
# Steps of `snapshot_every` events a refresh child folds (one after the other: its memory is
# one step's): each child costs ~0.3 s of CPU to start (Python, DuckDB).
REFRESH_STEPS = 2


@dataclass
class Identity:
    """Who sent a message, as its channel knows them."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    user_id: str | None = None  # WhatsApp business-scoped user id (contact field `wa_user_id`)
    fields: dict = field(default_factory=dict)  # more contact fields for a new contact


@dataclass
class NewTicket:
    """How the channel opens a ticket for a message that threads nowhere."""

    subject: str
    inbox: str | None = None
    team: str | None = None
    priority: str = "normal"
    status: str = "new"
    tags: tuple = ()
    why: str | None = None


@dataclass
class Inbound:
    """A customer message as the shared rules see it (see the module docstring)."""

    channel: str  # `email`, `whatsapp`: the ticket's channel and the section of its `reopen_days`
    contact: int
    new: NewTicket
    label: str = ""  # how the reasons name it: "email (<id@x>)", "WhatsApp"
    refs: tuple = ()  # ids of messages it answers, the best first
    tags: tuple = ()  # ticket numbers it names ([#N] in the subject)
    conversation: str | None = None  # one open ticket per (contact, conversation)
    about: str | None = None  # a reaction, edit or deletion: the id of the message it is about
    sent_at: datetime | None = None  # the time the channel vouches for; None: the run's time
    passive: bool = False  # never reopens, never changes a status


class Intake:
    """One run's working state: index, contacts, ticket rows, files, report (per source)."""

    def __init__(self, store, batch, now: datetime | None = None, progress=None):
        self.store = store
        self.batch = batch
        self.config = store.config
        self.now = now.astimezone(timezone.utc) if now else None
        self.ts = iso(self.now) if self.now else None
        self.run_ts = self.ts
        self.item_time: datetime | None = None  # an imported item's own time (`at`)
        self.index = MessageIndex.load(store, writer=True)
        self.journal = Journal()
        self.files = Files(store.root)
        self.report = FetchReport()
        self.rows: dict[int, dict] = {}  # tickets this run read or made, as it changed them
        self.progress = progress  # called as progress(source name, done, total or None)
        self.actor = "system"
        self._contacts: tickets.ContactIndex | None = None
        self._conversations: dict[tuple, int] | None = None
        self._steps: dict[str, object] = {}
        self._refresh = None  # (the refresh child running, the batch's seq it folds up to)
        self._snap_seq = batch.seq  # the batch's seq the snapshot is refreshed up to (or before)
        self._step_seq = batch.seq  # the batch's seq at the last step
        self._refresh_steps: list = []  # (log position, seq) every `snapshot_every` events since
        self._committer = None  # the thread writing chunks (`commit` with `ack`), made on first use
        self._inflight = None  # (its future, the batch's seq after the chunk) of the chunk it writes
        self._failed: BaseException | None = None  # a chunk's write failed: the run writes no more

    def clock(self) -> datetime:
        return self.item_time or self.now or utcnow()

    def at(self, when: datetime | None) -> None:
        """The current item happened at `when` (an import keeps its original time): its
        events carry it and the reopen window is measured from it. Reset by `take`."""
        if when is not None:
            self.item_time = when.astimezone(timezone.utc)
            self.ts = iso(self.item_time)

    # -- the steps ----------------------------------------------------------------------------------
    def use_step(self, step) -> None:
        """Take items of `step.channel` in with this step (an importer's; see tix.importers)."""
        self._steps[step.channel] = step

    def step(self, channel: str):
        """The channel's step (its decode and its part of taking an item in), made once per run."""
        if channel not in self._steps:
            from tix.ingest import mail, whatsapp

            steps = {"email": mail.MailStep, "whatsapp": whatsapp.WhatsAppStep}
            if channel not in steps:
                raise TixError(f"no intake for items of kind {channel!r}")
            self._steps[channel] = steps[channel](self)
        return self._steps[channel]

    def close(self, failed: bool = False) -> None:
        self.wait_commit(raise_errors=False)  # (a run that did not fail waited for it already)
        if self._committer is not None:
            self._committer.shutdown()
            self._committer = None
        for step in self._steps.values():
            step.close(failed)
        self.files.close()
        self.finish_refresh(final=False)  # a refresh child never outlives the run's lock

    def clean_quarantine(self) -> int:
        """After a run's last commit, under the lock: drop quarantine entries of this run's
        channels that no `message.quarantined` event records (a run killed between an entry
        and its event; the rerun that quarantined the item again kept the same entry)."""
        qkeys = self.index.qkeys
        return sum(quarantine.clean(self.store, channel, lambda e: not e.get("key") or e["key"] in qkeys)
                   for channel in self._steps)

    # -- one item -------------------------------------------------------------------------------
    def take(self, step, item: RawItem, decoded, spec: dict, replay: bool = False) -> None:
        """Take one item in, all or nothing (the step counts what it stored in `report`).

        `decoded` is what the channel's decode made of it (or the Undecodable it raised).
        A failure rolls the item back whole and quarantines it (with `replay`, raises).
        """
        self.actor = f"channel:{item.source}"
        self.ts, self.item_time = self.run_ts, None
        mark = Savepoint.take(self.batch, self.journal, self.report)
        try:
            if isinstance(decoded, Exception):
                raise decoded
            step.take(item, decoded, spec, replay)
        except Exception as exc:  # a poison item: contain it, go on (with `replay`, raise)
            mark.rollback(self.batch, self.journal, self.report)
            if replay:
                raise
            self.quarantine(step, item, _error_text(exc), step.key_of(item, decoded))
        self.journal.clear()
        self.ts, self.item_time = self.run_ts, None

    def quarantine(self, step, item: RawItem, error: str, key: str | None = None) -> None:
        """Keep the item with its error in quarantine/ (fsynced), record its keys, report it."""
        channel = step.channel
        qid = quarantine.put(self.store, channel, item.raw, error, source=item.source, key=item.key,
                             meta={k: v for k, v in item.meta.items() if isinstance(v, (str, int))},
                             ext=step.ext, now=self.now)
        self.emit("message.quarantined", data={"channel": channel, "source": item.source, "source_key": item.key,
                                               "message": key, "quarantine": qid,
                                               "error": " ".join(error.split())[:500]})
        for k in (key, item.key):
            if k:
                self.index.qkeys.add(k)
        self.report.quarantined += 1
        self.report.errors.append(f"{item.where}: {' '.join(error.split())} (quarantined as {qid})")

    def emit(self, type: str, ticket: int | None = None, contact: int | None = None, data: dict | None = None,
             why: str | None = None) -> dict:
        """An event of the current item: the run's time, the item's source as actor."""
        return self.batch.emit(type, ticket=ticket, contact=contact, data=data, why=why, actor=self.actor,
                               ts=self.ts)

    def stamp(self, since: int) -> None:
        """Give the events emitted since `since` (by `tix.tickets`' verbs) the item's time and actor."""
        for ev in self.batch.pending[since:]:
            ev["actor"] = self.actor
            if self.ts:
                ev["ts"] = self.ts

    def remember(self, *keys: str | None) -> None:
        for key in keys:
            self.index.remember(key, self.journal)

    # -- the chunk ------------------------------------------------------------------------------
    def commit(self, ack=None) -> None:
        """Make the chunk durable: its files (one sync), then its events (append + fsync).

        After this, and only after, the chunk may be acknowledged at its source: `ack` (the
        source's acknowledgement of the chunk) is called then. With `ack`, the sync, the
        append and `ack` run in the run's committer thread while the caller takes the next
        chunk in (their waits, mostly the disk's, off the intake's path: issue 16); one chunk
        at a time, in order: this waits for the one before, and raises its error here. A
        failed write fails the run (every later commit raises it again): a chunk after it
        may name the tickets it made. Without `ack`, the chunk is written before this returns.

        The index takes the chunk's changes into its open transaction here (`MessageIndex.flush`);
        it is committed only by `save`, after the run's last chunk is written, so it never
        runs ahead of the log.
        """
        self.wait_commit()
        files = self.files.hand_over()
        events = self.batch.hand_over()
        for ev in events:  # the index keeps the contacts' identifiers (the rest it was told)
            if ev["type"].startswith("contact."):
                self.index.fold_contact(ev)
        self.index.flush()
        self.batch.forget_written()  # keep memory flat over a long run
        if ack is None:
            self._bound_tail(self._write(files, events)[0], self.batch.seq)
            return
        if self._committer is None:
            from concurrent.futures import ThreadPoolExecutor

            self._committer = ThreadPoolExecutor(1, thread_name_prefix="tix-commit")
        self._inflight = (self._committer.submit(self._write, files, events, ack), self.batch.seq)

    def _write(self, files, events, ack=None):
        """The chunk's files synced, then its events appended and fsynced, then `ack` called;
        returns (the log position after the events, or None; the error `ack` raised, or None)."""
        if self._failed is not None:
            raise self._failed
        try:
            sync_files(self.files.root, *files)
            pos = self.batch.write(events)
        except BaseException as exc:
            self._failed = exc
            raise
        try:
            if ack is not None:
                ack()
        except Exception as exc:  # noqa: BLE001 - the source's error, raised in the caller's thread
            return pos, exc
        return pos, None

    def wait_commit(self, raise_errors: bool = True) -> None:
        """Wait for the chunk in the committer thread (if any): raise its error (a failed
        write, or its source's acknowledgement), unless `raise_errors` is false (a run
        ending on an error of its own: a write that failed fails the run anyway)."""
        if self._inflight is None:
            if raise_errors and self._failed is not None:
                raise self._failed
            return
        future, seq = self._inflight
        self._inflight = None
        try:
            pos, ack_error = future.result()
        except BaseException:
            if raise_errors:
                raise
            return
        self._bound_tail(pos, seq)
        if ack_error is not None and raise_errors:
            raise ack_error

    def _bound_tail(self, pos, seq: int) -> None:
        """Every `snapshot_every` events of this run, note where the log stands (a step), and
        every REFRESH_STEPS steps have a child process (`tix.store.refresh`) fold them into
        the snapshot while this one goes on storing: a long run leaves no long tail, and DuckDB
        and the fold are never in the intake's memory. One child at a time; `finish_refresh`
        ends the run's. Not while parse workers run (email): the child (~130 MB) beside them
        (~35 MB each) and this process took the run's processes to 380 MB together (issue 16:
        under 250 MB); their steps are folded when the run ends, the workers gone."""
        from tix.store import refresh

        self._reap_refresh(wait=False)
        if pos is None:
            return
        if seq - self._step_seq >= int(self.config.setting("snapshot_every")):
            self._refresh_steps.append((pos, seq))
            self._step_seq = seq
        if self._refresh is None and len(self._refresh_steps) >= REFRESH_STEPS and not self._workers():
            steps, self._refresh_steps = self._refresh_steps, []
            proc = refresh.start(self.store, [p for p, _ in steps])
            if proc is not None:
                self._refresh = (proc, steps[-1][1])

    def _workers(self) -> int:
        """Parse worker processes running for this run's steps now (a mail step's `parser`)."""
        return sum(len(getattr(getattr(step, "parser", None), "procs", ())) for step in self._steps.values())

    def _reap_refresh(self, wait: bool) -> None:
        """Collect the refresh child when it is done (with `wait`: when it is done)."""
        if self._refresh is None:
            return
        proc, seq = self._refresh
        if proc.poll() is None and not wait:
            return
        self._refresh = None
        if proc.wait() == 0:
            self._snap_seq = seq
            # The run's reader reads the snapshot of the run's start, whose files a second
            # refresh prunes: read the new one (the run's own tickets are in `self.rows`).
            self.batch.use_reader(None)

    def finish_refresh(self, final: bool = True) -> None:
        """Wait for the run's refresh child; with `final`, when this run left `snapshot_every`
        events or more unfolded, fold them in a child too (the store's own refresh when the
        lock is let go then finds nothing to do). Before the lock is let go, always."""
        from tix.store import refresh

        self._reap_refresh(wait=True)
        if final and self.batch.seq - self._snap_seq >= int(self.config.setting("snapshot_every")):
            self._release()
            steps, self._refresh_steps = self._refresh_steps, []
            proc = refresh.start(self.store, [p for p, seq in steps if seq < self.batch.seq], end=True)
            if proc is not None:
                self._refresh = (proc, self.batch.seq)
                self._reap_refresh(wait=True)

    def _release(self) -> None:
        """The run is over (its last commit, the index saved): before its refresh child starts,
        let go of what it read and made (ticket rows, contacts, the index and its caches, the
        batch's reader) and hand the freed memory back to the system (~40 ms). The child
        (~150 MB) runs beside this process: a 20,000-message fetch ended at ~95 MB, ~35 MB of
        it memory the run no longer used (issue 16: the two together under 250 MB)."""
        self.rows.clear()
        self._contacts = self._conversations = None
        self.index.close()
        self.index.forget()
        self.batch.use_reader(None)  # (freed as they go: a gc.collect here found nothing more, for 15 ms)
        _trim_heap()

    # -- contacts -------------------------------------------------------------------------------
    @property
    def contacts(self) -> tickets.ContactIndex:
        """Made on first use; looked up in the message index key by key (`MessageIndex.contacts`)."""
        if self._contacts is None:
            self._contacts = self.index.contacts(self.batch)
        return self._contacts

    def contact(self, who: Identity, channel: str) -> int:
        """The sender's contact: found (by user id, email, phone), else created; new
        identifiers and a missing name are added to it."""
        idx, j = self.contacts, self.journal
        email = who.email.strip().lower() if who.email and who.email.strip() else None
        phone = who.phone
        if phone and not (phone.isdigit() and phone[0] != "0"):  # a wa_id is normal already
            phone = tickets.normalize_phone(phone)
        cid = idx.find(email=email, phone=phone, user_id=who.user_id)
        if cid is None:
            fields = {k: v for k, v in {"wa_user_id": who.user_id, **who.fields}.items() if v}
            since = len(self.batch.pending)
            cid = tickets.create_contact(self.batch, who.name, [email] if email else [], [phone] if phone else [],
                                         fields=fields)
            self.index.fresh(contact=cid)
            self.stamp(since)
            for mapping, key in ((idx.by_email, email), (idx.by_phone, phone), (idx.by_user, who.user_id)):
                if key:
                    j.set(mapping, key, cid)
            j.set(idx.names, cid, who.name)
            return cid
        change: dict = {}
        if email and email not in idx.by_email:
            change["add_emails"] = [email]
            j.set(idx.by_email, email, cid)
        if phone and phone not in idx.by_phone:
            change["add_phones"] = [phone]
            j.set(idx.by_phone, phone, cid)
        sets = {}
        if who.user_id and idx.by_user.get(who.user_id) != cid:
            sets["fields.wa_user_id"] = who.user_id
            j.set(idx.by_user, who.user_id, cid)
        if who.name and not idx.names.get(cid):
            sets["name"] = who.name
            j.set(idx.names, cid, who.name)
        if sets:
            change["set"] = sets
        if change:
            self.emit("contact.updated", contact=cid, data=change, why=f"identifiers seen in a {channel} message")
        return cid

    # -- ticket rows ----------------------------------------------------------------------------
    def row(self, number: int | None) -> dict | None:
        if number is None:
            return None
        if number not in self.rows:
            r = self.batch.reader.ticket(number)
            if r is None:
                return None
            self.rows[number] = dict(r)
        return self.rows[number]

    def preload(self, numbers) -> None:
        """Read the rows of these tickets at once (one snapshot read instead of one each)."""
        numbers = set(numbers) - self.rows.keys()
        if numbers:
            for number, row in self.batch.reader.tickets(numbers).items():
                self.rows[number] = dict(row)

    def conversation(self, cid: int, conversation: str) -> int | None:
        """The last ticket of a conversation (an open one wins over a later closed one)."""
        if self._conversations is None:
            self._conversations = self._load_conversations()
        return self._conversations.get((cid, conversation))

    def _load_conversations(self) -> dict[tuple, int]:
        """(contact, inbox) -> ticket, for every WhatsApp conversation; their rows too."""
        out: dict[tuple, tuple] = {}
        con = self.batch.reader.connect()
        cur = con.execute("SELECT number, contact, inbox, status, resolved_at, closed_at, updated_at, tags "
                          "FROM tickets WHERE channel = 'whatsapp' AND contact IS NOT NULL ORDER BY number")
        names = [d[0] for d in cur.description]
        for row in cur.fetchall():
            key = (self.contacts.target(row[1]), row[2] or "")
            prev = out.get(key)
            if prev is not None and prev[3] in OPEN and row[3] not in OPEN:
                continue  # an open ticket wins over a later closed one
            out[key] = row
        con.close()
        for row in out.values():
            self.rows.setdefault(row[0], dict(zip(names, row, strict=True)))
        return {key: row[0] for key, row in out.items()}

    # -- threading and reopening ----------------------------------------------------------------
    def thread(self, m: Inbound) -> int:
        """The ticket a message goes to (opening or reopening one); see the module docstring.
        Counts it in the report: a new ticket, or one it joined."""
        before = self.report.tickets_created
        number = self._thread(m)
        if self.report.tickets_created == before:
            self.report.joined += 1
        return number

    def _thread(self, m: Inbound) -> int:
        final = self.index.final  # a merged ticket's messages go to the ticket it was merged into
        if m.about is not None:
            number = self.index.ticket_of(m.about)
            if self.row(number) is not None:
                return number
        conv = self.row(final(self.conversation(m.contact, m.conversation))) if m.conversation is not None else None
        if conv is not None and conv["status"] in OPEN:
            return self._continue(conv, m)
        row = next((r for r in (self.row(self.index.ticket_of(ref)) for ref in m.refs) if r is not None), None)
        if row is None:
            row = next((self.row(final(r["number"])) for r in map(self.row, m.tags)
                        if r is not None and r.get("contact") == m.contact), None)
        row = row or conv
        if row is None:
            return self._new_ticket(m)
        return self._continue(row, m)

    def _continue(self, row: dict, m: Inbound) -> int:
        number = row["number"]
        if m.passive:
            return number
        if row["status"] == "pending":
            self._set_status(row, "open", f"the customer wrote ({m.label})")
        if row["status"] in OPEN:
            return number
        days = self.reopen_days(m.channel)
        since = parse_ts_or_none(row.get("resolved_at") or row.get("closed_at") or row.get("updated_at"))
        if since is None or (m.sent_at or self.clock()) - since <= timedelta(days=days):
            self._set_status(row, "open", f"the customer replied ({m.label}) within {days:g} days of the resolution")
            self._in_conversation(m, number)
            return number
        return self._new_ticket(m, linked=number)

    def _in_conversation(self, m: Inbound, number: int) -> None:
        """`number` is now the conversation's open ticket (a reply may reopen an older one)."""
        if m.conversation is not None:
            if self._conversations is None:
                self._conversations = self._load_conversations()
            self.journal.set(self._conversations, (m.contact, m.conversation), number)

    def reopen_days(self, channel: str) -> float:
        """The reopen window: the channel section's `reopen_days`, else the `settings:` one."""
        section = self.config.section(channel)
        own = section.get("reopen_days") if isinstance(section, dict) else None
        return float(own if own is not None else self.config.setting("reopen_days"))

    def _set_status(self, row: dict, status: str, why: str) -> None:
        old, since = row["status"], len(self.batch.pending)
        if tickets.set_fields(self.batch, row, {"status": status}, why=why) is not None:
            self.journal.record(row, "status", old)
            self.stamp(since)

    def _new_ticket(self, m: Inbound, linked: int | None = None) -> int:
        spec, since = m.new, len(self.batch.pending)
        why = spec.why
        if linked is not None:
            why = f"{why + '; ' if why else ''}follow-up to #{linked}"
        number = tickets.create_ticket(self.batch, spec.subject, channel=m.channel, contact=m.contact,
                                       inbox=spec.inbox, status=spec.status, team=spec.team, priority=spec.priority,
                                       tags=spec.tags, fields={"linked": linked} if linked is not None else None,
                                       config=self.config, why=why)
        self.index.fresh(ticket=number)
        self.stamp(since)
        self.report.tickets_created += 1
        self.journal.set(self.rows, number, {"number": number, "status": spec.status, "contact": m.contact,
                                             "subject": spec.subject, "resolved_at": None, "closed_at": None,
                                             "updated_at": self.ts, "tags": sorted(spec.tags)})
        self._in_conversation(m, number)
        if linked is not None:
            days = self.reopen_days(m.channel)
            self.emit("ticket.note", ticket=number, data={
                "kind": "linked", "linked": linked,
                "body": f"Follow-up to #{linked}, which was resolved more than {days:g} days ago."})
            self.emit("ticket.note", ticket=linked, data={
                "kind": "linked", "linked": number, "body": f"Customer wrote again: see #{number}."})
        return number


def _trim_heap() -> None:
    """Give the C heap's free memory back to the system (glibc's malloc_trim; elsewhere
    nothing): a long run's freed buffers (the messages, the parse results) stay in the
    process otherwise."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc
        pass


def _error_text(exc: Exception) -> str:
    """The quarantine reason: a decode error says it itself; anything else is a bug."""
    if isinstance(exc, Undecodable):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"
