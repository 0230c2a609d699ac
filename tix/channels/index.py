"""The mail index: what the log says about messages, kept as a rebuildable cache.

The event log is the truth. This index is derived from it (message.received,
message.unmatched, message.quarantined, message.sent) and
saved to `state/mail-index.pickle` with the log position it covers. Loading it reads
the saved copy and then folds every event after that position, so an index that was
not saved (a crash, a kill) is caught up from the log: it can never miss a message
that is in the store. Delete the file and it is rebuilt from the whole log.

It answers, without scanning the log:
- `seen(key)`: has this idempotency key (content key or source key) been stored?
- `ticket_of(message_id)`: which ticket a Message-ID we received or sent belongs to;
- `thread(ticket)`: the last Message-IDs of a ticket (for In-Reply-To / References);
- `auto_count(addr, since)`: the auto-reply cap. (What is still to send: `tix.outbox`.)
"""
from __future__ import annotations

import pickle
from pathlib import Path

import orjson

from tix.store.files import atomic_write
from tix.store.log import Position

VERSION = 3
INTERESTING = (b'"type":"message.', b'"kind":"bounce"')


class MailIndex:
    def __init__(self):
        self.keys: set[str] = set()  # stored messages (content and source keys)
        self.qkeys: set[str] = set()  # quarantined messages (skipped by fetch, not by replay)
        self.sent: set[str] = set()  # Message-IDs of messages tix sent (a copy coming back is ours)
        self.mids: dict[str, int] = {}
        self.threads: dict[int, list[str]] = {}
        self.auto_sent: dict[str, list[str]] = {}
        self.seq = 0
        self.pos = Position("", 0)
        self.pos_seq = 0

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, store) -> "MailIndex":
        path = _path(store)
        idx = None
        try:
            with open(path, "rb") as fh:
                saved = pickle.load(fh)
            if saved.get("version") == VERSION and _position_valid(store, saved["idx"]):
                idx = saved["idx"]
        except FileNotFoundError:
            pass
        except Exception:  # noqa: BLE001 - a damaged cache is simply rebuilt from the log
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
        data = pickle.dumps({"version": VERSION, "idx": self}, protocol=pickle.HIGHEST_PROTOCOL)
        atomic_write(_path(store), data, mode=0o600)  # a cache (DESIGN invariant 10)

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
        elif (kind in ("message.received", "message.unmatched")
              or (kind == "ticket.note" and data.get("kind") == "bounce")):
            for k in (data.get("message"), data.get("source_key")):
                if k:
                    self.keys.add(k)
            if ticket is not None and data.get("message_id"):
                self.add_mid(data["message_id"], ticket)
        elif kind == "message.sent":
            if ticket is not None and data.get("message_id"):
                self.add_mid(data["message_id"], ticket)
                self.sent.add(data["message_id"])
            if data.get("auto"):
                for addr in data.get("to") or ():
                    self.note_auto(str(addr).lower(), ev["ts"])

    def add_mid(self, mid: str, ticket: int) -> None:
        self.mids.setdefault(mid, ticket)
        chain = self.threads.setdefault(ticket, [])
        if mid not in chain:
            chain.append(mid)
            if len(chain) > 20:
                del chain[:-20]

    def note_auto(self, addr: str, ts: str) -> None:
        lst = self.auto_sent.setdefault(addr, [])
        lst.append(ts)
        if len(lst) > 50:
            del lst[:-50]

    # -- questions ---------------------------------------------------------------------------
    def seen(self, key: str | None) -> bool:
        return bool(key) and key in self.keys

    def ticket_of(self, mid: str) -> int | None:
        return self.mids.get(mid)

    def thread(self, ticket: int) -> list[str]:
        return list(self.threads.get(ticket, ()))

    def auto_count(self, addr: str, since_iso: str) -> int:
        return sum(1 for ts in self.auto_sent.get(addr.lower(), ()) if ts >= since_iso)


def _path(store) -> Path:
    return store.path("state", "mail-index.pickle")


def _position_valid(store, idx: MailIndex) -> bool:
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
