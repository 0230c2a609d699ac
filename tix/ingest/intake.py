"""Intake: every inbound message becomes a ticket, a reply on the right ticket, or a
quarantine entry. Never lost, never duplicated, whatever the message.

`fetch_all()` reads like the pipeline, one chunk (an IMAP batch) at a time::

    channel.chunks() -> de-duplicate (MailIndex) -> parse -> thread -> events
        -> raw pack + blobs synced -> Batch.flush() (log fsync) -> channel.ack(chunk)

Crash safety (DESIGN.md invariants 1, 2, 6): a message is acknowledged at its source
(flag, move, delete, cursor) only after its events are fsynced; the idempotency keys
(source key: IMAP UIDVALIDITY+UID, maildir name, mbox hash; content key: Message-ID +
body hash) make a re-fetch after a crash a no-op; a message that cannot be processed is
written to `quarantine/` (fsynced), recorded by a `message.quarantined` event, and then
acknowledged like any other, so it is never retried forever and never blocks the batch.
The whole run holds the store's write lock: an overlapping cron run waits, then exits 75.

Threading: In-Reply-To / References against every Message-ID tix has received or sent;
then the subject tag `[#N]` when the sender is the ticket's contact; else a new ticket.
A reply to a resolved ticket reopens it within `reopen_days`; later replies open a new
ticket linked to the old one. Delivery reports become a `ticket.note` (kind `bounce`) on
the ticket of the message that bounced and never open a ticket. Auto-submitted mail
(`mailparse.is_auto_submitted`) never reopens a ticket; without a thread it opens a
ticket tagged `auto`, closed unless the source says `auto_messages: ticket`.
"""
from __future__ import annotations

import os
import re
import secrets
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tix import quarantine, tickets
from tix.channels import base, mailparse
from tix.channels.base import FetchReport
from tix.channels.index import MailIndex
from tix.errors import TixError
from tix.store.log import fsync_dir, iso, utcnow

EVENT_TEXT_LIMIT = 16_000  # characters of text per event (`text_truncated`); the raw file keeps all
SNAPSHOT_BYTES = 96 * 1024 * 1024  # refresh the snapshot within a run after this much log (bounds the tail a crash leaves)


def fetch_all(store, now: datetime | None = None, limit: int | None = None, sources=None,
              progress=None) -> FetchReport:
    """Fetch every configured source (or those named in `sources`) into the store.

    Args:
        now: the time recorded on the events (default: the wall clock).
        limit: at most this many new messages in this run; the rest are counted in `left`.
        sources: names of `channels:` entries to fetch (default: all).
        progress: called as progress(source name, messages done, total or None) after
            every batch (the CLI draws a progress line with it on a terminal).
    Returns a FetchReport; a source that failed adds a line to `errors` (it never looks
    like an empty source). Raises StoreLocked when another writer holds the store.
    """
    report = FetchReport()
    specs = base.sources(store.config, sources)
    with store.writing(actor="system", via="tix fetch") as batch:
        intake = Intake(store, batch, now)
        intake.progress = progress
        budget = limit
        try:
            for spec in specs:
                sub = intake.fetch_source(spec, budget)
                report.merge(sub, spec["name"])
                if budget is not None:
                    budget -= sub.stored + sub.quarantined
        except BaseException:
            intake.parser.close(failed=True)
            raise
        intake.parser.close()
        report.tickets_created = intake.created
        intake.sync()
        intake.index.save(store, upto=batch)
    if store.config.section("whatsapp") is not None and not sources:
        _whatsapp(store, now, report)
    return report


def _whatsapp(store, now, report: FetchReport) -> None:
    try:
        from tix.channels.whatsapp import fetch_spool
    except ImportError as exc:
        report.errors.append(f"whatsapp: intake not available ({exc})")
        return
    try:
        report.merge(fetch_spool(store, now=now), "whatsapp")
    except Exception as exc:  # noqa: BLE001 - a failed channel is an error line, not a crash
        if exc.__class__.__name__ == "StoreLocked":
            raise
        report.errors.append(f"whatsapp: {exc}")


