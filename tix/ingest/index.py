"""The message index: what the log says about messages, kept as a rebuildable cache.

The event log is the truth. This index is derived from it (`message.*`, `outbox.sent`,
`whatsapp.*`, `contact.*` events and bounce notes) and saved to `state/message-index.sqlite`
(0600, SQLite from the standard library) with the log position it covers. Loading it opens
the saved copy and folds every event after that position, so an index that was not saved
(a crash, a kill) is caught up from the log: it can never miss a message that is in the
store. Delete the file and it is rebuilt from the whole log; an erasure or purge drops it
(`tix.tickets.erase`). A cache is never code (DESIGN invariant 10): rows of JSON text.

Nothing is read whole: each map (`keys`, `mids`, …) is a `Table`, this run's changes in
memory over the saved rows, looked up key by key and written back by `save` in one
transaction with the position. So a run costs what it takes in and what was written since
the last run, not what the store holds (issue 16: the JSON copy of a 1M-ticket store was
93 MB, read and written whole by every `tix fetch`).

It also keeps the contacts' identifiers (`contacts()`: the intake's `ContactIndex`),
folded from `contact.*` events by `tix.store.fold` (the one fold): each contact's row in
`kv` (table `c`) and its email addresses, phones and WhatsApp user ids in `ckeys`.

It answers, without scanning the log:
- `seen(key)`: has this idempotency key been stored? Email: the content key (Message-ID
  + body hash) and the source key (IMAP UIDVALIDITY+UID, maildir name, mbox hash);
  WhatsApp: the wamid (messages and system notices) and the key of Meta's error reports.
  `qkeys` holds the keys of quarantined items (skipped by fetch, not by replay).
- `ticket_of(id)`: the ticket a Message-ID or wamid (received or sent) belongs to (after a
  merge the ticket it went into, after a split the new ticket);
- `final(ticket)`: the ticket it was merged into, if it was (`ticket.merged`);
- `thread(ticket)`: the last Message-IDs of a ticket (for In-Reply-To / References);
- `status_of(wamid)`: the furthest delivery status of a WhatsApp message tix sent;
- `auto_count(addr, since)`: the auto-reply cap. (What is still to send: `tix.outbox`.)

The intake changes it while it takes an item in through a `Journal`, so a failed item's
entries are undone (`tix.ingest.savepoint`).
"""
from __future__ import annotations

import os
import sqlite3

import orjson

from tix.store.log import Position

VERSION = 6  # 6: the `late` table (5 is read and brought up to 6 in place: `_upgrade`)
NAME = "message-index.sqlite"
FILES = tuple(NAME + x for x in ("", "-wal", "-shm", "-journal"))  # what an erasure drops (tix.tickets.erase)
OLD_NAMES = ("mail-index.pickle", "message-index.json")  # earlier caches, removed when this one is saved
INTERESTING = (b'"type":"message.', b'"type":"outbox.sent"', b'"type":"whatsapp.', b'"kind":"bounce"',
               b'"type":"ticket.merged"', b'"type":"ticket.split"', b'"type":"agentmail.received"',
               b'"type":"contact.')
