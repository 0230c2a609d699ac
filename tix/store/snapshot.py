"""The Parquet snapshot: current tickets and contacts, a cache rebuilt from the log at will.

    snapshot/meta.json                 {"format": 1, "seq": N, "segment": "2026-11.jsonl",
                                        "offset": BYTES, "max_ticket": T, "max_contact": C,
                                        "tickets": "tickets-B.parquet",
                                        "tickets_delta": "tickets_delta-N.parquet" | null,
                                        "contacts": "contacts-B.parquet",
                                        "contacts_delta": "contacts_delta-N.parquet" | null}
    snapshot/tickets-B.parquet         one row per ticket (`tix.model.TICKET_COLUMNS`), as of seq B
    snapshot/tickets_delta-N.parquet   rows changed since B, as of seq N (they win over the base)

Current state = base rows not in the delta, plus the delta, plus the log after `offset`
folded on top (`tix.store.Reader`). A refresh rewrites only the delta; when the delta
outgrows a quarter of the base, base and delta are compacted into a new base. `N` is the
seq of the last event folded in; `segment`/`offset` the log position right after it.
Files are written under a temporary name, fsynced and renamed; `meta.json` is replaced
last, so a reader sees the old generation or the new one, never a mix.

Readers lease the files of the generation they read (`Snapshot.lease`: a shared `flock` on
each file, held until the process ends or prunes them itself), and a writer removes an old
generation's file only when it can take that lock exclusively: a report that runs while
other commands refresh the snapshot keeps its files however long it takes. The previous
generation is also kept until the next refresh, for the writer process's own readers.

An unreadable `meta.json`, or a file of it missing, truncated or not Parquet, is damage:
readers report it in one line and read the log instead; the next writer rebuilds.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

import orjson

from tix.errors import StoreWriteError
from tix.store.files import FILE_MODE, MB, atomic_write, commit_temp, temp_name, write_error
from tix.store.log import Position, _why, report_damage

GONE = "gone"  # `lease`: a file of that generation was just removed (read meta.json again)
OUTCOME = "the snapshot (a cache of the log) stays as it was; the log has every change"

FORMAT = 1
# Many row groups let DuckDB scan on every core and skip groups by min/max (tickets are
# stored in number order, so creation times are nearly sorted too).
ROW_GROUP = 65536


def base_order(kind: str) -> str:
    """The ORDER BY of a base file. Tickets: the open ones (new, open, pending) first, then
    the rest, each part in number order. Most reads want open tickets (a backlog, `tix list
    status:open`, SLA clocks), a tenth of a grown store: their row groups are then the first
    few, and DuckDB skips every other group by its min/max status without reading it (at 1M
    tickets, a backlog scan drops from about 110 ms to 7 ms). A ticket that changes later goes to
    the delta, so the base's order never has to be kept up."""
    if kind != "tickets":
        return "id"
    from tix.model import OPEN_STATUSES

    listed = ", ".join(f"'{s}'" for s in OPEN_STATUSES)
    return f"status NOT IN ({listed}), number"


def _arrow_type(pa, sql_type: str):
    return {
        "BIGINT": pa.int64(),
        "INTEGER": pa.int32(),
        "VARCHAR": pa.string(),
        "JSON": pa.string(),
        "TIMESTAMP": pa.timestamp("us"),
        "VARCHAR[]": pa.list_(pa.string()),
    }[sql_type]


def arrow_schema(columns: dict[str, str]):
    import pyarrow as pa

    return pa.schema([(name, _arrow_type(pa, t)) for name, t in columns.items()])


def rows_to_arrow(rows: list[dict], columns: dict[str, str]):
    """Folded rows (times as ISO strings) -> an Arrow table with the snapshot schema."""
    import pyarrow as pa

    arrays = []
    for name, sql_type in columns.items():
        values = [r.get(name) for r in rows]
        if sql_type == "TIMESTAMP":
            arr = pa.array(values, pa.string())
            arr = arr.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
        else:
            arr = pa.array(values, _arrow_type(pa, sql_type))
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=arrow_schema(columns))


def json_type(sql_type: str) -> str:
    """How a column of the snapshot's type `sql_type` is read from folded rows as JSON: a time
    (an ISO string) and a JSON column (its text) as VARCHAR, the rest as themselves."""
    return "VARCHAR" if sql_type in ("JSON", "TIMESTAMP") else sql_type


def from_json_value(table: str, column: str, sql_type: str) -> str:
    """SQL turning `table`.`column`, read as `json_type(sql_type)`, into the snapshot's type (a
    time: naive UTC)."""
    expr = f'{table}."{column}"'
    return f"CAST(CAST({expr} AS TIMESTAMPTZ) AS TIMESTAMP)" if sql_type == "TIMESTAMP" else expr


