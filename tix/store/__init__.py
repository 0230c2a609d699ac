"""The store: a directory of plain files that holds everything tix knows.

This docstring is a contract. Other tools (DuckDB, Spark, a backup script, a future
tix) read these files; changing anything below needs a new `format` and a migration.

Layout::

    tix.yaml                   configuration (secrets by env var or 0600 file name only)
    rules/ templates/ reports/ the site's own copies, created from the package's examples
    events/YYYY-MM.jsonl       the event log, append-only monthly segments (UTC month)
    messages/…                 raw inbound/outbound messages exactly as received/sent
    blobs/sha256/ab/<hex>      attachments, content-addressed, stored once
    snapshot/                  Parquet cache of current state (see tix.store.snapshot)
    state/                     channel cursors, counters, `lock` (the write lock)
    spool/whatsapp/            webhook payloads waiting for `tix fetch`
    quarantine/                inputs that could not be processed, with the error beside them

Event lines. Each line of a segment is one JSON object followed by `\\n`::

    {"seq": 1043, "ts": "2026-11-24T07:57:05.123456Z", "actor": "user:alice",
     "via": "tix set", "type": "ticket.updated", "ticket": 1042,
     "data": {"set": {"status": "pending"}, "old": {"status": "open"}}, "why": "…"}

- `seq`: integer, strictly increasing by one across the whole log (all segments).
- `ts`: UTC, ISO 8601 with microseconds and `Z`.
- `actor`: `user:NAME`, `rule:NAME`, `sla:POLICY`, `channel:NAME` or `system`.
- `via`: the command (or rule/job) that made the change.
- `type`: what happened; `ticket` and/or `contact` name what it happened to;
  `data` is the change itself; `why` (optional) the reason given by the actor.
- Types folded into state (`tix.store.fold`): `ticket.created` (data: initial fields),
  `ticket.updated` (`set` new values, `old` previous ones; custom fields as
  `fields.NAME`), `ticket.tagged` (`add`, `remove`), `ticket.note` (`body`),
  `message.received` / `message.sent` (one message; `auto: true` for auto-replies),
  `ticket.routed` (`upto`: the seq routed up to), `contact.created`, `contact.updated`
  (`set`, `add_emails`, `remove_emails`, `add_phones`, `remove_phones`),
  `contact.merged` (`into`), `contact.erased`. Other types are kept in the log and the
  `events` view but change no ticket field (they do bump `updated_at`, except the
  bookkeeping types `ticket.routed`, `outbox.sent`, `outbox.failed`, `message.status`).
- Data of the message events, as written by the channels: `message.received` has
  `message` (the idempotency key), `channel`, `message_id`, `from`, `from_name`, `to`,
  `cc`, `subject`, `text` (new text), `text_full`, `html`, `raw` (path under `messages/`;
  with `raw_span` [offset, length] a byte range of a pack file: `channels.base.read_raw`),
  `attachments` (`name`, `type`, `size`, `sha256` or null when over the size limit),
  `auto`/`auto_reason`, `language`, `inbox`, `date`, `source`, `source_key`, `reply_to`,
  `calendar`, `text_truncated`; WhatsApp adds `wa_type`, `context`, `from_user_id`.
  `message.sent` has `outbox`, `state`, `channel`, `message_id`, `from`, `to`, `cc`,
  `subject`, `text`, `raw`, `auto`, `template`, `payload` (`state: queued`: written to
  the outbox, counted as sent from then on). `message.quarantined` (no
  ticket: `channel`, `source`, `source_key`, `message`, `quarantine`, `error`),
  `message.unmatched` (a bounce of no known ticket), `message.media` (a WhatsApp download).
  `ticket.note` kinds: `intake` (typed in by an agent), `bounce`, `linked`, `send_failed`.
- Stage events: `rule.auto_reply`, `rule.failed` (rules), `sla.step`, `sla.breached`
  (SLA). The outbox (everything tix sends; the full vocabulary is in `tix.outbox`):
  `outbox.queued` (a notification or report mail; no ticket: `outbox`, `purpose`, `kind`
  (the channel), `key`, `target`, `subject`, `body`, `payload`, `ticket`, `raw`),
  `outbox.sent` (`outbox`, `channel`, `attempt`, and what the channel answered),
  `outbox.failed` (`outbox`, `channel`, `attempt`, `error`, `permanent`, `next_try`);
  the last two name the ticket of a customer message. Older stores wrote `id` for
  `outbox` and `next_retry` for `next_try`; readers accept both.

Segments are named after the UTC month of the first event written to them and are only
ever appended to; a writer appends to the newest segment, or starts the segment of the
current month when that is newer. A line without its trailing newline is a torn write:
readers ignore it, and the next writer moves its bytes to `quarantine/` and truncates it
before appending. Writers hold `state/lock` (see tix.store.lock) and fsync every batch
before acknowledging anything at a source.
"""
from __future__ import annotations

