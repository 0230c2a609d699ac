"""The outbox index: every item not sent yet (pending or given up) and every key ever queued.

`state/outbox.json` (0600, a cache) holds the items, the keys and the log position it has
read up to. `OutboxIndex.load` reads it and folds the events written since; a missing,
older-format or stale file (the log was rewritten by an erasure) is rebuilt from the log.

An item (what `tix outbox list` shows and what the senders get, under `data`)::

    {"id", "purpose", "channel", "ticket", "key", "queued_at", "seq", "status": "pending"|"dead",
     "attempts", "next_try", "error", "data": <the data of the event that queued it>}
"""
from __future__ import annotations

import orjson

from tix.store.files import atomic_write
from tix.store.log import Position, seq_before

VERSION = 2  # 1 (no `version`): notifications only, before the one outbox
CHUNK = 1 << 24  # 16 MiB
# The events the index folds, found with a C-speed bytes.find: `"type":` only ever appears
# unescaped at the top level of an event, and `"outbox":` as a key (inside JSON strings quotes
# are escaped). A `message.sent` matters only when it has an `outbox` key (a reply queued in
# the outbox): looking for that key, not for every message.sent, keeps a log of millions of
# replies sent before the outbox existed from costing a Python step per reply (issue 16).
MARKERS = (b'"type":"outbox.', b'"outbox":')
CUSTOMER = ("reply", "auto_reply")


def item_id(data: dict) -> str | None:
    """The outbox id of an `outbox.*` event (older stores wrote `id`)."""
    return data.get("outbox") or data.get("id")