def register_rows(con, name: str, rows: list[dict], columns: dict[str, str]) -> None:
    """Temp table `name` on a DuckDB connection (whose TimeZone is UTC) holding folded rows
    (times as ISO strings) with the snapshot's column types, without pyarrow: the rows go in
    as one JSON parameter. For the short tail a read folds in Python: importing pyarrow and
    numpy costs more (about 0.25 s) than a few thousand rows take this way."""
    import orjson

    shape = {c: json_type(t) for c, t in columns.items()}
    cols = ", ".join(f'{from_json_value("r", c, t)} AS "{c}"' for c, t in columns.items())
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {cols} FROM "
                f"(SELECT unnest(from_json($rows, $shape)) AS r)",
                {"rows": orjson.dumps([{c: row.get(c) for c in columns} for row in rows]).decode(),
                 "shape": orjson.dumps([shape]).decode()})


class Snapshot:
    def __init__(self, directory: Path):
        self.dir = Path(directory)

    def meta(self) -> dict | None:
        """`meta.json`, or None when there is none or it cannot be read (reported once: the
        snapshot is a cache, and the log is read instead)."""
        try:
            meta = orjson.loads((self.dir / "meta.json").read_bytes())
            _check_meta(meta)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            report_damage(f"{self.dir.name}/meta.json", None,
                          f"unreadable ({_why(exc)}); reading the log instead (the next writer rebuilds it)")
            return None
        return meta

    def damage(self) -> str | None:
        """What is wrong with the snapshot (None: whole, or none at all): an unreadable
        `meta.json`, or a file it names missing, truncated or not Parquet."""
        if not (self.dir / "meta.json").exists():
            return None
        meta = self.meta()
        if meta is None:
            return "meta.json: unreadable"
        for name in _names(meta):
            why = parquet_problem(self.dir / name)
            if why:
                return f"{name}: {why}"
        return None

    def position(self, meta: dict | None) -> Position | None:
        if not meta:
            return None
        return Position(meta["segment"], meta["offset"])

    def path(self, meta: dict, kind: str) -> Path | None:
        name = meta.get(kind) if meta else None
        return self.dir / name if name else None

    def lease(self, meta: dict) -> str | None:
        """Hold a shared lease on every file of `meta`'s generation, until this process ends.

        Returns None when they are all held; GONE when one was removed before it could be
        leased (a writer pruned that generation: read meta.json again); otherwise what is
        wrong with a file (missing from a meta.json that still names it, truncated, not
        Parquet). A writer's `_prune` never removes a file a lease is held on.
        """
        for name in _names(meta):
            path = self.dir / name
            held = _LEASES.get(str(path))
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return GONE if self.meta() != meta else f"{name}: missing"
            if held is not None and held[1] == (st.st_dev, st.st_ino):
                continue
            try:
                fh = open(path, "rb")
            except FileNotFoundError:
                return GONE
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # a writer is removing it right now
                fh.close()
                return GONE
            st = os.fstat(fh.fileno())
            why = GONE if st.st_nlink == 0 else _parquet_problem(fh, st.st_size)
            if why:
                fh.close()
                return why if why == GONE else f"{name}: {why}"
            if held is not None:
                held[0].close()
            _LEASES.pop(str(path), None)
            _LEASES[str(path)] = (fh, (st.st_dev, st.st_ino))
            _bound_leases()
        return None

    def write(self, files: dict, meta: dict, con=None) -> dict:
        """Write a new generation; return its meta.

        `files` maps a kind (`tickets`, `tickets_delta`, `contacts`, `contacts_delta`) to an
        Arrow table or a DuckDB SELECT (run on `con`), or to None to drop that file. Kinds
        not named keep the file of the previous generation. A full disk or an I/O error
        removes what was written and raises StoreWriteError: the old generation stays.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        old = self.meta() or {}
        new_meta = {k: old.get(k) for k in KINDS}
        needed = self._size(old, files) or MB
        written: list[Path] = []
        try:
            for kind, source in files.items():
                if source is None:
                    new_meta[kind] = None
                    continue
                name = f"{kind}-{meta['seq']}.parquet"
                tmp = temp_name(self.dir / name)
                try:
                    _write_parquet(source, tmp, con)
                except Exception as exc:  # noqa: BLE001 - DuckDB and pyarrow raise their own; re-raised
                    tmp.unlink(missing_ok=True)
                    raise write_error(exc, self.dir / name, needed, OUTCOME) from None
                written.append(self.dir / name)
                commit_temp(tmp, self.dir / name, mode=FILE_MODE, sync_dir=False, needed=needed)
                new_meta[kind] = name
            new_meta.update(meta, format=FORMAT)
            atomic_write(self.dir / "meta.json", orjson.dumps(new_meta, option=orjson.OPT_INDENT_2))
        except BaseException as exc:
            for path in written:  # never named by a meta.json: nobody reads them
                if path.name not in _names(old):
                    path.unlink(missing_ok=True)
            if isinstance(exc, StoreWriteError) and not exc.args[0].endswith(OUTCOME):
                raise exc.with_outcome(OUTCOME) from None
            raise
        self._prune(keep={*_names(new_meta), *_names(old)})
        return new_meta

    def prune_except(self, meta: dict) -> None:
        """Remove every older generation now (an erasure: no copy of the old rows may stay),
        except files a reader still leases (it removes them when it is done, or the next writer)."""
        self._prune(keep=set(_names(meta)))

    def _size(self, old: dict, files: dict) -> int:
        """Bytes the files being replaced take now: about what their new versions need."""
        total = 0
        for kind in files:
            path = self.path(old, kind) if old else None
            try:
                total += path.stat().st_size if path else 0
            except OSError:
                continue
        return total

    def _prune(self, keep: set[str]) -> None:
        """Remove files of older generations that no reader holds a lease on."""
        for p in self.dir.iterdir():  # only our own generations; other stages keep files here too
            if p.suffix != ".parquet" or not p.name.startswith(KINDS) or p.name in keep:
                continue
            held = _LEASES.pop(str(p), None)
            if held is not None:  # this process's own readers: as before leases, they re-read
                held[0].close()
            try:
                fh = open(p, "rb")
            except FileNotFoundError:
                continue
            with fh:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a reader still reads this generation: a later writer removes it
                p.unlink(missing_ok=True)


# Leases this process holds: path -> (open file, (device, inode)), oldest first. Closed when
# pruned by this process itself, at exit, or when more than MAX_LEASES are held (a process
# that reads many stores or generations, e.g. a test suite): files gone first, then the oldest.
_LEASES: dict[str, tuple] = {}
MAX_LEASES = 64


def _bound_leases() -> None:
    if len(_LEASES) <= MAX_LEASES:
        return
    for key, (fh, _ident) in list(_LEASES.items()):
        if os.fstat(fh.fileno()).st_nlink == 0:
            _LEASES.pop(key)
            fh.close()
    while len(_LEASES) > MAX_LEASES:
        _LEASES.pop(next(iter(_LEASES)))[0].close()


def release_leases(under: str | os.PathLike | None = None) -> int:
    """Give up this process's leases (all, or those of files under `under`); returns how many.

    For a long-running process done with the readers it made (a test harness, a server):
    the files of old generations can then be pruned by the next writer.
    """
    prefix = str(Path(under).resolve()) + os.sep if under is not None else ""
    gone = [key for key in _LEASES if key.startswith(prefix) or str(Path(key).resolve()).startswith(prefix)]
    for key in gone:
        _LEASES.pop(key)[0].close()
    return len(gone)


def _check_meta(meta) -> None:
    if not isinstance(meta, dict) or not isinstance(meta["seq"], int) or not isinstance(meta["offset"], int) \
            or not isinstance(meta["segment"], str):
        raise ValueError("not a snapshot meta")
    for kind in KINDS:
        if meta.get(kind) is not None and not isinstance(meta[kind], str):
            raise ValueError(f"{kind} is not a file name")


def parquet_problem(path: Path) -> str | None:
    """What is wrong with a Parquet file, checked cheaply (None: it looks whole)."""
    try:
        with open(path, "rb") as fh:
            return _parquet_problem(fh, os.fstat(fh.fileno()).st_size)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return _why(exc)


def _parquet_problem(fh, size: int) -> str | None:
    """Parquet starts and ends with `PAR1`, the footer's length before the last one."""
    if size < 12:
        return "truncated" if size else "empty"
    head = os.pread(fh.fileno(), 4, 0)
    tail = os.pread(fh.fileno(), 8, size - 8)
    if head != b"PAR1":
        return "not a Parquet file"
    if tail[4:] != b"PAR1" or int.from_bytes(tail[:4], "little") > size - 12:
        return "truncated"
    return None


KINDS = ("tickets", "tickets_delta", "contacts", "contacts_delta")


def _names(meta: dict | None) -> list[str]:
    return [meta[k] for k in KINDS if meta and meta.get(k)]


# zstd at level 1, not the default 3: a third less CPU to write (a bulk update's 100k-row delta:
# 0.18 -> 0.12 s), files about 9% larger, read as fast.
ZSTD_LEVEL = 1


def _write_parquet(source, path: Path, con) -> None:
    if isinstance(source, str):
        con.execute(f"COPY ({source}) TO '{_sql_path(path)}' "
                    f"(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {ZSTD_LEVEL}, ROW_GROUP_SIZE {ROW_GROUP})")
    else:
        import pyarrow.parquet as pq

        pq.write_table(source, path, compression="zstd", compression_level=ZSTD_LEVEL, row_group_size=ROW_GROUP)


def _sql_path(path: Path) -> str:
    # Paths are ours (the store directory), never customer input; quote defensively anyway.
    return str(path).replace("'", "''")