import getpass
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import orjson

from tix import config as configmod
from tix.errors import NotFound, StoreNotFound
from tix.model import CONTACT_COLUMNS, TICKET_COLUMNS
from tix.store.fold import State
from tix.store.lock import WriteLock
from tix.store.log import EventLog, Position, iso, segment_name, utcnow
from tix.store.snapshot import Snapshot, rows_to_arrow

CONFIG_NAME = configmod.CONFIG_NAME
SUBDIRS = ("events", "messages", "blobs", "snapshot", "state", "spool/whatsapp", "quarantine",
           "rules", "templates", "reports")


def examples_dir() -> Path:
    """Where the example rules/templates/reports are: in the installed package, or the repo."""
    packaged = Path(__file__).resolve().parent.parent / "examples"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent


def find_store(explicit: str | os.PathLike | None = None, cwd: Path | None = None) -> Path:
    """Find the store directory.

    Lookup order: the `--store` option (`explicit`), then the `TIX_STORE` environment
    variable, then the current directory and each parent in turn, the first holding a
    `tix.yaml` (as git finds `.git`). Raises StoreNotFound saying how to create one.
    """
    for candidate in (explicit, os.environ.get("TIX_STORE")):
        if candidate:
            path = Path(candidate).expanduser()
            if (path / CONFIG_NAME).is_file():
                return path.resolve()
            raise StoreNotFound(f"no tix store at {path} (no {CONFIG_NAME}); create one with: tix init {path}")
    here = (cwd or Path.cwd()).resolve()
    for path in (here, *here.parents):
        if (path / CONFIG_NAME).is_file():
            return path
    raise StoreNotFound("no tix store found here or above; create one with: tix init DIR "
                        "(or point --store / TIX_STORE at one)")


def default_actor() -> str:
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"