SPILL_EVERY = 200_000  # events folded in memory before a long catch-up writes them out (memory stays flat)
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS kv(t TEXT NOT NULL, k TEXT NOT NULL, v TEXT NOT NULL, PRIMARY KEY (t, k)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ckeys(kind TEXT NOT NULL, k TEXT NOT NULL, cid INTEGER NOT NULL, prio INTEGER NOT NULL,
                                 PRIMARY KEY (kind, k, cid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ckeys_cid ON ckeys(cid);
"""
_MISS = object()
_GONE = object()


class _Overlay:
    """A dict-like map: this run's changes (`new`, a popped key as _GONE) over saved answers,
    each read once (`_read`: the value, or _MISS) and kept in `cache`."""

    def __init__(self):
        self.new: dict = {}
        self.cache: dict = {}

    def _read(self, key):
        raise NotImplementedError

    def get(self, key, default=None):
        v = self.new.get(key, _MISS)
        if v is _MISS:
            v = self.cache.get(key, _GONE)
            if v is _GONE:
                v = self.cache[key] = self._read(key)
        return default if v is _MISS or v is _GONE else v

    def __contains__(self, key) -> bool:
        return self.get(key, _MISS) is not _MISS

    def __getitem__(self, key):
        v = self.get(key, _MISS)
        if v is _MISS:
            raise KeyError(key)
        return v

    def __setitem__(self, key, value) -> None:
        self.new[key] = value

    def pop(self, key, default=None):
        v = self.get(key, _MISS)
        if v is _MISS:
            return default
        self.new[key] = _GONE
        return v


class Table(_Overlay):
    """One map of the index, dict- and set-like: this run's changes (`new`) over the rows
    saved in SQLite (`db`; None: memory only). Keys are strings, or ints with `ints`;
    values JSON. What `Journal` and the fold need: get, in, [], []=, pop, add, discard,
    setdefault (its value is written back: the caller may change it in place), items.
    `cache`: saved rows (or _MISS) read this run; the saved rows change only by `flush`."""

    def __init__(self, index: "MessageIndex", name: str, ints: bool = False):
        super().__init__()
        self.index = index
        self.name = name
        self.ints = ints

    def _read(self, key):
        db = self.index.db
        if db is None:
            return _MISS
        row = db.execute("SELECT v FROM kv WHERE t = ? AND k = ?", (self.name, str(key))).fetchone()
        return _MISS if row is None else orjson.loads(row[0])

    def prefetch(self, keys) -> None:
        """Read the saved rows of these keys at once (a chunk's: one query instead of one each)."""
        db = self.index.db
        todo = list({k for k in keys if k is not None and k not in self.new and k not in self.cache})
        if db is None or not todo:
            return
        for i in range(0, len(todo), 500):
            part = todo[i:i + 500]
            found = dict(db.execute(f"SELECT k, v FROM kv WHERE t = ? AND k IN ({','.join('?' * len(part))})",
                                    (self.name, *map(str, part))).fetchall())
            for k in part:
                v = found.get(str(k))
                self.cache[k] = _MISS if v is None else orjson.loads(v)

    def setdefault(self, key, default):
        v = self.get(key, _MISS)
        if v is _MISS:
            v = default
        self.new[key] = v
        return v

    def add(self, key) -> None:
        self.new[key] = 1

    def discard(self, key) -> None:
        self.pop(key)

    def items(self):
        """Every entry (reads all saved rows: for the rare whole-table questions)."""
        out = {}
        db = self.index.db
        if db is not None:
            for k, v in db.execute("SELECT k, v FROM kv WHERE t = ?", (self.name,)):
                out[int(k) if self.ints else k] = orjson.loads(v)
        for k, v in self.new.items():
            if v is _GONE:
                out.pop(k, None)
            else:
                out[k] = v
        return list(out.items())

    def flush(self) -> None:
        """Write this run's changes into the open transaction; drop the rows read so far once
        they are more than CACHED (a chunk's are read at once and used before its flush)."""
        db, name = self.index.db, self.name
        if self.index.writable and self.new:
            db.executemany("DELETE FROM kv WHERE t = ? AND k = ?",
                           [(name, str(k)) for k, v in self.new.items() if v is _GONE])
            db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)",
                           [(name, str(k), orjson.dumps(v)) for k, v in self.new.items() if v is not _GONE])
            for k in self.new:
                self.cache.pop(k, None)
            self.new.clear()
        if len(self.cache) > CACHED:  # a long run: memory stays flat
            self.cache.clear()


# Saved rows (or misses) a table keeps read between flushes. Each message of a fetch leaves
# a few (its keys' misses, its sender's row, its new ticket's `fresh` entries): at 50,000 a
# table, and none dropped from tables this run only reads (`qkeys`), a 20,000-message fetch
# ended ~11 MB larger (issue 16; its speed the same: a chunk reads its own rows at once).
CACHED = 2_000
STATUS_RANK = {"sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 100}
THREAD = 20  # Message-IDs kept per ticket


class MessageIndex:
    def __init__(self, db: sqlite3.Connection | None = None):
        self.db = db  # the saved index (a write transaction is open while a writer uses it); None: in memory
        self.keys = Table(self, "k")  # stored items' keys
        self.qkeys = Table(self, "q")  # quarantined items' keys
        self.sent = Table(self, "s")  # Message-IDs of messages tix sent (a copy coming back is ours)
        self.mids = Table(self, "m")  # Message-ID or wamid -> ticket
        self.threads = Table(self, "t", ints=True)
        self.auto_sent = Table(self, "a")
        self.statuses = Table(self, "w")  # wamid -> [rank, rank recorded with its ticket, status data]
        self.late = Table(self, "l")  # wamids whose furthest status is not on a ticket yet (rank > recorded)
        self.merged = Table(self, "g", ints=True)  # ticket -> the ticket it was merged into (tix.tickets.merge)
        self.crows = Table(self, "c", ints=True)  # contact id -> its folded row (tix.store.fold), with `db` only
        self.tables = (self.keys, self.qkeys, self.sent, self.mids, self.threads, self.auto_sent, self.statuses,
                       self.late, self.merged, self.crows)
        self.seq = 0
        self.pos = Position("", 0)
        self.pos_seq = 0
        self._folded = 0
        self._ckey: dict = {}  # (kind, identifier) -> contact id or None, read this run (prefetch_contacts)
        self._broken = False  # a write failed (a full disk): this run's changes are not saved

    # -- loading and saving --------------------------------------------------------------------
    @classmethod
    def load(cls, store, writer: bool = False) -> "MessageIndex":
        """The index caught up with the log. A `writer` (under the store's write lock) opens
        the saved one for writing (made when missing, rebuilt when damaged or behind a
        rewritten log) and may `save` it; others read it, or fold the log in memory when
        there is none (or it cannot be read)."""
        for attempt in (1, 2):
            idx = None
            try:
                idx = cls._open(store, writer)
                idx.catch_up(store)
                return idx
            except sqlite3.OperationalError:  # cannot be written (a full disk…): the log in memory
                if idx is not None:
                    idx.close()
                break
            except sqlite3.DatabaseError:  # a damaged cache: rebuilt from the log
                if idx is not None:
                    idx.close()
                if not writer or attempt == 2:
                    break
                remove(store)
        idx = cls()
        idx.catch_up(store)
        return idx

    @classmethod
    def _open(cls, store, writer: bool) -> "MessageIndex":
        path = store.path("state", NAME)
        if not writer:
            if not path.exists():
                return cls()
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None,
                                 check_same_thread=False)
        else:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
            # the source asks `skip` from the prefetch thread (tix.ingest.parsing)
            db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            # A rollback journal, not WAL: a reader (`tix reply --preview`) then writes nothing,
            # not even a -shm file. The cache is large enough that a run's changes stay in
            # memory until `save` (a spill would lock readers out until the commit).
            db.execute("PRAGMA journal_mode=DELETE")
            db.execute("PRAGMA cache_size=-65536")
            db.executescript(SCHEMA)
            db.execute("BEGIN IMMEDIATE")
        idx = cls(db)
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("version") in (VERSION, 5):
            if meta["version"] == 5 and writer:
                _upgrade(db)
            idx.seq, idx.pos_seq = int(meta["seq"]), int(meta["pos_seq"])
            idx.pos = Position(meta["segment"], int(meta["offset"]))
            if _position_valid(store, idx):
                return idx
        if not writer:  # stale or foreign: fold the log in memory
            db.close()
            return cls()
        for table in ("meta", "kv", "ckeys"):
            db.execute(f"DELETE FROM {table}")
        idx.seq, idx.pos, idx.pos_seq = 0, Position("", 0), 0
        return idx

    def close(self) -> None:
        if self.db is not None:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self.db.close()
            self.db = None

    def forget(self) -> None:
        """Drop what this run read of the saved index (the tables' caches, the contacts'
        identifiers): it is read again when asked (the end of a long run lets it go)."""
        for table in self.tables:
            table.cache.clear()
        self._ckey.clear()

    @property
    def writable(self) -> bool:
        return self.db is not None and not self._broken and self.db.in_transaction

    def catch_up(self, store) -> None:
        """Fold the events after `self.pos` into the index."""
        start = self.pos if self.pos.segment else None
        loads = orjson.loads
        last = None
        for raw, seg, off in store.log.read_raw(start):
            self.pos = Position(seg, off)
            last = raw
            if any(m in raw for m in INTERESTING):
                self.apply(loads(raw))
                self._folded += 1
                if self._folded >= SPILL_EVERY and self.writable:  # a long catch-up: memory stays flat
                    self.pos_seq = _seq_of(raw)
                    self._write()
        if last is not None:
            self.pos_seq = _seq_of(last)

    def save(self, store, upto=None) -> None:
        """Save the index (a writer's: `load(writer=True)`). With `upto` (a flushed Batch
        whose events were all applied to this index as they were made), it is saved as
        covering the log up to its end, so the next load need not read this run's events
        again. The index stays open: a later save writes what changed since."""
        if not self.writable:
            return
        if upto is not None and not upto.pending:
            self.pos = store.log.end()
            self.pos_seq = upto.seq
        try:
            self._write()
        except sqlite3.OperationalError:  # a full disk: the saved index stays where it was (the log is the truth)
            self._broken = True
            return
        for old in OLD_NAMES:
            try:
                store.path("state", old).unlink()
            except FileNotFoundError:
                pass

    def flush(self) -> None:
        """Move this run's changes into the open transaction (`Intake.commit`, per chunk:
        memory stays flat over a long run; they are committed with the position by `save`).
        Only between items: a Journal cannot undo what was flushed."""
        try:
            for table in self.tables:
                table.flush()
        except sqlite3.OperationalError:  # a full disk: this run's changes are not saved (see `save`)
            self._broken = True
        if len(self._ckey) > CACHED:
            self._ckey.clear()

    def _write(self) -> None:
        """Write what changed and the position, commit, and go on in a new transaction."""
        db = self.db
        for table in self.tables:
            table.flush()
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
            ("version", VERSION), ("segment", self.pos.segment), ("offset", self.pos.offset),
            ("pos_seq", self.pos_seq or 0), ("seq", self.seq)])
        db.execute("COMMIT")
        db.execute("BEGIN IMMEDIATE")
        self._folded = 0

    # -- contacts ------------------------------------------------------------------------------
    def contacts(self, batch):
        """The intake's `ContactIndex`: looked up here key by key (a writer's index), else
        loaded whole from the batch's reader (`tix.tickets.ContactIndex.load`)."""
        from tix.tickets.contacts import ContactIndex

        if not self.writable:
            return ContactIndex.load(batch.reader)
        return ContactIndex(by_email=_Keys(self, "email"), by_phone=_Keys(self, "phone"), by_user=_Keys(self, "user"),
                            names=_Names(self), merged=_Merged(self))

    def fold_contact(self, ev: dict) -> None:
        """A `contact.*` event: the contact's row (the one fold) and its identifiers (a
        writer's index only: readers never ask about contacts)."""
        if not self.writable:
            return
        from tix.store.fold import State

        cid = ev.get("contact")
        if cid is None:
            return
        old = self.crows.get(cid)
        state = State(contacts={cid: dict(old)} if old else {})
        state.apply(ev)
        row = state.contacts.get(cid)
        if row is None:
            return
        self.crows[cid] = row
        before, after = _identifiers(old), _identifiers(row)
        if before != after:
            for kind, k, _ in before ^ after:
                self._ckey.pop((kind, k), None)
            try:
                self.db.executemany("DELETE FROM ckeys WHERE kind = ? AND k = ? AND cid = ?",
                                    [(kind, k, cid) for kind, k, _ in before - after])
                self.db.executemany("INSERT OR REPLACE INTO ckeys VALUES (?, ?, ?, ?)",
                                    [(kind, k, cid, prio) for kind, k, prio in after - before])
            except sqlite3.OperationalError:  # a full disk: nothing of this run is saved (see `save`)
                self._broken = True

    def prefetch_contacts(self, emails) -> None:
        """Read the contacts of these email addresses at once (a chunk's senders)."""
        if not self.writable:
            return
        emails = list({e for e in emails if e and ("email", e) not in self._ckey})
        cids = set()
        for i in range(0, len(emails), 500):
            part = emails[i:i + 500]
            best: dict = {}
            for k, c in self.db.execute(
                    f"SELECT k, max(cid) FROM ckeys WHERE kind = 'email' AND k IN ({','.join('?' * len(part))}) "
                    "GROUP BY k", part):
                best[k] = c
            for e in part:
                self._ckey[("email", e)] = best.get(e)
            cids.update(best.values())
        self.crows.prefetch(cids)

    def fresh(self, ticket: int | None = None, contact: int | None = None) -> None:
        """A ticket or contact this run has just made: nothing saved is about it, so its
        lookups (thread, merge, name, row) need no read of the saved index (a query each
        for every new ticket and contact, a third of the index's time in a large fetch)."""
        if ticket is not None:
            self.threads.cache.setdefault(ticket, _MISS)
            self.merged.cache.setdefault(ticket, _MISS)
        if contact is not None:
            self.crows.cache.setdefault(contact, _MISS)

    def contact_row(self, cid) -> dict | None:
        return self.crows.get(cid)

    def contact_of(self, kind: str, key: str) -> int | None:
        """The contact an identifier names, as `ContactIndex.load` decides it: the last
        contact that has it (a WhatsApp user id: as its current id first, else the first
        contact that had it before), then the contact that one was merged into."""
        cid = self._ckey.get((kind, key), _MISS)
        if cid is None:
            return None
        if cid is not _MISS:
            c = self.crows.get(cid) or {}
            return c.get("merged_into") or cid
        if kind == "user":
            row = self.db.execute("SELECT cid FROM ckeys WHERE kind = 'user' AND k = ? "
                                  "ORDER BY prio DESC, CASE prio WHEN 2 THEN -cid ELSE cid END LIMIT 1",
                                  (key,)).fetchone()
        else:
            row = self.db.execute("SELECT cid FROM ckeys WHERE kind = ? AND k = ? ORDER BY cid DESC LIMIT 1",
                                  (kind, key)).fetchone()
        if row is None:
            return None
        c = self.crows.get(row[0]) or {}
        return c.get("merged_into") or row[0]

    # -- folding -----------------------------------------------------------------------------
    def apply(self, ev: dict) -> None:
        kind = ev.get("type")
        data = ev.get("data") or {}
        self.seq = max(self.seq, ev.get("seq", 0))
        ticket = ev.get("ticket")
        if kind.startswith("contact."):
            self.fold_contact(ev)
        elif kind == "message.quarantined":
            for k in (data.get("message"), data.get("source_key")):
                if k:
                    self.qkeys.add(k)
        elif kind in ("message.received", "message.unmatched", "whatsapp.system") or (
                kind == "ticket.note" and data.get("kind") == "bounce"):
            self._received(data, ticket)
        elif kind == "agentmail.received":
            for k in (data.get("message"), data.get("source_key")):  # an agent's mail: its keys only
                if k:
                    self.keys.add(k)
        elif kind.startswith("whatsapp."):  # error, account, preference, call: kept once by key
            if data.get("key"):
                self.keys.add(data["key"])
        elif kind == "message.sent":
            self._sent(ev, data, ticket)
        elif kind == "message.status":
            self.note_status(data.get("message"), data.get("status"), ticket, data)
        elif kind == "outbox.sent":
            if ticket is not None and data.get("message"):  # a WhatsApp message's wamid
                self.mids[data["message"]] = ticket
        elif kind == "ticket.merged" and ticket is not None and data.get("into") is not None:
            self.merged[ticket] = data["into"]
        elif kind == "ticket.split" and data.get("into") is not None:
            for mid in data.get("message_ids") or ():
                self.mids[mid] = data["into"]

    def _received(self, data: dict, ticket) -> None:
        for k in (data.get("message"), data.get("source_key")):
            if k:
                self.keys.add(k)
        if ticket is None:
            return
        if data.get("message_id"):
            self.add_mid(data["message_id"], ticket)
        elif data.get("channel") == "whatsapp" and data.get("message"):
            self.mids[data["message"]] = ticket

    def _sent(self, ev: dict, data: dict, ticket) -> None:
        if data.get("from_phone") and data.get("message"):  # sent from the phone app: taken in once
            self.keys.add(data["message"])
        if data.get("imported"):  # an agent's reply taken from an import: its keys dedupe it
            for k in (data.get("message"), data.get("source_key")):
                if k:
                    self.keys.add(k)
        if ticket is not None and data.get("message_id"):
            self.add_mid(data["message_id"], ticket)
            self.sent.add(data["message_id"])
        if ticket is not None and data.get("channel") == "whatsapp" and data.get("message"):
            self.mids[data["message"]] = ticket
        if data.get("auto"):
            for addr in data.get("to") or ():
                self.note_auto(str(addr).lower(), ev["ts"])

    # -- changes (undoable through a Journal while the intake takes an item in) ------------------
    def remember(self, key: str | None, journal=None) -> None:
        """Record a stored item's key."""
        if key:
            journal.add(self.keys, key) if journal is not None else self.keys.add(key)

    def add_mid(self, mid: str, ticket: int, journal=None, thread: bool = True) -> None:
        """Record that message `mid` (a Message-ID, or with `thread=False` a wamid) is on `ticket`."""
        if mid not in self.mids:
            _set(journal, self.mids, mid, ticket)
        if thread:
            chain = self.threads.get(ticket, ())
            if mid not in chain:
                _set(journal, self.threads, ticket, [*chain, mid][-THREAD:])

    def note_status(self, wamid: str | None, status: str | None, ticket, data: dict, journal=None) -> None:
        """Record a delivery status (only a status that moves the message forward counts)."""
        if not wamid:
            return
        rank = STATUS_RANK.get(status, 0)
        cur = self.statuses.get(wamid) or [0, 0, None]
        new = list(cur)
        if rank > cur[0]:
            new[0], new[2] = rank, data
        if ticket is not None and rank > cur[1]:
            new[1] = rank
        if new != cur or wamid not in self.statuses:
            _set(journal, self.statuses, wamid, new)
        late = new[0] > new[1] and new[2] is not None
        if late != (wamid in self.late):
            if late:
                _set(journal, self.late, wamid, 1)
            else:
                if journal is not None:
                    journal.record(self.late, wamid, 1)
                self.late.pop(wamid)

    def late_statuses(self) -> list[tuple[str, list]]:
        """(wamid, status_of) of the statuses that came before tix knew their message: a
        WhatsApp run attaches them once it does. Read from their own table, not from every
        status the store ever had (issue 16: that grew with the store)."""
        wamids = [k for k, _v in self.late.items()]
        self.statuses.prefetch(wamids)
        self.mids.prefetch(wamids)
        return [(w, self.statuses.get(w)) for w in wamids]

    def note_auto(self, addr: str, ts: str) -> None:
        lst = self.auto_sent.setdefault(addr, [])
        lst.append(ts)
        if len(lst) > 50:
            del lst[:-50]

    # -- questions ---------------------------------------------------------------------------
    def seen(self, key: str | None) -> bool:
        return bool(key) and key in self.keys

    def skip(self, key: str | None) -> bool:
        """Stored or quarantined: a source need not fetch it again."""
        return bool(key) and (key in self.keys or key in self.qkeys)

    def ticket_of(self, mid: str) -> int | None:
        """The ticket of a message: where it was stored or split to, following merges."""
        return self.final(self.mids.get(mid))

    def final(self, ticket: int | None) -> int | None:
        """Where `ticket` lives now: itself, or the ticket it was merged into (and so on)."""
        for _ in range(50):
            if ticket not in self.merged:
                break
            ticket = self.merged[ticket]
        return ticket

    def thread(self, ticket: int) -> list[str]:
        return list(self.threads.get(ticket, ()))

    def status_of(self, wamid: str) -> tuple[int, int, dict | None]:
        """(rank, rank recorded on its ticket, data of that status); zeros when none."""
        rank, on_ticket, data = self.statuses.get(wamid) or (0, 0, None)
        return rank, on_ticket, data

    def auto_count(self, addr: str, since_iso: str) -> int:
        return sum(1 for ts in self.auto_sent.get(addr.lower(), ()) if ts >= since_iso)


