"""`Store`: an opened store directory, and how one is found and created.

Owns opening (`find_store`: `--store`, `TIX_STORE`, upward search), `Store.init` (the
layout of the contract in tix.store, with copies of the examples), the loaded tix.yaml,
the write lock and `Store.writing` (a `tix.store.batch.Batch` under it), reads
(`tix.store.reader.Reader`) and the snapshot's upkeep (refresh, rebuild).
"""
from __future__ import annotations

import getpass
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import orjson

from tix import config as configmod
from tix.errors import NotFound, StoreNotFound
from tix.model import CONTACT_COLUMNS, TICKET_COLUMNS
from tix.store.batch import Batch
from tix.store.fold import State
from tix.store.lock import WriteLock
from tix.store.log import EventLog
from tix.store.reader import Reader
from tix.store import history
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


STORE_UMASK = 0o027  # directories 0750, files 0640: the store's group reads, others nothing
STORE_DIR_MODE = 0o2750


def restrict_umask() -> None:
    """Make this process create store files 0640 and directories 0750 (DESIGN invariant 10).

    The file modes are decided here, once, for every writer: the umask is tightened to
    at least 027 (a stricter one is kept), so that files created with default modes by any
    library (pyarrow, DuckDB, shutil) are not world-readable. Secrets and caches are written
    0600 explicitly (tix.store.files.atomic_write(mode=0o600)).
    """
    current = os.umask(STORE_UMASK)
    os.umask(current | STORE_UMASK)


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
        restrict_umask()
        self.root = Path(root)
        self.log = EventLog(self.root / "events")
        self.snapshot = Snapshot(self.root / "snapshot")
        self._config: configmod.Config | None = None
        self._lock: WriteLock | None = None
        self.cache: dict[str, object] = {}
        """Indexes kept for the life of this Store object, by key: `mail_index` (tix.channels.mail.smtp:
        the Message-ID index of sent mail, caught up before each use). Never written to disk;
        a key belongs to the module named beside it, which alone reads and writes it."""

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
        restrict_umask()
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(STORE_DIR_MODE)  # setgid: everything below belongs to the store's group
        for sub in SUBDIRS:
            (root / sub).mkdir(parents=True, exist_ok=True)
        ex = examples_dir()
        for sub in ("rules", "templates", "reports"):
            src = ex / sub
            for f in sorted(src.rglob("*")) if src.is_dir() else ():
                if f.is_file():  # copyfile, not copytree: the package's own modes are not the store's
                    target = root / sub / f.relative_to(src)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(f, target)
        if config_text is None:
            example = Path(__file__).resolve().parent.parent / "data" / "tix.example.yaml"
            config_text = example.read_text(encoding="utf-8")
        (root / CONFIG_NAME).write_text(config_text, encoding="utf-8")
        return cls(root)

    @property
    def config(self) -> configmod.Config:
        """tix.yaml, loaded on first use and kept (see `reload_config`, `set_config`)."""
        if self._config is None:
            self._config = configmod.load(self.root / CONFIG_NAME)
        return self._config

    def reload_config(self) -> None:
        """Forget the loaded tix.yaml: the next use of `config` reads the file again.

        For code (and tests) that rewrote tix.yaml while this Store was open.
        """
        self._config = None

    def set_config(self, config: configmod.Config) -> None:
        """Use this config, already loaded from this store's tix.yaml (e.g. with every
        section validated, as `tix escalate` loads it), instead of loading it again."""
        self._config = config

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    # -- writing ---------------------------------------------------------------------------
    def lock(self, timeout: float | None = None) -> WriteLock:
        """The write lock (re-entrant within this Store). `writing` (and `rebuild`) repair a
        torn last line once they hold it; a caller taking it for its own appends does the same."""
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
            if lock.depth == 1:
                self.log.repair(self.path("quarantine"))
            batch = Batch(self, actor or default_actor(), via)
            yield batch
            batch.flush()
            if lock.depth == 1:
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
                history.catch_up(self)  # the reports' history cache follows (when there is one)
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