class Store:
    """An opened store. Cheap to create; reads and writes go through its methods."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.log = EventLog(self.root / "events")
        self.snapshot = Snapshot(self.root / "snapshot")
        self._config: configmod.Config | None = None
        self._lock: WriteLock | None = None

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike | None = None) -> "Store":
        return cls(find_store(path))

    @classmethod
    def init(cls, path: str | os.PathLike, config_text: str | None = None) -> "Store":
        """Create a store at `path` with a commented tix.yaml and copies of the examples."""
        root = Path(path)
        if (root / CONFIG_NAME).exists():
            raise StoreNotFound(f"{root / CONFIG_NAME} already exists; not overwriting it")
        root.mkdir(parents=True, exist_ok=True)
        for sub in SUBDIRS:
            (root / sub).mkdir(parents=True, exist_ok=True)
        ex = examples_dir()
        for sub in ("rules", "templates", "reports"):
            src = ex / sub
            if src.is_dir():
                shutil.copytree(src, root / sub, dirs_exist_ok=True)
        if config_text is None:
            example = Path(__file__).resolve().parent.parent / "data" / "tix.example.yaml"
            config_text = example.read_text(encoding="utf-8")
        (root / CONFIG_NAME).write_text(config_text, encoding="utf-8")
        return cls(root)

    @property
    def config(self) -> configmod.Config:
        if self._config is None:
            self._config = configmod.load(self.root / CONFIG_NAME)
        return self._config

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    # -- writing ---------------------------------------------------------------------------
    def lock(self, timeout: float | None = None) -> WriteLock:
        """The write lock (re-entrant within this Store). Acquiring it repairs a torn line."""
        if self._lock is None:
            t = self.config.setting("lock_timeout") if timeout is None else timeout
            self._lock = WriteLock(self.path("state", "lock"), t)
        return self._lock

    @contextmanager
    def writing(self, actor: str | None = None, via: str = "tix", timeout: float | None = None):
        """Hold the lock and collect events; append and fsync them when the block ends.

        Yields a `Batch`. If the block raises, nothing of the batch not yet flushed is written.
        """
        lock = self.lock(timeout)
        with lock:
            if lock._depth == 1:
                self.log.repair(self.path("quarantine"))
            batch = Batch(self, actor or default_actor(), via)
            yield batch
            batch.flush()
            if lock._depth == 1:
                self.maybe_refresh_snapshot()

    def append(self, events: list[dict]) -> list[dict]:
        """Append fully formed events (seq assigned here) under the lock. Used by importers."""
        with self.writing() as batch:
            for ev in events:
                batch.add(ev)
        return events

    # -- reading ---------------------------------------------------------------------------
    def read(self, messages: bool = False) -> "Reader":
        """A consistent view: the snapshot plus the log tail folded on top of it (with
        `messages`, the tail's message events keep their data: see `Reader`)."""
        return Reader(self, messages=messages)

    def connect(self):
        """A DuckDB connection with read-only views `tickets`, `contacts`, `events`."""
        return self.read().connect()

    def ticket(self, number: int) -> dict:
        row = self.read().ticket(number)
        if row is None:
            raise NotFound(f"ticket #{number} not found")
        return row

    def events_for(self, ticket: int | None = None, contact: int | None = None) -> list[dict]:
        """All events naming a ticket (or contact), in log order. Scans the log."""
        out = []
        t_key = b'"ticket":%d,' % ticket if ticket is not None else None
        c_key = b'"contact":%d' % contact if contact is not None else None
        for raw, _seg, _off in self.log.read_raw():
            if (t_key and t_key in raw) or (c_key and c_key in raw):
                ev = orjson.loads(raw)
                if (ticket is not None and ev.get("ticket") == ticket) or (
                        contact is not None and ev.get("contact") == contact):
                    out.append(ev)
        return out

    # -- snapshot --------------------------------------------------------------------------
    def maybe_refresh_snapshot(self) -> bool:
        """Fold the tail into the snapshot once it holds `snapshot_every` events.

        Counting the tail's lines is cheap; the tail is only parsed and folded when due.
        """
        start = self.snapshot.position(self.snapshot.meta())
        every = self.config.setting("snapshot_every")
        count = 0
        for _ in self.log.read_raw(start):
            count += 1
            if count >= every:
                Reader(self, fold_tickets=False).write_snapshot()
                return True
        return False

    def refresh_snapshot(self) -> dict:
        """Fold the log tail into the snapshot now (the writers do it as the tail grows)."""
        with self.lock():
            return Reader(self, fold_tickets=False).write_snapshot()

    def rebuild(self) -> dict:
        """Fold the whole log into a fresh snapshot (the snapshot is only ever a cache).

        Tickets are folded by DuckDB (`tix.store.sqlfold`, on all cores); contacts, a small
        share of the log, by the Python fold.
        """
        import duckdb

        from tix.store.sqlfold import events_source, ticket_select_sql

        with self.lock():
            self.log.repair(self.path("quarantine"))
            last = self.log.last_event()
            pos = self.log.end()
            files: dict = {"tickets_delta": None, "contacts_delta": None}
            if last is None:
                files.update(tickets=rows_to_arrow([], TICKET_COLUMNS), contacts=rows_to_arrow([], CONTACT_COLUMNS))
                meta = {"seq": 0, "segment": pos.segment, "offset": pos.offset, "max_ticket": 0, "max_contact": 0}
                return self.snapshot.write(files, meta)
            con = duckdb.connect()
            con.execute("SET TimeZone = 'UTC'")
            source = events_source(str(self.log.dir / "*.jsonl"))
            # One scan of the JSON: the events land in a temp table (DuckDB spills to state/
            # if memory runs short); tickets fold in SQL, contacts (a few %) in Python.
            con.execute(f"SET temp_directory = '{self.path('state', 'duckdb-tmp')}'")
            con.execute(f"CREATE TEMP TABLE ev AS SELECT * FROM {source}")
            con.execute(f"CREATE TEMP TABLE folded AS {ticket_select_sql('ev')}")
            max_ticket = con.execute("SELECT coalesce(max(number), 0) FROM folded").fetchall()[0][0]
            state = State()
            rows = con.execute("SELECT seq, ts, type, contact, CAST(data AS VARCHAR) FROM ev "
                               "WHERE starts_with(type, 'contact.') ORDER BY seq").fetchall()
            con.execute("DROP TABLE ev")
            for seq, ts, kind, cid, data in rows:
                state.apply({"seq": seq, "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "type": kind,
                             "contact": cid, "data": orjson.loads(data) if data else {}})
            files["contacts"] = rows_to_arrow(sorted(state.contacts.values(), key=lambda r: r["id"]), CONTACT_COLUMNS)
            files["tickets"] = "SELECT * FROM folded ORDER BY number"
            meta = {"seq": last["seq"], "segment": pos.segment, "offset": pos.offset,
                    "max_ticket": max_ticket, "max_contact": state.max_contact}
            return self.snapshot.write(files, meta, con=con)


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
        self._reader: Reader | None = None
        self._max_ticket: int | None = None
        self._max_contact: int | None = None
        self._ts: str | None = None
        self._ts_at = 0.0
        self.cache: dict = {}  # per-batch state of helpers, keyed by module name (e.g. tix.outbox's)

    @property
    def reader(self) -> "Reader":
        """The state as it was when the batch started (taken under the lock)."""
        if self._reader is None:
            self._reader = self.store.read()
        return self._reader

    def use_reader(self, reader: "Reader") -> None:
        """Plan against this reader (e.g. one keeping message data) instead of the default."""
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

    def add(self, ev: dict) -> dict:
        self.seq += 1
        ev["seq"] = self.seq
        self.pending.append(ev)
        return ev

    def flush(self) -> Position | None:
        """Append pending events and fsync; after this they survive any crash."""
        if not self.pending:
            return None
        segs = self.store.log.segments()
        newest = segs[-1] if segs else ""
        segment = max(newest, segment_name(self.pending[0]["ts"]))
        dumps = orjson.dumps
        lines = [dumps(ev) + b"\n" for ev in self.pending]
        pos = self.store.log.append(lines, segment)
        self.written += self.pending
        self.pending = []
        return pos


class DryBatch(Batch):
    """A batch that computes its events and writes nothing (--dry-run, explain, rules test).

    Its events stay in `pending`; `reader` may be given to plan against a view already read.
    """

    def __init__(self, store: Store, reader: "Reader | None" = None, actor: str = "system",
                 via: str = "tix --dry-run"):
        super().__init__(store, actor, via)
        self._reader = reader

    def flush(self) -> None:
        return None


class Reader:
    """Snapshot + tail, read once. Never takes the lock; never sees a torn line."""

    def __init__(self, store: Store, fold_tickets: bool = True, messages: bool = False):
        """`messages`: keep the data of `message.received` events in `tail` (their text,
        most of the log's bytes; the rules engine reads it). Without it those events are
        decoded without their data: the fold never reads it."""
        self.store = store
        self.messages = messages
        self.meta = store.snapshot.meta()
        start = store.snapshot.position(self.meta)
        self.tail: list[dict] = []
        self.tail_lines = 0  # lines in the tail (a refresh decodes only some of them)
        self._duck = None  # DuckDB connection of `_base_rows`
        self.fold_tickets = fold_tickets
        self.start = start
        self.end = start or Position("", 0)
        self.last_seq = (self.meta or {}).get("seq", 0)
        loads = orjson.loads
        last = None
        for raw, seg, off in store.log.read_raw(start):
            if fold_tickets:
                self.tail.append(loads(raw if messages else _fold_line(raw)))
            elif _NEEDED_BY_REFRESH.search(raw):
                # a refresh: tickets fold in SQL from the log itself (`_fold_tickets_sql`),
                # so the tail is never held in memory; decode only what Python folds
                self.tail.append(loads(raw))
            last = raw
            self.tail_lines += 1
            self.end = Position(seg, off)
        if last is not None:
            self.last_seq = loads(last)["seq"]
        self.state = self._fold_tail()
        tail_max = max((ev["ticket"] for ev in self.tail if ev["type"] == "ticket.created"), default=0)
        self.max_ticket = max(self.state.max_ticket, tail_max, (self.meta or {}).get("max_ticket", 0))
        self.max_contact = max(self.state.max_contact, (self.meta or {}).get("max_contact", 0))

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
        return {row[0]: dict(zip(names, row)) for row in cur.fetchall()}

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

    def contact(self, cid: int) -> dict | None:
        if cid in self.state.contacts:
            return self.state.contacts[cid]
        return self._base_rows("contacts", {cid}).get(cid)

    # -- DuckDB -------------------------------------------------------------------------------
    def connect(self, con=None):
        """Register views `tickets`, `contacts`, `events` (and the stages' own) on a DuckDB connection."""
        import duckdb

        con = con or duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        _merged_view(con, "tickets", "number", self.snapshot_sql("tickets"), self.state.tickets, TICKET_COLUMNS)
        _merged_view(con, "contacts", "id", self.snapshot_sql("contacts"), self.state.contacts, CONTACT_COLUMNS)
        _events_view(con, self.store.log.dir)
        for hook in VIEW_HOOKS:
            _call_hook(hook, con, self)
        return con

    def write_snapshot(self) -> dict:
        """Fold the tail into the snapshot (caller holds the lock); return the new meta.

        Only the delta is rewritten: the old delta's rows the tail did not touch, plus the
        tail's rows. When the delta outgrows a quarter of the base, both become a new base.
        """
        if not self.tail_lines and self.meta:
            return self.meta
        import duckdb

        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        if self.tail_lines < 100_000:  # a second thread saves little here and holds ~30 MB more
            con.execute("SET threads = 1")
        meta = {"seq": self.last_seq, "segment": self.end.segment,
                "offset": self.end.offset, "max_ticket": self.max_ticket, "max_contact": self.max_contact}
        files: dict = {}
        if self.fold_tickets:
            con.register("_new_tickets", rows_to_arrow(
                sorted(self.state.tickets.values(), key=lambda r: r["number"]), TICKET_COLUMNS))
        else:
            self._fold_tickets_sql(con)
        files.update(self._refresh(con, "tickets", "number", TICKET_COLUMNS))
        con.register("_new_contacts", rows_to_arrow(
            sorted(self.state.contacts.values(), key=lambda r: r["id"]), CONTACT_COLUMNS))
        files.update(self._refresh(con, "contacts", "id", CONTACT_COLUMNS))
        return self.store.snapshot.write(files, meta, con=con)

    def _fold_tickets_sql(self, con) -> None:
        """`_new_tickets` = the tail's tickets folded by DuckDB on top of their snapshot rows."""
        import os
        import tempfile

        from tix.store.sqlfold import events_source, ticket_select_sql

        fd, tmp = tempfile.mkstemp(prefix="tail-", suffix=".jsonl", dir=self.store.path("state"))
        try:
            longest = 0
            with os.fdopen(fd, "wb") as fh:  # the tail's ticket events, streamed from the log
                for raw, _seg, _off in self.store.log.read_raw(self.start):
                    if b'"ticket":' in raw:
                        line = _fold_line(raw)
                        longest = max(longest, len(line))
                        fh.write(line)
                    if (_seg, _off) == (self.end.segment, self.end.offset):
                        break
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
            return {kind: f"SELECT {cols} FROM _new_{kind} ORDER BY {key}", kind + "_delta": None}
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
                      f"(SELECT {key} FROM _delta_{kind}) UNION ALL SELECT {cols} FROM _delta_{kind} ORDER BY {key}")
            return {kind: merged, kind + "_delta": None}
        return {kind + "_delta": f"SELECT * FROM _delta_{kind} ORDER BY {key}"}


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


