"""`Batch`: the events one command writes under the store lock (see `Store.writing`).

A batch hands out ticket numbers and contact ids, stamps each event with its seq, time,
actor and `via`, and appends and fsyncs them on `flush()`: each flush commits (its last line
carries the commit mark of the contract in tix.store), so it survives any crash whole or
not at all. A command too large to hold in memory writes parts with `flush(commit=False)`;
they join the next commit, and a crash or an error before it takes them all back.
`DryBatch` computes the same events and writes nothing (--dry-run, explain, rules test).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from tix.store.fold import State
from tix.store.log import COMMIT_MARK, Position, iso, segment_name, utcnow

if TYPE_CHECKING:
    from tix.store.reader import Reader
    from tix.store.store import Store


@dataclass(frozen=True)
class Savepoint:
    """Where a batch stood (`Batch.savepoint`): its pending events, last seq, and the highest
    ticket number / contact id it had handed out (None: none yet, the store's next are next)."""

    pending: int
    seq: int
    max_ticket: int | None
    max_contact: int | None


class Batch:
    """Events being written by one command under the lock (see `Store.writing`)."""

    def __init__(self, store: Store, actor: str, via: str):
        self.store = store
        self.actor = actor
        self.via = via
        self.pending: list[dict] = []
        self.written: list[dict] = []
        last = store.log.last_event()
        self.seq = last["seq"] if last else 0
        self.first_seq = self.seq  # the seq before this batch's first event
        self.forgotten = self.seq  # this batch's events up to here were written and let go (`forget_written`)
        self.committed = self.seq  # this batch's events up to here are committed: readers see them
        self._taken_back: dict[int, dict] = {}  # id -> event, of the events `rollback` took back
        self._foldable = True  # no event of this batch went unfolded yet
        self.start: Position | None = None  # where the log ended before this batch's first event
        self.folded: State | None = None
        """The rows of the tickets this batch changes, as its events leave them, when the command
        asked for it (`fold_onto`): partial rows (the columns it read, and those the fold sets).
        None as soon as an event of the batch was not folded onto them: then it means nothing.
        A snapshot refresh right after the batch writes them instead of reading the events back
        (`Store.maybe_refresh_snapshot`)."""
        self._reader: Reader | None = None
        self._max_ticket: int | None = None
        self._max_contact: int | None = None
        self._ts: str | None = None
        self._ts_at = 0.0
        self._open_from: Position | None = None  # where the parts of an uncommitted batch start
        self._segment: str | None = None  # the segment those parts went to
        self._parts = False  # parts written since the last commit
        self.cache: dict[str, object] = {}
        """Per-run state a stage keeps beside this batch's events, by key: `outbox` (tix.outbox:
        its index, loaded once, and the auto-replies and notification keys queued in this batch,
        not yet in the log). A key belongs to the module named beside it, which alone reads and
        writes it; nothing in it is written to the store."""

    @property
    def reader(self) -> "Reader":
        """The state as it was when the batch started (taken under the lock)."""
        if self._reader is None:
            self._reader = self.store.read()
        return self._reader

    def use_reader(self, reader: "Reader | None") -> None:
        """Plan against this reader (e.g. one keeping message data) instead of the default.

        None drops the current one: the store is read again when `reader` is next used (and
        then includes what this batch flushed), e.g. after a snapshot refresh pruned the files
        the old reader read.
        """
        self._reader = reader

    def new_ticket_number(self) -> int:
        if self._max_ticket is None:
            self._max_ticket = self.reader.max_ticket
        self._max_ticket += 1
        return self._max_ticket

    def new_contact_id(self) -> int:
        if self._max_contact is None:
            self._max_contact = self.reader.max_contact
        self._max_contact += 1
        return self._max_contact

    def emit(self, type: str, ticket: int | None = None, contact: int | None = None,
             data: dict | None = None, why: str | None = None, actor: str | None = None,
             ts: str | None = None) -> dict:
        ev: dict = {"seq": 0, "ts": ts or self._now(), "actor": actor or self.actor, "via": self.via,
                    "type": type}
        if ticket is not None:
            ev["ticket"] = ticket
        if contact is not None:
            ev["contact"] = contact
        ev["data"] = data or {}
        if why:
            ev["why"] = why
        return self.add(ev)

    def _now(self) -> str:
        """The event time; formatting it is a third of the cost of a bulk update, so reuse it
        while the clock has not moved by a millisecond."""
        t = time.monotonic()
        if self._ts is None or t - self._ts_at > 0.001:
            self._ts, self._ts_at = iso(utcnow()), t
        return self._ts

    def fold_onto(self, row: dict, copy: bool = True) -> None:
        """Fold this batch's events on a copy of `row`, a ticket's row as read before them (with
        at least the columns the fold reads for those events: it raises KeyError otherwise, and
        the batch stops folding). Only before the first event, or after every event so far was
        folded; the events of a ticket not given here stop the folding too.

        `copy=False`: fold onto `row` itself, for a caller that changes it only after each
        event, and as the event did (tix.tickets.core.set_fields, tag): no second row in memory."""
        if self.folded is None:
            if not self._foldable or self.seq != self.first_seq:
                return
            self.folded = State()
        self.folded.tickets.setdefault(row["number"], dict(row) if copy else row)

    def _fold(self, ev: dict) -> None:
        folded = self.folded
        if ev.get("ticket") in folded.tickets and "contact" not in ev:
            try:
                folded.apply(ev)
                return
            except KeyError:  # a column the fold reads was not read: the refresh reads the log
                pass
        self.folded, self._foldable = None, False

    def savepoint(self) -> Savepoint:
        """A mark to `rollback` to, e.g. before the events of one message that may fail."""
        return Savepoint(len(self.pending), self.seq, self._max_ticket, self._max_contact)

    def rollback(self, mark: Savepoint) -> None:
        """Drop the events added since `mark`, and hand out its ticket numbers and contact ids
        again. Events flushed since `mark` cannot be taken back: that raises ValueError."""
        if len(self.pending) < mark.pending or self.seq - len(self.pending) != mark.seq - mark.pending:
            raise ValueError("the batch was flushed after the savepoint; its events are written")
        for ev in self.pending[mark.pending:]:  # kept (not just their ids): an id is never reused
            self._taken_back[id(ev)] = ev
        del self.pending[mark.pending:]
        if mark.seq != self.seq:  # what was folded of the events taken back cannot be unfolded
            self.folded, self._foldable = None, False
        self.seq, self._max_ticket, self._max_contact = mark.seq, mark.max_ticket, mark.max_contact

    def add(self, ev: dict) -> dict:
        self.seq += 1
        ev["seq"] = self.seq
        self.pending.append(ev)
        if self.folded is not None:
            self._fold(ev)
        return ev

    def flush(self, commit: bool = True) -> Position | None:
        """Append the pending events as one batch and fsync it; after this it survives any crash.

        With `commit=False`, write them (no fsync) as a part of a batch that the next commit
        completes: their memory is freed, readers do not see them yet, and a crash or an
        exception in `Store.writing` before the commit takes every part back. The last
        pending event stays pending, to carry the commit mark.
        """
        if not self.pending:
            return None
        if not commit:
            if len(self.pending) < 2:
                return None
            part, self.pending = self.pending[:-1], self.pending[-1:]
            self._append(part, False)
            self.written += part
            return None
        pos = self.write(self.pending)
        self.written += self.pending
        self.pending = []
        self.committed = self.seq
        return pos

    def hand_over(self) -> list[dict]:
        """Take the pending events out for `write` in another thread (the intake's committer),
        while this batch goes on with the next ones: from now on they count as written and
        committed, as after `flush`. One hand-over at a time: `write` it before the next
        `flush` or `write` (the caller waits for it)."""
        events, self.pending = self.pending, []
        self.written += events
        self.committed = self.seq
        return events

    def write(self, events: list[dict]) -> Position | None:
        """Append and fsync events as one committed batch: `flush`'s write, and that of the events
        `hand_over` took out (from one thread at a time). Of the batch's state, only where its
        uncommitted parts went is reset; its events, seq and counters are the caller's."""
        if not events:
            return None
        pos = self._append(events, True)
        self._open_from = self._segment = None
        return pos

    def forget_written(self) -> None:
        """Drop the events already written (`flush`) from memory, for a long run that writes in
        chunks (the intake, a bulk update, the first route over an imported history): `kept`
        still counts them as in the batch, as they are (written events cannot be taken back)."""
        self.forgotten, self.written = self.seq - len(self.pending), []

    def kept(self, ev: dict) -> bool:
        """Whether an event emitted in this batch is still in it: pending, written, or committed
        and forgotten, and not taken back by `rollback`."""
        for events in (self.pending, self.written):
            if events:
                i = ev["seq"] - events[0]["seq"]
                if 0 <= i < len(events) and events[i] is ev:
                    return True
        return self.first_seq < ev["seq"] <= self.forgotten and id(ev) not in self._taken_back

    def _append(self, events: list[dict], commit: bool) -> Position:
        log = self.store.log
        if self._segment is None:
            segs = log.segments()
            newest = segs[-1] if segs else ""
            self._segment = max(newest, segment_name(events[0]["ts"]))
            self._open_from = log.end()
            if self.start is None:
                self.start = self._open_from
        dumps = orjson.dumps
        data = b"".join([dumps(ev) + b"\n" for ev in events])
        if commit:
            data = data[:-2] + COMMIT_MARK  # `}\n` of the last line -> `,"commit":true}\n`
        try:
            if commit and self._parts:  # the parts reach the disk before the mark that commits them
                log.append(b"", self._segment, sync=True)
            self._parts = not commit
            return log.append(data, self._segment, sync=commit)
        except BaseException:
            if commit:  # the parts written before are taken back with this one
                self.abort()
            raise

    def abort(self) -> None:
        """Take back the parts written by `flush(commit=False)` since the last commit (lock held)."""
        start, segment = self._open_from, self._segment
        self._open_from = self._segment = None
        self._parts = False
        if start is None or segment is None:
            return
        log = self.store.log
        path = log.dir / segment
        if not path.exists():
            return
        if start.segment == segment:
            log.truncate(start)
        else:  # the parts began a new segment
            path.unlink()


class DryBatch(Batch):
    """A batch that computes its events and writes nothing (--dry-run, explain, rules test).

    Its events stay in `pending`; `reader` may be given to plan against a view already read.
    """

    def __init__(self, store: Store, reader: "Reader | None" = None, actor: str = "system",
                 via: str = "tix --dry-run"):
        super().__init__(store, actor, via)
        self.use_reader(reader)

    def flush(self, commit: bool = True) -> None:
        return None