def remove(store) -> None:
    """Drop the saved index (it is rebuilt from the log when next loaded)."""
    for name in FILES:
        store.path("state", name).unlink(missing_ok=True)


def _identifiers(row: dict | None) -> set[tuple[str, str, int]]:
    """(kind, key, priority) of a folded contact row, as `ContactIndex.load` reads them."""
    if not row:
        return set()
    from tix.tickets.contacts import normalize_phone

    out = {("email", e.lower(), 1) for e in row.get("emails") or ()}
    out |= {("phone", normalize_phone(p), 1) for p in row.get("phones") or ()}
    fields = orjson.loads(row.get("fields") or "{}")
    if isinstance(fields, dict):
        if fields.get("wa_user_id"):
            out.add(("user", str(fields["wa_user_id"]), 2))
        prev = fields.get("wa_previous_user_ids")
        out |= {("user", old, 1) for old in (prev if isinstance(prev, list) else ()) if isinstance(old, str)}
    return out


class _Lookup(_Overlay):
    """A map of the intake's ContactIndex: this run's entries (journaled) over the index
    (this run's own contacts are in `new`)."""

    def __init__(self, index: MessageIndex):
        super().__init__()
        self.index = index


class _Keys(_Lookup):
    def __init__(self, index: MessageIndex, kind: str):
        super().__init__(index)
        self.kind = kind

    def _read(self, key):
        cid = self.index.contact_of(self.kind, key)
        return _MISS if cid is None else cid


