"""The message index: what the log says about messages, kept as a rebuildable cache.

The event log is the truth. This index is derived from it (`message.*`, `outbox.sent`,
`whatsapp.*` events and bounce notes) and saved to `state/message-index.json` (0600)
with the log position it covers. Loading it reads the saved copy and then folds every
event after that position, so an index that was not saved (a crash, a kill) is caught up
from the log: it can never miss a message that is in the store. Delete the file and it is
rebuilt from the whole log. It is plain JSON: a cache is never code (DESIGN invariant 10).

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

import orjson

from tix.store.files import atomic_write
from tix.store.log import Position

VERSION = 4
NAME = "message-index.json"
OLD_NAMES = ("mail-index.pickle",)  # earlier caches, removed when this one is saved
INTERESTING = (b'"type":"message.', b'"type":"outbox.sent"', b'"type":"whatsapp.', b'"kind":"bounce"',
               b'"type":"ticket.merged"', b'"type":"ticket.split"', b'"type":"agentmail.received"')
STATUS_RANK = {"sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 100}
THREAD = 20  # Message-IDs kept per ticket


class MessageIndex:
    def __init__(self):
        self.keys: set[str] = set()  # stored items' keys
        self.qkeys: set[str] = set()  # quarantined items' keys
        self.sent: set[str] = set()  # Message-IDs of messages tix sent (a copy coming back is ours)
        self.mids: dict[str, int] = {}  # Message-ID or wamid -> ticket
        self.threads: dict[int, list[str]] = {}
        self.auto_sent: dict[str, list[str]] = {}
        self.statuses: dict[str, list] = {}  # wamid -> [rank, rank recorded with its ticket, status data]
        self.merged: dict[int, int] = {}  # ticket -> the ticket it was merged into (tix.tickets.merge)
        self.seq = 0
        self.pos = Position("", 0)
        self.pos_seq = 0

    # -- loading and saving --------------------------------------------------------------------
    @classmethod
    def load(cls, store) -> "MessageIndex":
        idx = None
        try:
            saved = orjson.loads(store.path("state", NAME).read_bytes())
            if saved.get("version") == VERSION:
                idx = cls._from_json(saved)
                if not _position_valid(store, idx):
                    idx = None
        except FileNotFoundError:
            pass
        except (ValueError, TypeError, KeyError, AttributeError):  # a damaged cache is rebuilt from the log
            idx = None
        if idx is None:
            idx = cls()
        idx.catch_up(store)
        return idx

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
        if last is not None:
            self.pos_seq = _seq_of(last)

    def save(self, store, upto=None) -> None:
        """Save the index. With `upto` (a flushed Batch whose events were all applied to
        this index as they were made), it is saved as covering the log up to its end, so
        the next load need not read this run's events again."""
        if upto is not None and not upto.pending:
            self.pos = store.log.end()
            self.pos_seq = upto.seq
        atomic_write(store.path("state", NAME), orjson.dumps(self._to_json(), option=orjson.OPT_NON_STR_KEYS),
                     mode=0o600)
        for old in OLD_NAMES:
            try:
                store.path("state", old).unlink()
            except FileNotFoundError:
                pass

    def _to_json(self) -> dict:
        return {"version": VERSION, "segment": self.pos.segment, "offset": self.pos.offset,
                "pos_seq": self.pos_seq, "seq": self.seq, "keys": list(self.keys), "qkeys": list(self.qkeys),
                "sent": list(self.sent), "mids": self.mids, "threads": self.threads,
                "auto_sent": self.auto_sent, "statuses": self.statuses, "merged": self.merged}

    @classmethod
    def _from_json(cls, d: dict) -> "MessageIndex":
        idx = cls()
        idx.keys, idx.qkeys, idx.sent = set(d["keys"]), set(d["qkeys"]), set(d["sent"])
        idx.mids = d["mids"]
        idx.threads = {int(k): v for k, v in d["threads"].items()}
        idx.auto_sent, idx.statuses = d["auto_sent"], d["statuses"]
        idx.merged = {int(k): v for k, v in (d.get("merged") or {}).items()}
        idx.seq, idx.pos_seq = d["seq"], d["pos_seq"]
        idx.pos = Position(d["segment"], d["offset"])
        return idx

    # -- folding -----------------------------------------------------------------------------
    def apply(self, ev: dict) -> None:
        kind = ev.get("type")
        data = ev.get("data") or {}
        self.seq = max(self.seq, ev.get("seq", 0))
        ticket = ev.get("ticket")
        if kind == "message.quarantined":
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