class OutboxIndex:
    """Items not sent yet and keys ever queued, folded from the log."""

    def __init__(self, store):
        self.store = store
        self.path = store.path("state", "outbox.json")
        self.items: dict[str, dict] = {}
        self.keys: dict[str, str] = {}
        self.pos = Position("", 0)
        self.seq = 0

    @classmethod
    def load(cls, store) -> "OutboxIndex":
        box = cls(store)
        try:
            data = orjson.loads(box.path.read_bytes())
            if data.get("version") == VERSION:
                box.items, box.keys = data["items"], data["keys"]
                box.pos, box.seq = Position(data["segment"], data["offset"]), data["seq"]
                if not box._position_ok():
                    box = cls(store)
        except (FileNotFoundError, KeyError, ValueError, AttributeError):
            box = cls(store)
        box.advance()
        return box

    def _position_ok(self) -> bool:
        """The log may have been rewritten (erasure); then our position means nothing."""
        if not self.pos.segment:
            return True
        path = self.store.log.dir / self.pos.segment
        if not path.exists() or path.stat().st_size < self.pos.offset:
            return False
        return seq_before(path, self.pos.offset) == self.seq

    def advance(self) -> None:
        """Fold the outbox events written since the index's position.

        Reads the segments in large chunks into one reused buffer and parses only the lines
        holding a marker, so rebuilding the index over 10M events (2.4 GB) costs about the
        read: 1.4 s of CPU, 3 s when each chunk was a new bytes object joined to the last one's
        unfinished line (issue 16).
        """
        upto = self.store.log.end()  # committed batches only (tix.store: "Batches")
        buf = bytearray()
        for name in self.store.log.segments():
            if self.pos.segment and name < self.pos.segment or name > upto.segment:
                continue
            offset = self.pos.offset if name == self.pos.segment else 0
            with open(self.store.log.dir / name, "rb", buffering=0) as fh:
                fh.seek(offset)
                held = 0  # bytes at the start of buf: the unfinished last line of the chunk before
                while True:
                    if len(buf) - held < CHUNK // 2:  # the first chunk, or a line longer than a chunk
                        buf.extend(bytes(CHUNK))
                    room = len(buf) - held
                    if name == upto.segment:
                        room = max(0, min(room, upto.offset - fh.tell()))
                    with memoryview(buf) as view:
                        got = fh.readinto(view[held:held + room]) if room else 0
                    if not got:
                        break
                    size = held + got
                    cut = buf.rfind(b"\n", 0, size) + 1  # whole lines only; the rest waits for the next chunk
                    if cut:
                        for start, end in _marked_lines(buf, cut):
                            self.apply(orjson.loads(buf[start:end]))
                        self.seq = _seq_of(buf[buf.rfind(b"\n", 0, cut - 1) + 1:cut - 1], self.seq)
                        offset += cut
                        self.pos = Position(name, offset)
                        buf[:size - cut] = buf[cut:size]  # the unfinished line moves to the front
                    held = size - cut

    def apply(self, ev: dict) -> None:
        """Fold one event. Folding a suffix of the log again over its own result is harmless,
        so a flush applies what it records at once and `advance` reads it again later."""
        kind, d = ev["type"], ev.get("data") or {}
        if kind == "message.sent":
            if d.get("outbox") and d.get("state", "queued") == "queued":
                purpose = "auto_reply" if d.get("auto") else "reply"
                self._add(d["outbox"], purpose, d.get("channel") or "email", ev.get("ticket"), None, ev, d)
        elif kind == "outbox.queued":
            oid = item_id(d)
            if d.get("key"):
                self.keys[d["key"]] = oid
            self._add(oid, d.get("purpose") or "notification", d.get("kind") or "email", d.get("ticket"),
                      d.get("key"), ev, d)
        elif kind == "outbox.sent":
            self.items.pop(item_id(d), None)
        elif kind == "outbox.failed":
            it = self.items.get(item_id(d))
            if it is not None:
                it["attempts"] = d.get("attempt", it["attempts"] + 1)
                it["error"] = d.get("error")
                it["next_try"] = d.get("next_try", d.get("next_retry"))
                if d.get("permanent"):
                    it["status"] = "dead"
                    it["next_try"] = None

    def _add(self, oid, purpose, channel, ticket, key, ev, data) -> None:
        self.items[oid] = {"id": oid, "purpose": purpose, "channel": channel, "ticket": ticket, "key": key,
                           "queued_at": ev["ts"], "seq": ev.get("seq", 0), "status": "pending", "attempts": 0,
                           "next_try": None, "error": None, "data": data}

    def ordered(self) -> list[dict]:
        """Every item, in the order they were queued."""
        return sorted(self.items.values(), key=lambda it: it["seq"])

    def save(self) -> None:
        atomic_write(self.path, orjson.dumps({"version": VERSION, "segment": self.pos.segment,
                                              "offset": self.pos.offset, "seq": self.seq,
                                              "items": self.items, "keys": self.keys}),
                     mode=0o600, sync_dir=False)


def _marked_lines(data, stop: int) -> list[tuple[int, int]]:
    """(start, end) of the lines of `data[:stop]` (whole lines) holding a marker, in log order.

    One pass of bytes.rfind (faster than find here) for `outbox`, the word both markers share,
    each hit checked against them in place: a 2.4 GB log costs about its read, not a pass per
    marker."""
    found = []
    hi = stop
    while True:
        i = data.rfind(b"outbox", 0, hi)
        if i < 0:
            break
        start = data.rfind(b"\n", 0, i) + 1
        if any(i >= before and data.startswith(marker, i - before) for marker, before in _AROUND):
            found.append((start, data.find(b"\n", i, stop)))
            hi = start  # one line once, however many markers it holds
        else:
            hi = i + 5  # an earlier `outbox` on the same line may still be a marker
    found.reverse()
    return found


_AROUND = tuple((marker, marker.index(b"outbox")) for marker in MARKERS)


def _seq_of(raw: bytes, default: int) -> int:
    i = raw.find(b'"seq":')
    if i < 0:
        return default
    j = i + 6
    k = j
    while k < len(raw) and raw[k:k + 1].isdigit():
        k += 1
    return int(raw[j:k]) if k > j else default
