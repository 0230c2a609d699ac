"""`Reader`: the store's current state, read once: the Parquet snapshot plus the log tail.

The tail (events after the snapshot's position) is folded in Python (tix.store.fold) on top
of the snapshot rows it touches; `connect()` puts the merged rows behind DuckDB views
(tix.store.views). `write_snapshot()` folds the tail into a new snapshot generation: in
DuckDB from a copy of the tail (`_fold_tickets_sql`), or, when the tail is exactly a batch
that folded its own events onto the rows it read (`Batch.fold_onto`: a bulk update), by
joining those partial rows onto the snapshot's (`_folded_tickets`), the log not read back.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

import orjson

from tix.model import CONTACT_COLUMNS, TICKET_COLUMNS
from tix.store.fold import State
from tix.store.log import Position, _why, report_damage, unmark
from tix.store.snapshot import GONE, base_order, from_json_value, json_type, register_rows

if TYPE_CHECKING:
    from tix.store.batch import Batch
    from tix.store.store import Store



class Reader:
    """Snapshot + tail, read once. Never takes the lock; never sees a torn line."""

    def __init__(self, store: Store, fold_tickets: bool = True, messages: bool = False,
                 batch: Batch | None = None, upto: Position | None = None, con=None):
        """`messages`: keep the data of `message.received` events in `tail` (their text,
        most of the log's bytes; the rules engine reads it). Without it those events are
        decoded without their data: the fold never reads it.

        `batch` (for `write_snapshot`, lock held): that batch, just committed, folded its
        events itself (`Batch.folded`); when the tail is exactly the batch, the log is not read.
        `upto`: read the tail only up to there (a committed position), not to the log's end.
        `con`: a DuckDB connection to read the snapshot rows of the tail's tickets with (a
        report's: opening one costs 15-20 ms), else one is opened when needed."""
        self.store = store
        self.messages = messages
        self.meta = _leased_meta(store.snapshot)
        start = store.snapshot.position(self.meta)
        self.tail: list[dict] = []
        self.tail_lines = 0  # lines in the tail (a refresh decodes only some of them)
        self._duck = con  # DuckDB connection of `_base_rows`
        self.fold_tickets = fold_tickets
        self.start = start
        self.end = start or Position("", 0)
        self.last_seq = (self.meta or {}).get("seq", 0)
        self.folded: dict[int, dict] | None = None  # `batch.folded`'s partial rows
        if batch is not None and batch.folded is not None and self.meta and start == batch.start:
            self.folded = batch.folded.tickets
            self.tail_lines = batch.seq - batch.first_seq
            self.end, self.last_seq = store.log.end(), batch.seq
            self.state = State()
            self.max_ticket = max(self.meta.get("max_ticket", 0), max(self.folded, default=0))
            self.max_contact = self.meta.get("max_contact", 0)
            return
        loads = orjson.loads
        damaged = store.log.damaged
        last = None
        tail_max = 0  # the highest ticket a `ticket.created` of the tail makes
        for raw, seg, off in store.log.read_raw(start, upto):
            self.end = Position(seg, off)
            self.tail_lines += 1
            try:
                if fold_tickets:
                    ev = loads(raw if messages else _fold_line(raw))
                elif _NEEDED_BY_REFRESH.search(raw):
                    # a refresh: tickets fold in SQL from the log itself (`_fold_tickets_sql`),
                    # so the tail is never held in memory; decode only what Python folds
                    ev = loads(raw)
                else:
                    last = raw
                    continue
                if not (type(ev) is dict and "seq" in ev and "type" in ev and "ts" in ev):
                    raise ValueError("not an event (seq, ts, type)")
            except ValueError as exc:
                damaged(seg, off - len(raw) - 1, _why(exc))
                continue
            last = raw
            if ev["type"] == "ticket.created" and type(ev.get("ticket")) is int:
                tail_max = max(tail_max, ev["ticket"])
                if not fold_tickets:  # a refresh needs only its number
                    continue
            self.tail.append(ev)
        if last is not None:
            self.last_seq = self._seq_of(last)
        self.state = self._fold_tail()
        self.max_ticket = max(self.state.max_ticket, tail_max, (self.meta or {}).get("max_ticket", 0))
        self.max_contact = max(self.state.max_contact, (self.meta or {}).get("max_contact", 0))

    def _seq_of(self, raw: bytes) -> int:
        """The seq of the tail's last line (of the last readable one, if that one is damaged)."""
        try:
            return orjson.loads(raw)["seq"]
        except (ValueError, KeyError, TypeError):
            pass
        for line, _start in self.store.log._lines_backward(self.end.segment, self.end.offset):
            try:
                return orjson.loads(unmark(line))["seq"]
            except (ValueError, KeyError, TypeError):
                continue
        return self.last_seq

    def _file(self, kind: str) -> str | None:
        path = self.store.snapshot.path(self.meta, kind)
        return str(path).replace("'", "''") if path else None

    def snapshot_sql(self, kind: str) -> str | None:
        """SELECT over the snapshot's rows of `tickets` or `contacts` (base and delta merged)."""
        base, delta = self._file(kind), self._file(kind + "_delta")
        if base is None:
            return None
        if delta is None:
            return f"SELECT * FROM read_parquet('{base}')"
        key = "number" if kind == "tickets" else "id"
        return (f"SELECT * FROM read_parquet('{base}') WHERE {key} NOT IN "
                f"(SELECT {key} FROM read_parquet('{delta}')) UNION ALL SELECT * FROM read_parquet('{delta}')")

    def _fold_tail(self) -> State:
        if not self.tail:
            return State()
        cids = {ev["contact"] for ev in self.tail if "contact" in ev and ev["type"].startswith("contact.")}
        if not self.fold_tickets:  # a snapshot refresh folds the tickets in SQL
            state = State({}, self._base_rows("contacts", cids))
            state.apply_all(ev for ev in self.tail if ev["type"].startswith("contact."))
            return state
        numbers = {ev["ticket"] for ev in self.tail if "ticket" in ev}
        state = State(self._base_rows("tickets", numbers), self._base_rows("contacts", cids))
        state.apply_all(self.tail)
        return state

    def _base_rows(self, kind: str, ids: set[int]) -> dict[int, dict]:
        """Snapshot rows of these tickets/contacts as fold rows (times as the store's ISO strings)."""
        snap = self.snapshot_sql(kind)
        if not ids or snap is None:
            return {}
        import duckdb

        columns = TICKET_COLUMNS if kind == "tickets" else CONTACT_COLUMNS
        key = "number" if kind == "tickets" else "id"
        select = ", ".join(f"strftime(\"{c}\", '%Y-%m-%dT%H:%M:%S.%fZ') AS \"{c}\"" if t == "TIMESTAMP"
                           else f'"{c}"' for c, t in columns.items())
        if self._duck is None:  # one connection per reader: opening one costs ~15 ms
            self._duck = duckdb.connect()
        cur = self._duck.execute(
            f"SELECT {select} FROM ({snap}) WHERE {key} IN (SELECT unnest(?::BIGINT[]))", [sorted(ids)])
        names = [d[0] for d in cur.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}

    # -- single-ticket reads ------------------------------------------------------------------
    def tickets(self, numbers) -> dict[int, dict]:
        """The rows of these tickets (those that exist), in one read of the snapshot."""
        numbers = set(numbers)
        out = {n: self.state.tickets[n] for n in numbers if n in self.state.tickets}
        out.update(self._base_rows("tickets", numbers - out.keys()))
        return out

    def ticket(self, number: int) -> dict | None:
        if number in self.state.tickets:
            return self.state.tickets[number]
        return self._base_rows("tickets", {number}).get(number)

    def contacts(self, ids) -> dict[int, dict]:
        """The rows of these contacts (those that exist), in one read of the snapshot."""
        ids = set(ids)
        out = {c: self.state.contacts[c] for c in ids if c in self.state.contacts}
        out.update(self._base_rows("contacts", ids - out.keys()))
        return out

    def contact(self, cid: int) -> dict | None:
        if cid in self.state.contacts:
            return self.state.contacts[cid]
        return self._base_rows("contacts", {cid}).get(cid)

    # -- DuckDB -------------------------------------------------------------------------------
    def connect(self, con=None, only=None):
        """Register the store's views (`tickets`, `contacts`, `events`, `messages`, the stages' own:
        see tix.store.views) on a DuckDB connection, a new one unless given; with `only` (names
        a query uses), just the views those need."""
        import duckdb

        from tix.store import views

        if con is None and self._duck is not None:  # the one `_base_rows` opened: handed over
            con, self._duck = self._duck, None  # (opening another costs 15-20 ms)
        con = con or duckdb.connect()
        views.register(con, self, only)
        return con

    def write_snapshot(self) -> dict:
        """Fold the tail into the snapshot (caller holds the lock); return the new meta.

        Only the delta is rewritten: the old delta's rows the tail did not touch, plus the
        tail's rows. When the delta outgrows a quarter of the base, both become a new base.
        """
        if not self.tail_lines and self.meta:
            return self.meta
        import duckdb

        try:
            return self._write_snapshot(REFRESH_MEMORY)
        except duckdb.OutOfMemoryException:  # a step DuckDB cannot fold within it: without
            return self._write_snapshot(None)  # (a refresh must not fail committed events)

    def _write_snapshot(self, memory: str | None) -> dict:
        import duckdb

        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # (a long step would draw one on stderr)
        if memory:  # beyond it DuckDB spills (a compaction's sort) or fails (then: without)
            con.execute(f"SET memory_limit = '{memory}'")
            con.execute("SET temp_directory = ?", [str(self.store.path("state", "duckdb-tmp"))])
        if self.tail_lines < 400_000:  # a second thread saves little here and holds ~30 MB more
            con.execute("SET threads = 1")
        meta = {"seq": self.last_seq, "segment": self.end.segment,
                "offset": self.end.offset, "max_ticket": self.max_ticket, "max_contact": self.max_contact}
        files: dict = {}
        if self.folded is not None:
            self._folded_tickets(con)
        elif self.fold_tickets:
            register_rows(con, "_new_tickets", sorted(self.state.tickets.values(), key=lambda r: r["number"]),
                          TICKET_COLUMNS)
        else:
            self._fold_tickets_sql(con)
        files.update(self._refresh(con, "tickets", "number", TICKET_COLUMNS))
        if self.state.contacts or self._file("contacts") is None:
            # as JSON, not Arrow: pyarrow's import alone is ~40 MB of a small refresh's ~130
            register_rows(con, "_new_contacts", sorted(self.state.contacts.values(), key=lambda r: r["id"]),
                          CONTACT_COLUMNS)
            files.update(self._refresh(con, "contacts", "id", CONTACT_COLUMNS))
        return self.store.snapshot.write(files, meta, con=con)

    def _folded_tickets(self, con) -> None:
        """`_new_tickets` = the snapshot rows of the tickets a writer folded itself (`Batch.folded`),
        the columns of its partial rows replaced by theirs. Should that fail (a ticket missing
        from the snapshot, a value of another type), the tail is folded from the log instead
        (`_fold_tickets_sql`): the events are committed, and the refresh must not fail them."""
        import os
        import tempfile

        import duckdb

        groups: dict[tuple, list[dict]] = {}  # rows with the same columns: one JOIN each
        for row in self.folded.values():
            groups.setdefault(tuple(row), []).append(row)
        snap = self.snapshot_sql("tickets")
        fd, tmp = tempfile.mkstemp(prefix=f"tail-{os.getpid()}-rows-", suffix=".jsonl", dir=self.store.path("state"))
        os.close(fd)
        made = False
        try:
            for names, rows in groups.items():
                cols = [c for c in names if c != "number" and c in TICKET_COLUMNS]
                with open(tmp, "wb") as fh:  # one JSON array, written a chunk at a time (a dumps for
                    fh.write(b"[")  # each row would take ~10x longer; one for all, memory for all)
                    for i in range(0, len(rows), _CHUNK):
                        if i:
                            fh.write(b",")
                        fh.write(memoryview(orjson.dumps(rows[i:i + _CHUNK]))[1:-1])  # (no copy)
                    fh.write(b"]")
                typed = ", ".join(f"\"{c}\": '{json_type(TICKET_COLUMNS[c])}'"
                                  for c in ("number", *cols))
                replace = ", ".join(f'{from_json_value("p", c, TICKET_COLUMNS[c])} AS "{c}"' for c in cols)
                path = tmp.replace("'", "''")
                select = (f"SELECT s.* {f'REPLACE ({replace})' if cols else ''} FROM ({snap}) s JOIN "
                          f"read_json('{path}', format='array', columns={{{typed}}}) p ON s.number = p.number")
                verb = "INSERT INTO _new_tickets" if made else "CREATE TEMP TABLE _new_tickets AS"
                con.execute(f"{verb} {select}")
                made = True
            if made and con.execute("SELECT count(*) FROM _new_tickets").fetchall()[0][0] == len(self.folded):
                return
        except (duckdb.Error, TypeError, OSError):  # TypeError: orjson, a value it cannot write
            pass
        finally:
            os.unlink(tmp)
        con.execute("DROP TABLE IF EXISTS _new_tickets")
        self._fold_tickets_sql(con)

    def _fold_tickets_sql(self, con) -> None:
        """`_new_tickets` = the tail's tickets folded by DuckDB on top of their snapshot rows."""
        import os
        import tempfile

        from tix.store.sqlfold import events_source, ticket_select_sql

        # named with our pid: a writer taking the lock removes the copies of killed refreshes
        fd, tmp = tempfile.mkstemp(prefix=f"tail-{os.getpid()}-", suffix=".jsonl", dir=self.store.path("state"))
        try:
            with os.fdopen(fd, "wb") as fh:  # the tail's events, copied from the log
                longest = _copy_tail(self.store.log, self.start, self.end, fh)
            snap = self.snapshot_sql("tickets")
            base = f"({snap})" if snap else None
            source = events_source(tmp, longest=longest)
            con.execute(f"CREATE TEMP TABLE _new_tickets AS {ticket_select_sql(source, base)}")
        finally:
            os.unlink(tmp)

    def _refresh(self, con, kind: str, key: str, columns: dict) -> dict:
        """Files for a new generation of `kind`, given its changed rows in `_new_{kind}`."""
        base, delta = self._file(kind), self._file(kind + "_delta")
        if base is not None and not con.execute(f"SELECT count(*) FROM _new_{kind}").fetchall()[0][0]:
            return {}
        cols = ", ".join(f'"{c}"' for c in columns)
        if base is None:
            return {kind: f"SELECT {cols} FROM _new_{kind} ORDER BY {base_order(kind)}", kind + "_delta": None}
        new_delta = f"SELECT {cols} FROM _new_{kind}"
        if delta is not None:
            new_delta = (f"SELECT {cols} FROM read_parquet('{delta}') WHERE {key} NOT IN "
                         f"(SELECT {key} FROM _new_{kind}) UNION ALL {new_delta}")
        con.execute(f"CREATE TEMP TABLE _delta_{kind} AS {new_delta}")
        # fetchall, not fetchone: an open result keeps the connection busy for the next register
        n_delta = con.execute(f"SELECT count(*) FROM _delta_{kind}").fetchall()[0][0]
        n_base = con.execute(f"SELECT count(*) FROM read_parquet('{base}')").fetchall()[0][0]
        if n_delta > max(COMPACT_MIN_ROWS, n_base // 4):
            merged = (f"SELECT {cols} FROM read_parquet('{base}') WHERE {key} NOT IN "
                      f"(SELECT {key} FROM _delta_{kind}) UNION ALL SELECT {cols} FROM _delta_{kind} "
                      f"ORDER BY {base_order(kind)}")
            return {kind: merged, kind + "_delta": None}
        return {kind + "_delta": f"SELECT * FROM _delta_{kind} ORDER BY {key}"}


def _leased_meta(snapshot) -> dict | None:
    """The snapshot's meta with its files leased (see `Snapshot.lease`); None when there is no
    snapshot or it is damaged (reported once: the log is read instead)."""
    for _attempt in range(20):
        meta = snapshot.meta()
        if meta is None:
            return None
        why = snapshot.lease(meta)
        if why is None:
            return meta
        if why != GONE:
            report_damage(f"{snapshot.dir.name}/{why.split(':')[0]}", None,
                          f"{why.split(': ', 1)[-1]}; reading the log instead (the next writer rebuilds the snapshot)")
            return None
    return None


# Events a snapshot refresh decodes in Python: contacts (folded in Python) and new tickets
# (for the highest number); everything else only goes to DuckDB as raw lines.
_NEEDED_BY_REFRESH = re.compile(rb'"type"\s*:\s*"(?:contact\.|ticket\.created")')

def _fold_line(raw: bytes) -> bytes:
    """The line as the SQL fold needs it: a message's data (its text: most of the log's
    bytes) is not read by the fold, so it is left out of what DuckDB parses."""
    if b'"type":"message.received"' in raw[:400]:
        cut = raw.find(b',"data":')  # top-level: a quote inside a JSON string is escaped
        if cut > 0:
            return raw[:cut] + b',"data":{}}\n'
    return raw + b"\n"


def _copy_tail(log, start: Position | None, end: Position, fh, chunk: int = 8 << 20) -> int:
    """Copy the committed lines between `start` and `end` (whole lines: a reader's positions)
    to `fh` as the SQL fold reads them (`_fold_line`: messages without their data), in large
    blocks; returns the longest line's length. Commit marks stay (the fold ignores the key),
    and so do lines without a ticket (the fold skips them)."""
    longest = 0
    segment, carry = None, b""
    for name, _at, block in log.blocks(start, end, chunk):
        if name != segment:  # (a reader's end is the end of a committed line: nothing is left over)
            segment, carry = name, b""
        block = carry + block
        cut = block.rfind(b"\n") + 1
        block, carry = block[:cut], block[cut:]
        if not block:
            continue
        longest = max(longest, max(map(len, block.split(b"\n"))))
        if b'"message.received"' in block:
            block = b"".join(_fold_line(line) for line in block[:-1].split(b"\n"))
        fh.write(block)
    return longest


_CHUNK = 50000  # rows `_folded_tickets` turns into JSON at a time


# DuckDB's memory for one refresh step (tix.store.refresh): the fold of 250,000 events at a
# million tickets fits (~270 MB with DuckDB itself), and a compaction's sort spills beyond it.
REFRESH_MEMORY = "256MB"

# A delta smaller than this is never worth compacting into the base.
COMPACT_MIN_ROWS = 50000
