"""`Store`: an opened store directory, and how one is found and created.

Owns opening (`find_store`: `--store`, `TIX_STORE`, upward search), `Store.init` (the
layout of the contract in tix.store, with copies of the examples), the loaded tix.yaml,
the write lock and `Store.writing` (a `tix.store.batch.Batch` under it), reads
(`tix.store.reader.Reader`) and the snapshot's upkeep (refresh, rebuild).
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import orjson

from tix import config as configmod
from tix.errors import NotFound, StoreNotFound, StoreWriteError
from tix.model import CONTACT_COLUMNS, TICKET_COLUMNS
from tix.store.batch import Batch
from tix.store.fold import State
from tix.store.files import clean_stale, write_error
from tix.store.lock import WriteLock
from tix.store.log import EventLog, Position, report_damage
from tix.store.reader import Reader
from tix.store import history, rewrite, search
from tix.store.snapshot import OUTCOME as SNAPSHOT_OUTCOME, Snapshot, base_order, rows_to_arrow

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
            if _is_config(path):
                return path.resolve()
            raise StoreNotFound(f"no tix store at {path} (no {CONFIG_NAME}); create one with: tix init {path}")
    here = (cwd or Path.cwd()).resolve()
    for path in (here, *here.parents):
        if _is_config(path):
            return path
    raise StoreNotFound("no tix store found here or above; create one with: tix init DIR "
                        "(or point --store / TIX_STORE at one)")


def _is_config(directory: Path) -> bool:
    """Does `directory` hold a tix.yaml? One this user may not even look at is one line, not a traceback."""
    try:
        return (directory / CONFIG_NAME).is_file()
    except PermissionError:
        raise StoreNotFound(f"{directory}: permission denied; this store's files are not yours to read "
                            f"(run tix as its owner, e.g. through sudo: see the README, \"Who may do what\")") from None


def default_actor() -> str:
    """`user:LOGIN` of the real user of this process (its uid, never $USER or $LOGNAME)."""
    from tix.access import os_login

    return f"user:{os_login()}"


class Store:
    """An opened store. Cheap to create; reads and writes go through its methods."""

    def __init__(self, root: Path):
        restrict_umask()
        self.root = Path(root)
        self.log = EventLog(self.root / "events", self.root / "state" / "log-format.json")
        self.snapshot = Snapshot(self.root / "snapshot")
        self._config: configmod.Config | None = None
        self.via_note = ""  # " (admin X as Y)" under --as (tix.access): added to every event's via
        self._lock: WriteLock | None = None
        self.rebuild_problems: list = []  # what the last `rebuild` skipped (damaged lines, seq gaps)
        self._rebuilding = False
        self.resumed_rewrite: dict | None = None  # the plan `heal` finished, if any
        self.cache: dict[str, object] = {}
        """Indexes kept for the life of this Store object, by key: `mail_index` (tix.channels.mail.smtp:
        the Message-ID index of sent mail, caught up before each use). Never written to disk;
        a key belongs to the module named beside it, which alone reads and writes it."""

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike | None = None) -> "Store":
        """Find the store (`find_store`) and load its tix.yaml: a broken one (empty, not
        YAML, invalid) stops every command here with its file:line (ConfigError, exit 2)."""
        store = cls(find_store(path))
        store.config  # noqa: B018 - loaded now, so that every command checks it
        return store

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
        store = cls(root)
        store.log.write_format(Position("", 0))  # every batch of a new store carries its commit mark
        return store

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
        """The write lock (re-entrant within this Store). Whoever takes it first gets the store
        repaired (`heal`) before doing anything else."""
        if self._lock is None:
            t = self.config.setting("lock_timeout") if timeout is None else timeout
            self._lock = WriteLock(self.path("state", "lock"), t, on_acquire=self.heal)
        return self._lock

    def heal(self) -> None:
        """What every writer does first, under the lock: cut the log back to its last committed
        batch (a crash mid-batch: `EventLog.repair`), remove the temp files killed writers left
        (`files.clean_stale`), and rebuild a damaged snapshot from the log."""
        self.log.repair(self.path("quarantine"))
        clean_stale(self.root)
        self.resumed_rewrite = rewrite.resume(self)  # an erasure or purge a crash cut short
        damage = None if getattr(self, "_rebuilding", False) else self.snapshot.damage()
        if damage:
            report_damage(f"snapshot/{damage.split(':')[0]}", None,
                          f"{damage.split(': ', 1)[-1]}; rebuilding the snapshot from the log")
            self.rebuild()

    @contextmanager
    def writing(self, actor: str | None = None, via: str = "tix", timeout: float | None = None):
        """Hold the lock and collect events; append and fsync them as one batch when the block ends.

        Yields a `Batch`. If the block raises, nothing of the batch not yet committed is
        written (parts written with `flush(commit=False)` are taken back).
        """
        lock = self.lock(timeout)
        with lock:
            batch = Batch(self, actor or default_actor(), via + self.via_note)
            try:
                yield batch
                batch.flush()
            except BaseException:
                batch.abort()
                raise
            if lock.depth == 1:
                try:
                    self.maybe_refresh_snapshot(batch)
                except StoreWriteError as exc:
                    raise exc.with_outcome(
                        "the changes are saved; only the snapshot (a cache) was not refreshed: "
                        "the next command does it once there is space (or run tix rebuild)") from None
                search.catch_up(self)  # the search index (a cache) follows each commit, when there is one

    def append(self, events: list[dict]) -> list[dict]:
        """Append fully formed events (seq assigned here) under the lock. Used by importers."""
        with self.writing() as batch:
            for ev in events:
                batch.add(ev)
        return events

    # -- reading ---------------------------------------------------------------------------
    def read(self, messages: bool = False, con=None) -> "Reader":
        """A consistent view: the snapshot plus the log tail folded on top of it (with
        `messages`, the tail's message events keep their data; `con`, a DuckDB connection for
        its reads: see `Reader`)."""
        if (self._lock is None or not self._lock.held) and self.path(*rewrite.REWRITE_DIR, rewrite.PLAN).exists():
            self._finish_rewrite()
        return Reader(self, messages=messages, con=con)

    def _finish_rewrite(self) -> None:
        """A reader that finds an erasure or purge a crash cut short finishes it first (taking the
        write lock without waiting), so that it reads the old state or the new one, never a mix.
        When a writer holds the lock (it finishes it), or this user may not write, it reads on."""
        from tix.errors import StoreLocked

        lock = self.lock()
        wait, lock.timeout = lock.timeout, 0
        try:
            with lock:
                pass
        except (StoreLocked, StoreWriteError, OSError):  # a writer is at it; or this user may not write
            report_damage("state/rewrite/plan.json", None,
                          "an erasure or purge is being finished; the next writer completes it")
        finally:
            lock.timeout = wait

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
        for raw, seg, off in self.log.read_raw():
            if (t_key and t_key in raw) or (c_key and c_key in raw):
                try:
                    ev = orjson.loads(raw)
                except ValueError as exc:
                    self.log.damaged(seg, off - len(raw) - 1, str(exc).splitlines()[0])
                    continue
                if (ticket is not None and ev.get("ticket") == ticket) or (
                        contact is not None and ev.get("contact") == contact):
                    out.append(ev)
        return out

    # -- snapshot --------------------------------------------------------------------------
    def maybe_refresh_snapshot(self, batch: Batch | None = None) -> bool:
        """Fold the tail into the snapshot once it holds `snapshot_every` events.

        Counting the tail's lines is cheap; the tail is only parsed and folded when due. When
        `batch` (just committed, lock held) folded its events itself (`Batch.folded`), its rows
        are written as they are, the log not read back; a tail before it (shorter than
        `snapshot_every`) is folded from the log first, as a generation of its own.
        """
        from tix.store import refresh

        meta = self.snapshot.meta()
        start = self.snapshot.position(meta)
        every = self.config.setting("snapshot_every")
        if batch is not None and batch.folded is not None and meta and batch.start is not None \
                and not batch.pending and batch.seq - batch.first_seq >= every:
            batch.use_reader(None)  # what it read before the batch (its tail, its DuckDB): not needed now
            if batch.start != start:
                refresh.run(self, [batch.start], end=False)
            Reader(self, fold_tickets=False, batch=batch).write_snapshot()
            history.catch_up(self)
            return True
        count = 0
        for _ in self.log.read_raw(start):
            count += 1
            if count >= every:
                refresh.run(self)  # the tail in steps of bounded memory (tix.store.refresh)
                history.catch_up(self)  # the reports' history cache follows (when there is one)
                return True
        return False

    def _damaged_lines(self, con, replace: bool) -> str | None:
        """After the events are in `ev`: if lines were skipped or seqs are missing, name them
        (`rebuild_problems`), keep the damaged lines in quarantine, and drop their rows."""
        n, bad, lo, hi = con.execute("SELECT count(*), count(*) FILTER (WHERE seq IS NULL OR ts IS NULL OR "
                                     "type IS NULL), min(seq), max(seq) FROM ev").fetchall()[0]
        if not bad and (lo == 1 or lo is None) and (hi or 0) - (lo or 1) + 1 == n:
            return None
        from tix.store.check import quarantine_damaged, replace_damaged as replace_lines, scan_log

        scan = scan_log(self)
        quarantine_damaged(self, scan.damaged)
        if replace and scan.damaged:
            done, _left = replace_lines(self, scan.damaged)
            if done:
                return "replaced"
        self.rebuild_problems = scan.problems
        con.execute("DELETE FROM ev WHERE seq IS NULL OR ts IS NULL OR type IS NULL")
        return "skipped"

    def refresh_snapshot(self) -> dict:
        """Fold the log tail into the snapshot now (the writers do it as the tail grows)."""
        from tix.store import refresh

        with self.lock():
            return refresh.run(self) or Reader(self, fold_tickets=False).write_snapshot()

    def rebuild(self, replace_damaged: bool = False) -> dict:
        """Fold the whole log into a fresh snapshot (the snapshot is only ever a cache).

        Tickets are folded by DuckDB (`tix.store.sqlfold`, on all cores); contacts too when
        their only event is a plain creation, the rest (a few) by the Python fold. Damaged
        lines are left out of the fold, copied to `quarantine/` and listed in
        `self.rebuild_problems` (with any seq gap); with `replace_damaged`, each whose seq is
        known is first replaced in the log by a `log.damaged` event (tix.store.check.replace_damaged).
        """
        self._rebuilding = True
        try:
            with self.lock():
                return self._rebuild(replace_damaged)
        finally:
            self._rebuilding = False

    def _rebuild(self, replace_damaged: bool) -> dict:
        import duckdb

        from tix.store.sqlfold import events_source, extract_sql, ticket_select_sql

        self.rebuild_problems = []
        last = self.log.last_event()
        pos = self.log.end()
        files: dict = {"tickets_delta": None, "contacts_delta": None}
        if last is None:
            files.update(tickets=rows_to_arrow([], TICKET_COLUMNS), contacts=rows_to_arrow([], CONTACT_COLUMNS))
            meta = {"seq": 0, "segment": pos.segment, "offset": pos.offset, "max_ticket": 0, "max_contact": 0}
            return self.snapshot.write(files, meta)
        # The events go to a working database file, not to memory: DuckDB compresses a
        # table it stores (10M events: about 200 MB, against 1.7 GB as a temp table), so
        # they stay in its buffer under REBUILD_MEMORY instead of spilling to disk and being
        # read back by every part of the fold. Removed when done (or by `clean_stale`).
        work = self.path("state", f"rebuild-{os.getpid()}.duckdb")
        _remove_work(work)
        con = None
        try:
            con = duckdb.connect(str(work))
            con.execute("SET TimeZone = 'UTC'")
            # Bounded memory: DuckDB spills to state/duckdb-tmp only past REBUILD_MEMORY, and
            # rows need not keep the files' order (every query below sorts what it needs).
            con.execute(f"SET temp_directory = '{self.path('state', 'duckdb-tmp')}'")
            con.execute(f"SET memory_limit = '{REBUILD_MEMORY}'")
            con.execute("SET preserve_insertion_order = false")
            source = events_source(str(self.log.dir / "*.jsonl"))
            # One scan of the JSON: the events land in a table with what the folds read of
            # their data already parsed into typed columns (`extract_sql`; a message's text is
            # left behind); tickets fold in SQL on those columns, contacts (`_fold_contacts`)
            # from the data kept of contact events only.
            con.execute(f"CREATE TABLE ev AS {extract_sql(source)}")
            if self._damaged_lines(con, replace_damaged) == "replaced":
                con.close()
                _remove_work(work)
                return self._rebuild(False)
            # Tickets fold in ranges of numbers (a ticket's row depends on its own events
            # only): each part's aggregates fit in memory, where one fold of all tickets
            # spilled gigabytes to disk.
            count, lo, hi = con.execute("SELECT count(*), min(ticket), max(ticket) FROM ev").fetchall()[0]
            parts = max(1, -(-count // REBUILD_PART_EVENTS))
            step = -(-((hi or 0) - (lo or 0) + 1) // parts)
            for i in range(parts):
                start, end = (lo or 0) + i * step, (lo or 0) + (i + 1) * step
                fold = ticket_select_sql(f"(SELECT * FROM ev WHERE ticket >= {start} AND ticket < {end})",
                                         extracted=True)
                con.execute(f"CREATE TABLE folded AS {fold}" if i == 0 else f"INSERT INTO folded {fold}")
            max_ticket = con.execute("SELECT coalesce(max(number), 0) FROM folded").fetchall()[0][0]
            contacts, max_contact = _fold_contacts(con)
            con.execute("DROP TABLE ev")
        except Exception as exc:  # a full disk is one line; anything else is raised as it is
            if con is not None:
                con.close()
            _remove_work(work)
            if isinstance(exc, StoreWriteError):  # already the one line (quarantine, a rebuild after replacing)
                raise
            needed = sum(p.stat().st_size for p in self.log.dir.glob("*.jsonl")) // 10  # ~ the working table
            raise write_error(exc, work, needed, SNAPSHOT_OUTCOME) from None
        try:
            files["contacts"] = contacts
            files["tickets"] = f"SELECT * FROM folded ORDER BY {base_order('tickets')}"
            meta = {"seq": last["seq"], "segment": pos.segment, "offset": pos.offset,
                    "max_ticket": max_ticket, "max_contact": max_contact}
            return self.snapshot.write(files, meta, con=con)
        finally:
            con.close()
            _remove_work(work)


def _remove_work(path: Path) -> None:
    """Remove `tix rebuild`'s working database (and DuckDB's write-ahead log beside it)."""
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


# DuckDB's memory for `tix rebuild` (it spills to state/duckdb-tmp beyond it): with Python,
# the contacts and the Parquet writers, a rebuild of 1M tickets / 10M events stays under 1 GB.
REBUILD_MEMORY = "500MB"
# Events per part of the ticket fold (parts are ranges of ticket numbers, each folded alone).
# 10M events (0.5 GB memory limit): 2 parts 18.6 s CPU, 3 15.8 s, 4 14.3 s, 8 13.4 s.
REBUILD_PART_EVENTS = 1_250_000

CONTACT_CHUNK = 20000  # contacts folded in Python, then turned into Arrow, at a time


def _fold_contacts(con):
    """A SELECT of every contact row, in id order, and the highest contact id, from `ev`.

    Contacts whose only event is a plain creation (nearly all) are taken in SQL
    (`sqlfold.plain_contacts_sql`, table `plain`); the rest fold in Python one contact at
    a time (table `rest`, Arrow): the Python rows of only CONTACT_CHUNK contacts are held at once.
    """
    import pyarrow as pa

    from tix.store.sqlfold import plain_contacts_sql

    con.execute(f"CREATE TEMP TABLE plain AS {plain_contacts_sql('ev')}")
    cur = con.execute("SELECT seq, ts, type, contact, CAST(data AS VARCHAR) FROM ev "
                      "WHERE starts_with(type, 'contact.') AND contact IS NOT NULL "
                      "AND contact NOT IN (SELECT id FROM plain) ORDER BY contact, seq")
    tables = []
    state = State()
    loads = orjson.loads
    while True:
        rows = cur.fetchmany(10000)
        if not rows:
            break
        for seq, ts, kind, cid, data in rows:
            if cid not in state.contacts and len(state.contacts) >= CONTACT_CHUNK:
                tables.append(rows_to_arrow(list(state.contacts.values()), CONTACT_COLUMNS))
                state = State()
            state.apply({"seq": seq, "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "type": kind,
                         "contact": cid, "data": loads(data) if data else {}})
    tables.append(rows_to_arrow(list(state.contacts.values()), CONTACT_COLUMNS))
    con.register("rest", pa.concat_tables(tables))
    max_contact = con.execute("SELECT coalesce(max(contact), 0) FROM ev "
                              "WHERE starts_with(type, 'contact.')").fetchall()[0][0]
    cols = ", ".join(f'"{c}"' for c in CONTACT_COLUMNS)
    return f"SELECT {cols} FROM plain UNION ALL SELECT {cols} FROM rest ORDER BY id", max_contact