class Parser:
    """Parses a chunk of raw messages, on every core when the chunk is large.

    Parsing, not IMAP, bounds intake (DESIGN.md: about 1,900 msg/s per core for the
    stdlib parser), so a chunk of at least `MIN_POOL` messages is split between this
    process and `workers` parse workers (`tix.channels.parseworker`, one per extra CPU,
    at most 3; `TIX_PARSE_WORKERS` overrides). Workers are plain child processes on
    pipes: they inherit no file descriptor (not the store lock), re-run no `__main__`,
    and exit when their stdin closes, i.e. when tix exits or is killed.
    """

    MIN_POOL = 64
    MAIN_SHARE = float(os.environ.get("TIX_PARSE_MAIN_SHARE") or 0.5)  # relative to one worker's 1.0

    def __init__(self, own):
        self.own = own
        self.procs: list = []
        self.pending = 0  # jobs submitted and not yet collected
        env = os.environ.get("TIX_PARSE_WORKERS")
        self.workers = int(env) if env and env.isdigit() else min((os.cpu_count() or 1) - 1, 3)

    def parse_many(self, raws: list[bytes]) -> list:
        return self.collect(self.submit(raws))

    def submit(self, raws: list[bytes]):
        """Hand the workers their share of a chunk now; `collect` later returns it parsed.

        Called by the prefetch thread, so the workers parse chunk N+1 while this process
        stores chunk N. Jobs must be collected in the order they were submitted.
        """
        if self.workers < 1 or len(raws) < self.MIN_POOL:
            return (raws, [], len(raws))  # parsed one by one in `process`
        self.pending += 1
        import pickle

        from tix.channels import parseworker

        procs = self._start()
        # This process also stores the messages, so it parses a smaller share.
        mine = int(len(raws) * self.MAIN_SHARE / (self.MAIN_SHARE + len(procs)))
        share = -(-(len(raws) - mine) // len(procs))
        slices = [raws[i:i + share] for i in range(mine, len(raws), share)]
        for proc, part in zip(procs, slices):
            parseworker.write_frame(proc.stdin, pickle.dumps((part, self.own), protocol=pickle.HIGHEST_PROTOCOL))
        return (raws[:mine], procs[:len(slices)], None)

    def collect(self, job) -> list:
        import pickle

        from tix.channels import parseworker

        mine, procs, local = job
        if local is not None:
            return [None] * local
        out = [parseworker.parse_one(r, self.own) for r in mine]
        for proc in procs:
            frame = parseworker.read_frame(proc.stdout)
            if frame is None:
                raise RuntimeError(f"parse worker {proc.pid} died (exit {proc.poll()})")
            out += pickle.loads(frame)
        self.pending -= 1
        return out

    def _start(self) -> list:
        import subprocess
        import sys

        while len(self.procs) < self.workers:
            self.procs.append(subprocess.Popen([sys.executable, "-m", "tix.channels.parseworker"],
                                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True))
        return self.procs

    def close(self, failed: bool = False) -> None:
        """Stop the workers (killed when `failed`); new ones start on the next `submit`."""
        procs, self.procs = self.procs, []
        self.pending = 0
        for proc in procs:
            try:
                proc.stdin.close()  # end of input: the worker exits
            except OSError:
                pass
            if failed:
                proc.kill()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except Exception:  # noqa: BLE001
                proc.kill()
            if proc.stdout:
                proc.stdout.close()


class Prefetch:
    """A source's `chunks()` run in a thread, up to `depth` chunks ahead of the store.

    Each chunk is handed to `submit` (the parse workers) as soon as it is fetched, so
    fetching (IMAP waits on the server and the socket), parsing (the workers) and storing
    (this thread) overlap. Iterating yields `(chunk, job)` in source order; an error of
    the source is raised here, in the caller's thread. The source's `ack` is called from
    the caller's thread while the next chunks are fetched (sources allow that).
    """

    def __init__(self, chunks, submit, depth: int = 2):
        import queue
        import threading

        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(chunks, submit), name="tix-prefetch", daemon=True)
        self._thread.start()

    def _run(self, chunks, submit) -> None:
        try:
            for chunk in chunks:
                job = submit([it.raw for it in chunk])
                if not self._put(("chunk", chunk, job)):
                    return
            self._put(("end", None, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._put(("error", exc, None))

    def _put(self, item) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        while True:
            kind, value, job = self._queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value, job

    def stop(self) -> None:
        """Ask the thread to stop at its next chunk (a blocked read ends with the source)."""
        self._stop.set()

    def join(self) -> None:
        self._thread.join(timeout=30)


class Intake:
    """One run's working state: the mail index, contacts, tickets touched, files to sync."""

    def __init__(self, store, batch, now=None):
        self.store = store
        self.batch = batch
        self.config = store.config
        self.now = now.astimezone(timezone.utc) if now else None
        self.index = MailIndex.load(store)
        self._contacts: tickets.ContactIndex | None = None
        self.rows: dict[int, dict] = {}
        self.created = 0
        prefix = re.escape(str(self.config.setting("subject_tag")))
        self.tag_re = re.compile(r"\[" + prefix + r"(\d+)\]")
        self.reopen = timedelta(days=int(self.config.setting("reopen_days")))
        self.own = own_addresses(self.config)
        self._dirs: set[Path] = set()
        self._files: list[Path] = []
        self._backup: dict[int, dict] = {}
        self.parser = Parser(self.own)
        self._tail_mark = None
        self._pack: list | None = None  # [fd, path, size] of this chunk's raw pack
        self.progress = None  # see fetch_all

    @property
    def contacts(self) -> tickets.ContactIndex:
        """Loaded on first use: a run with nothing new never opens DuckDB."""
        if self._contacts is None:
            self._contacts = tickets.ContactIndex.load(self.batch.reader)
        return self._contacts

    # -- the run --------------------------------------------------------------------------------
    def fetch_source(self, spec: dict, budget: int | None) -> FetchReport:
        rep = FetchReport()
        cap = spec.get("limit")
        if cap is not None:
            budget = int(cap) if budget is None else min(budget, int(cap))
        try:
            source = base.open_source(self.store, spec)
        except Exception as exc:  # noqa: BLE001
            rep.errors.append(_source_error(spec, exc))
            return rep
        source.seen_key = lambda k: self.index.seen(k) or k in self.index.qkeys
        chunks = Prefetch(source.chunks(budget), self.parser.submit)
        done = 0
        try:
            for chunk, job in chunks:
                parsed = self.parser.collect(job)
                self._preload(parsed)
                for item, pre in zip(chunk, parsed):
                    outcome = self.process(item, spec, pre=pre)
                    setattr(rep, outcome, getattr(rep, outcome) + 1)
                self.sync()
                source.ack(chunk)
                done += len(chunk)
                if self.progress is not None:
                    self.progress(spec["name"], done, source.total)
            rep.left = source.left
        except Exception as exc:  # noqa: BLE001 - the source failed: say so, keep what is stored
            self.sync()
            rep.errors.append(_source_error(spec, exc))
        finally:
            chunks.stop()
            source.close()  # also ends a fetch the thread may still be blocked in
            chunks.join()
            if self.parser.pending:  # chunks given to the workers and never collected
                self.parser.close(failed=True)
        return rep

    def sync(self) -> None:
        """Make the chunk durable: its raw files and blobs, then its events (fsync).

        One `syncfs` for the whole chunk instead of an fsync per file: the issue's
        "fsync per batch, not per message" (per-file fsync measured 3 ms a message).
        """
        self._close_pack()
        if self._files:
            sync_files(self.store.root, self._files, self._dirs)
        self._files.clear()
        self._dirs.clear()
        self.batch.flush()
        self.batch.written.clear()  # keep memory flat over a long run
        self._bound_tail()

    def _bound_tail(self) -> None:
        """Refresh the snapshot when this run has appended more than SNAPSHOT_BYTES.

        A refresh streams the tail (its memory does not grow with it), but the next
        command's reader folds the tail in memory, and message events carry text: a run
        killed after 20,000 messages would leave it a tail of hundreds of MB. Each
        refresh costs about 0.2 s, so they are rare.
        """
        end = self.store.log.end()
        if self._tail_mark is None or end.segment != self._tail_mark.segment:
            self._tail_mark = end
            return
        if end.offset - self._tail_mark.offset > SNAPSHOT_BYTES:
            self._tail_mark = end
            try:
                self.store.refresh_snapshot()
            except Exception:  # noqa: BLE001 - the snapshot is only a cache: intake goes on
                return
            # The run's reader reads the snapshot of the run's start, whose files a second
            # refresh prunes: read the new one (the run's own tickets are in `self.rows`).
            self.batch._reader = None

    @property
    def ts(self) -> str | None:
        return iso(self.now) if self.now else None

    # -- one message ----------------------------------------------------------------------------
    def process(self, item: base.RawItem, spec: dict, replay: bool = False, pre=None) -> str:
        """Store one raw item; returns "stored", "duplicates" or "quarantined".

        `pre` is the item already parsed (a Parsed, or the Unparseable it raised) by
        `Parser.parse_many`; without it the item is parsed here.
        """
        if item.meta.get("known") or item.meta.get("gone"):
            return "duplicates"
        raw = item.raw
        try:
            if isinstance(pre, mailparse.Unparseable):
                raise pre
            parsed = pre if pre is not None else mailparse.parse(raw, self.own)
        except mailparse.Unparseable as exc:
            if replay:
                raise
            return self.quarantine(item, raw, str(exc), mailparse.content_key(raw))
        ckey = parsed.key or mailparse.content_key(raw, parsed.message_id)
        if parsed.message_id in self.index.sent:  # our own reply (a Bcc or Sent copy): already stored
            if item.key:
                self.index.keys.add(item.key)
            return "duplicates"
        if self.index.seen(ckey) or (not replay and ckey in self.index.qkeys):
            if item.key:  # skip it cheaply next time (the saved index is a cache of the log)
                self.index.keys.add(item.key)
            return "duplicates"
        mark = self._savepoint()
        try:
            self._store(item, parsed, ckey, spec)
        except Exception as exc:  # noqa: BLE001 - poison message: contain it, go on
            self._rollback(mark)
            if replay:
                raise
            return self.quarantine(item, raw, f"{type(exc).__name__}: {exc}", ckey)
        self.index.keys.add(ckey)
        if item.key:
            self.index.keys.add(item.key)
        return "stored"

    def quarantine(self, item, raw: bytes, error: str, ckey: str | None) -> str:
        qid = quarantine.put(self.store, "email", raw, error, source=item.source, key=item.key,
                             meta={k: v for k, v in item.meta.items() if isinstance(v, (str, int))}, now=self.now)
        self.batch.emit("message.quarantined", ts=self.ts, actor=f"channel:{item.source}",
                        data={"channel": "email", "source": item.source, "source_key": item.key,
                              "message": ckey, "quarantine": qid, "error": " ".join(error.split())[:500]})
        for k in (ckey, item.key):
            if k:
                self.index.qkeys.add(k)
        return "quarantined"

    def _store(self, item, p: mailparse.Parsed, ckey: str, spec: dict) -> None:
        rel, span = self.write_raw(item.raw)
        atts = [self.write_blob(part, spec) for part in p.attachments]
        actor = f"channel:{item.source}"
        data = {"message": ckey, "channel": "email", "message_id": p.message_id, "from": p.from_addr,
                "from_name": p.from_name, "to": p.to, "cc": p.cc, "subject": p.subject,
                "text": p.text[:EVENT_TEXT_LIMIT], "text_full": p.text_full[:EVENT_TEXT_LIMIT],
                **({"text_truncated": True} if len(p.text_full) > EVENT_TEXT_LIMIT else {}),
                "html": p.html is not None, "raw": rel, "raw_span": span, "attachments": atts, "auto": p.auto_reason is not None,
                "auto_reason": p.auto_reason, "language": None, "inbox": inbox_of(spec, p),
                "date": p.date, "source": item.source, "source_key": item.key}
        if p.calendar:
            data["calendar"] = p.calendar
        if p.reply_to:
            data["reply_to"] = p.reply_to
        if p.bounce:
            self._bounce(p, data, actor)
            return
        number = self.thread(p, spec, data, actor)
        self.batch.emit("message.received", ticket=number, data=data, ts=self.ts, actor=actor)
        if p.message_id:
            self.index.add_mid(p.message_id, number)

    # -- threading ------------------------------------------------------------------------------
    def thread(self, p: mailparse.Parsed, spec: dict, data: dict, actor: str) -> int:
        cid = tickets.find_or_create_contact(self.batch, self.contacts, name=p.from_name, email=p.from_addr)
        number = self._by_headers(p)
        if number is None:
            number = self._by_tag(p, cid)
        if number is not None:
            row = self.row(number)
            if row is not None:
                return self._reply(row, p, spec, data, actor, cid)
        return self._new_ticket(p, spec, data, cid, actor)

    def _by_headers(self, p) -> int | None:
        for mid in [*p.in_reply_to, *reversed(p.references)]:
            number = self.index.ticket_of(mid)
            if number is not None:
                return number
        return None

    def _tags(self, p) -> list[int]:
        """Ticket numbers in the subject tags (an absurd one, e.g. 30 digits, is ignored)."""
        return [int(m.group(1)) for m in self.tag_re.finditer(p.subject or "") if len(m.group(1)) <= 12]

    def _by_tag(self, p, cid: int) -> int | None:
        for number in self._tags(p):
            row = self.row(number)
            if row is not None and row.get("contact") == cid:
                return number
        return None

    def _reply(self, row: dict, p, spec, data, actor, cid) -> int:
        if row["status"] not in ("resolved", "closed") or p.auto_reason:
            return row["number"]
        resolved = _parse_ts(row.get("resolved_at") or row.get("closed_at") or row.get("updated_at"))
        now = self.now or utcnow()
        if resolved is None or now - resolved <= self.reopen:
            self._touch(row)
            tickets.set_fields(self.batch, row, {"status": "open"},
                               why=f"customer replied by email ({p.message_id or 'no Message-ID'})")
            return row["number"]
        new = self._new_ticket(p, spec, data, cid, actor, linked=row["number"])
        return new

    def _new_ticket(self, p, spec, data, cid, actor, linked: int | None = None) -> int:
        auto = p.auto_reason is not None
        status = "closed" if auto and (spec.get("auto_messages") or "closed") == "closed" else "new"
        subject = (p.subject or "").strip() or "(no subject)"
        number = tickets.create_ticket(self.batch, subject, channel="email", contact=cid, inbox=data["inbox"],
                                       status=status, team=spec.get("team"), priority=spec.get("priority") or "normal",
                                       tags=["auto"] if auto else (), config=self.config,
                                       why=f"email from {p.from_addr}" + (f" ({p.auto_reason})" if auto else ""))
        self.created += 1
        self.rows[number] = {"number": number, "status": status, "contact": cid, "subject": subject,
                             "resolved_at": None, "closed_at": None, "updated_at": self.ts, "tags": []}
        if linked is not None:
            self.batch.emit("ticket.note", ticket=number, ts=self.ts, actor=actor,
                            data={"kind": "linked", "linked": linked,
                                  "body": f"Follow-up to #{linked}, which was resolved more than "
                                          f"{self.reopen.days} days ago."})
            self.batch.emit("ticket.note", ticket=linked, ts=self.ts, actor=actor,
                            data={"kind": "linked", "linked": number, "body": f"Customer wrote again: see #{number}."})
        return number

    def _bounce(self, p, data: dict, actor: str) -> None:
        b = p.bounce or {}
        number = None
        for mid in b.get("message_ids") or ():
            number = self.index.ticket_of(mid)
            if number is not None:
                break
        data = {**data, "kind": "bounce", "bounced_message_ids": b.get("message_ids"),
                "recipients": b.get("recipients"), "status": b.get("status"),
                "body": _bounce_body(b, p)}
        if number is None:  # kept in the log, never a ticket of its own
            self.batch.emit("message.unmatched", data=data, ts=self.ts, actor=actor)
        else:
            self.batch.emit("ticket.note", ticket=number, data=data, ts=self.ts, actor=actor)

    # -- rows -----------------------------------------------------------------------------------
    def _preload(self, parsed: list) -> None:
        """Read the rows of every ticket this chunk's messages may thread to, at once
        (one snapshot read per chunk instead of one per reply)."""
        numbers = set()
        for p in parsed:
            if not isinstance(p, mailparse.Parsed):
                continue
            for mid in [*p.in_reply_to, *p.references]:
                number = self.index.ticket_of(mid)
                if number is not None:
                    numbers.add(number)
            numbers.update(self._tags(p))
        numbers -= self.rows.keys()
        if numbers:
            for number, row in self.batch.reader.tickets(numbers).items():
                self.rows[number] = dict(row)

    def row(self, number: int) -> dict | None:
        if number not in self.rows:
            r = self.batch.reader.ticket(number)
            if r is None:
                return None
            self.rows[number] = dict(r)
        return self.rows[number]

    def _touch(self, row: dict) -> None:
        self._backup.setdefault(row["number"], dict(row))

    def _savepoint(self):
        self._backup: dict[int, dict] = {}
        b = self.batch
        return (len(b.pending), b.seq, b._max_ticket, b._max_contact, self.created)

    def _rollback(self, mark) -> None:
        b = self.batch
        n, seq, max_t, max_c, created = mark
        del b.pending[n:]
        b.seq, b._max_ticket, b._max_contact, self.created = seq, max_t, max_c, created
        for number, row in self._backup.items():
            self.rows[number] = row
        max_t = b.reader.max_ticket if max_t is None else max_t
        max_c = b.reader.max_contact if max_c is None else max_c
        for number in [k for k in self.rows if k > max_t]:
            del self.rows[number]
        if self._contacts is not None:
            for idx in (self.contacts.by_email, self.contacts.by_phone):
                for k in [k for k, v in idx.items() if v > max_c]:
                    del idx[k]

    # -- files ----------------------------------------------------------------------------------
    def write_raw(self, raw: bytes) -> tuple[str, list[int]]:
        """Append the message, exactly as received, to this chunk's pack; return (path, span).

        One pack file per chunk (`messages/email/Y/M/D/<time>-<pid>-<random>.pack`), synced
        with the chunk, instead of a file per message: creating a file costs more than
        parsing the message. A message's bytes are `[offset, length]` of the pack
        (`base.read_raw`). Bytes of a message rolled back (quarantined) or of a chunk
        that crashed before its events are never referenced; a re-run writes a new pack.
        """
        if self._pack is None:
            day = self.ts or iso(utcnow())
            name = f"{time.time_ns() // 1_000_000}-{os.getpid()}-{secrets.token_hex(4)}.pack"
            rel = f"messages/email/{day[:4]}/{day[5:7]}/{day[8:10]}/{name}"
            path = self.store.root / rel
            if path.parent not in _MADE_DIRS:
                path.parent.mkdir(parents=True, exist_ok=True)
                _MADE_DIRS.add(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            self._pack = [fd, rel, 0]
            self._files.append(path)
            self._dirs.add(path.parent)
        fd, rel, offset = self._pack
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view):]
        self._pack[2] = offset + len(raw)
        return rel, [offset, len(raw)]

    def _close_pack(self) -> None:
        if self._pack is not None:
            os.close(self._pack[0])
            self._pack = None

    def write_blob(self, part: mailparse.Part, spec: dict) -> dict:
        limit = int(spec.get("attachment_limit") or base.DEFAULT_ATTACHMENT_LIMIT)
        info = {"name": part.name, "type": part.type, "size": part.size, "sha256": None}
        if part.inline:
            info["inline"] = True
        if part.size > limit:
            info["too_large"] = True
            return info
        digest = part.sha256
        path = self.store.root / "blobs" / "sha256" / digest[:2] / digest
        try:
            whole = path.stat().st_size == part.size  # a crash may have left a part of it
        except FileNotFoundError:
            whole = False
        if not whole:
            _durable_write(path, part.data, self._dirs, self._files)
        info["sha256"] = digest
        return info


_MADE_DIRS: set = set()


def _durable_write(path: Path, data: bytes, dirs: set, later: list | None = None) -> None:
    """Write a file that may be referenced by an event once it is synced.

    With `later`, the file is written in place (its name is its content key or hash: a
    half-written file left by a crash is never referenced, because its event comes only
    after the sync, and the re-run rewrites it whole) and appended to `later` for the
    caller's one sync of the chunk (`sync_files`). Without it, the file is written via a
    temp file, fsynced and renamed.
    """
    parent = path.parent
    if parent not in _MADE_DIRS:
        parent.mkdir(parents=True, exist_ok=True)
        _MADE_DIRS.add(parent)
    target = path if later is not None else parent / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if later is None:
            os.fsync(fd)
    finally:
        os.close(fd)
    if later is None:
        os.replace(target, path)
    else:
        later.append(path)
    dirs.add(parent)


def _syncfs():
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _syncfs()


def sync_files(root: Path, files: list, dirs) -> None:
    """Make written files and their directory entries durable.

    Linux `syncfs` flushes the store's whole file system in one call (data and
    metadata); elsewhere each file and directory is fsynced.
    """
    if _SYNCFS is not None:
        fd = os.open(root, os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for d in dirs:
        fsync_dir(d)


def _bounce_body(b: dict, p) -> str:
    who = ", ".join(b.get("recipients") or []) or "the recipient"
    status = f" (status {b['status']})" if b.get("status") else ""
    first = (p.text or "").strip().splitlines()[:5]
    return f"Delivery to {who} failed{status}: {p.subject}\n" + "\n".join(first)


def _parse_ts(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _source_error(spec: dict, exc: Exception) -> str:
    text, label = _msg(exc), f"source {spec['name']}:"
    return text if text.startswith(label) else f"{label} {text}"


def _msg(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, TixError):  # already one line for a person
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def inbox_of(spec: dict, p) -> str | None:
    addr = spec.get("address") or spec.get("user")
    if addr and "@" in str(addr):
        return str(addr).lower()
    return p.to[0] if p.to else None


def own_addresses(config) -> tuple[str, ...]:
    out = []
    for spec in config.section("channels", []) or []:
        addr = spec.get("address") or spec.get("user")
        if addr and "@" in str(addr):
            out.append(str(addr).lower())
    frm = (config.section("outbound", {}) or {}).get("from")
    if frm:
        from email.utils import parseaddr

        a = parseaddr(str(frm))[1].lower()
        if a:
            out.append(a)
    return tuple(dict.fromkeys(out))


def replay_email(store, entry: dict, raw: bytes, now=None) -> None:
    """Replay one quarantined email (raises, with the reason, if it still fails)."""
    specs = {str(s.get("name")): s for s in store.config.section("channels", []) or []}
    spec = specs.get(entry.get("source") or "", {"name": entry.get("source") or "quarantine", "type": "maildir"})
    with store.writing(actor="system", via="tix quarantine replay") as batch:
        intake = Intake(store, batch, now)
        item = base.RawItem(entry.get("source") or "quarantine", entry.get("key"), raw, {})
        intake.process(item, spec, replay=True)
        intake.sync()
        intake.index.save(store, upto=batch)