# A delta smaller than this is never worth compacting into the base.
COMPACT_MIN_ROWS = 50000


def _merged_view(con, name: str, key: str, snap_sql: str | None, tail_rows: dict, columns: dict) -> None:
    """View `name` = snapshot rows not touched by the tail + the tail's folded rows.

    With an empty tail, no Arrow table is built (pyarrow is not even imported).
    """
    cast = ", ".join(f'CAST("{c}" AS JSON) AS "{c}"' if t == "JSON" else f'"{c}"' for c, t in columns.items())
    cols = ", ".join(f'"{c}"' for c in columns)
    if not tail_rows:
        if snap_sql is None:
            empty = ", ".join(f'NULL::{"VARCHAR" if t == "JSON" else t} AS "{c}"' for c, t in columns.items())
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {cast} FROM (SELECT {empty}) WHERE false")
        else:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {cast} FROM ({snap_sql})")
        return
    tail_name = f"_tail_{name}"
    con.register(tail_name, rows_to_arrow(list(tail_rows.values()), columns))
    if snap_sql is None:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {cast} FROM {tail_name}")
        return
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {cast} FROM ("
        f"SELECT {cols} FROM ({snap_sql}) WHERE {key} NOT IN (SELECT {key} FROM {tail_name}) "
        f"UNION ALL SELECT {cols} FROM {tail_name})"
    )