class _Names(_Lookup):
    def _read(self, cid):
        row = self.index.contact_row(cid)
        return _MISS if row is None else row.get("name")


class _Merged(_Lookup):
    def _read(self, cid):
        row = self.index.contact_row(cid)
        return _MISS if row is None or row.get("merged_into") is None else row["merged_into"]


def _upgrade(db) -> None:
    """A version-5 index (no `late` table) brought up to 6 in place: its late statuses, found
    in SQL, instead of a rebuild from the log (a minute at a million tickets)."""
    db.execute("INSERT OR REPLACE INTO kv SELECT 'l', k, '1' FROM kv WHERE t = 'w' "
               "AND json_extract(v, '$[0]') > json_extract(v, '$[1]') AND json_type(v, '$[2]') <> 'null'")
    db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (VERSION,))


def _set(journal, mapping: dict, key, value) -> None:
    if journal is not None:
        journal.set(mapping, key, value)
    else:
        mapping[key] = value


def _position_valid(store, idx: MessageIndex) -> bool:
    """The saved position still ends the event with the saved seq (the log was not rewritten)."""
    pos = idx.pos
    if not pos.segment:
        return True
    path = store.log.dir / pos.segment
    try:
        size = path.stat().st_size
        if size < pos.offset:
            return False
        with open(path, "rb") as fh:
            start = max(0, pos.offset - (1 << 20))
            fh.seek(start)
            block = fh.read(pos.offset - start)
    except OSError:
        return False
    if not block.endswith(b"\n"):
        return False
    line = block[:-1].rsplit(b"\n", 1)[-1]
    return _seq_of(line) == idx.pos_seq


def _seq_of(line: bytes) -> int | None:
    """The seq of an event line (`{"seq":N,…`, always first) without decoding all of it."""
    if line.startswith(b'{"seq":'):
        end = line.find(b",", 7)
        try:
            return int(line[7:end])
        except ValueError:
            pass
    try:
        return orjson.loads(line).get("seq")
    except (orjson.JSONDecodeError, AttributeError):
        return None