# Further views, owned by other stages: "module:function(con, reader)". A stage whose module
# is not there yet is skipped; an error inside a present module is raised.
VIEW_HOOKS = ("tix.views:register", "tix.sla.views:register")


def _call_hook(target: str, con, reader) -> None:
    import importlib

    module, func = target.split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return
        raise
    getattr(mod, func)(con, reader)


EVENT_COLUMNS = {"seq": "BIGINT", "ts": "TIMESTAMP", "actor": "VARCHAR", "via": "VARCHAR",
                 "type": "VARCHAR", "ticket": "BIGINT", "contact": "BIGINT", "data": "JSON", "why": "VARCHAR"}


def _events_view(con, events_dir: Path) -> None:
    files = sorted(events_dir.glob("*.jsonl")) if events_dir.is_dir() else []
    if not files:
        cols = ", ".join(f"NULL::{t} AS {c}" for c, t in EVENT_COLUMNS.items())
        con.execute(f"CREATE OR REPLACE TEMP VIEW events AS SELECT {cols} WHERE false")
        return
    glob = str(events_dir / "*.jsonl").replace("'", "''")
    columns = "{" + ", ".join(f"'{c}': '{t}'" for c, t in EVENT_COLUMNS.items()) + "}"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW events AS SELECT * FROM read_json('{glob}', "
        f"format='newline_delimited', columns={columns}, ignore_errors=true)"
    )

