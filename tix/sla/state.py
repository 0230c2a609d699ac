"""Persisted SLA state: clock tracks and `sla` view rows as Parquet, advanced incrementally.

Files under `snapshot/sla/` (written by `tix escalate` under the store lock; a cache, rebuilt from
the log when missing, stale or after the log was rewritten; a directory of their own, because
the ticket snapshot prunes every other `*.parquet` directly under `snapshot/`)::

    sla-meta.json            {"format": 1, "seq": N, "segment": …, "offset": …,
                              "live": "sla-live-N.parquet", "done": ["sla-done-M.parquet", …]}
    sla-live-N.parquet       one row per open ticket: its track (tix.sla.clock.Track) and, per
                             target (fr_, nr_, res_), started/due/met/state/breached/bsec/csec
    sla-done-M.parquet       the same for tickets that left the open statuses in run M

A ticket lives in exactly one current row: the one with the highest `gen` (seq of the last
event folded into it) across the listed files; a reopened ticket's older done row loses.
When there are more than `MAX_DONE_PARTS` done parts, the small ones are merged (and, once
they add up to a quarter of the biggest, everything), so a cron run rarely rewrites much.
"""
from __future__ import annotations

from dataclasses import fields as dc_fields
from pathlib import Path

import orjson

from tix.sla.clock import DONE, TRACK_TYPES, Track, fold_event
from tix.sla.coldfold import fold_log, track_schema
from tix.errors import StoreWriteError
from tix.store.files import FILE_MODE, atomic_write, commit_temp, temp_name, write_error
from tix.store.log import Position, seq_before

FORMAT = 1
MAX_DONE_PARTS = 12
ROW_GROUP = 65536  # rows per Parquet row group of a part: a ticket's row is found by reading one
PREFIX = {"first_response": "v_fr", "next_response": "v_nr", "resolution": "v_res"}
TRACK_FIELDS = [f.name for f in dc_fields(Track)]


def schema():
    """The stored rows: a track (tix.sla.coldfold.track_schema) and each target's columns."""
    import pyarrow as pa

    f64 = pa.float64()
    cols = list(track_schema())
    for p in PREFIX.values():  # times as epoch seconds; the view turns them into TIMESTAMPs
        cols += [(f"{p}_cycle", pa.int64()), (f"{p}_started", f64), (f"{p}_due", f64), (f"{p}_met", f64),
                 (f"{p}_state", pa.string()), (f"{p}_breached", pa.bool_()), (f"{p}_bsec", f64), (f"{p}_csec", f64)]
    return pa.schema(cols)


def tracks_to_arrow(tracks) -> "object":
    """Track objects -> an Arrow table with the track columns."""
    import pyarrow as pa

    tracks = list(tracks)
    return pa.Table.from_pydict({name: [getattr(tr, name) for tr in tracks] for name in TRACK_FIELDS},
                                schema=track_schema())


def arrow_to_tracks(table) -> list[Track]:
    out = []
    for row in table.select(TRACK_FIELDS).to_pylist():
        row["pauses"] = row["pauses"] or []
        row["keys"] = row["keys"] or []
        out.append(Track(**row))
    return out


class SlaState:
    """The tracks of one run: untouched open tickets stay columnar (`table`), tickets named by
    new events become Track objects (`tracks`) while the tail is folded into them."""

    def __init__(self, store):
        self.store = store
        self.dir = store.path("snapshot", "sla")
        self.meta: dict | None = None
        self.table = None  # Arrow: tracks of open tickets not touched by the tail
        self.tracks: dict[int, Track] = {}  # tickets touched by the tail (all tickets when cold)
        self.touched: set[int] = set()
        self.pos: Position | None = None
        self.seq = 0
        self.cold = False
        self.parts: list[str] = []  # done parts written in this run before `save` (write_part)

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, store, rebuild: bool = False) -> "SlaState":
        st = cls(store)
        try:
            st.meta = None if rebuild else orjson.loads((st.dir / "sla-meta.json").read_bytes())
        except (FileNotFoundError, ValueError):
            st.meta = None
        if st.meta and st.meta.get("format") == FORMAT and st._position_ok():
            import pyarrow.parquet as pq

            st.pos, st.seq = Position(st.meta["segment"], st.meta["offset"]), st.meta["seq"]
            st.table = pq.read_table(st.dir / st.meta["live"], columns=TRACK_FIELDS)
            st.fold_tail()
        else:
            st.meta, st.cold = None, True
            st.table, st.pos, st.seq = fold_log(store)  # the same as fold_all(), in SQL
            st.touched = set(st.table["ticket"].to_pylist())
        return st

    def _position_ok(self) -> bool:
        m = self.meta
        if not m.get("segment"):
            return True
        path = self.store.log.dir / m["segment"]
        if not path.exists() or path.stat().st_size < m["offset"]:
            return False
        if not (self.dir / m["live"]).exists() or any(not (self.dir / d).exists() for d in m.get("done", [])):
            return False
        return seq_before(path, m["offset"]) == m["seq"]  # the log was not rewritten under us

    def _read_tracks(self, name: str | None, numbers: set[int] | None = None) -> list[Track]:
        """The tracks of a part (of `numbers` only): only the row groups whose ticket range
        holds one of them are read. Parts are sorted by ticket in groups of ROW_GROUP rows,
        so a run that touches a few tickets (new ones are in no part) reads a few groups of
        the big part a cold start wrote, not all of its rows (issue 16)."""
        if not name:
            return []
        import numpy as np
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(self.dir / name)
        if numbers is None:
            return arrow_to_tracks(pf.read(columns=TRACK_FIELDS))
        want = np.array(sorted(numbers), np.int64)
        col = pf.schema_arrow.get_field_index("ticket")
        groups = []
        for i in range(pf.metadata.num_row_groups):
            stats = pf.metadata.row_group(i).column(col).statistics
            if stats is None or not stats.has_min_max or ((want >= stats.min) & (want <= stats.max)).any():
                groups.append(i)
        if not groups:
            return []
        return arrow_to_tracks(_only(pf.read_row_groups(groups, columns=TRACK_FIELDS), numbers))

    def _take_out(self, numbers: set[int]) -> None:
        """Make Track objects of these tickets: from the live table, else from the done parts."""
        if not numbers:
            return
        import pyarrow.compute as pc

        hit = _only(self.table, numbers)
        for tr in arrow_to_tracks(hit):
            self.tracks[tr.ticket] = tr
        if hit.num_rows:
            self.table = self.table.filter(pc.invert(_mask(self.table, numbers)))
        missing = {n for n in numbers if n not in self.tracks}
        for name in (self.meta or {}).get("done", []) if missing else ():
            for tr in self._read_tracks(name, missing):
                old = self.tracks.get(tr.ticket)
                if old is None or old.gen < tr.gen:
                    self.tracks[tr.ticket] = tr

    # -- folding --------------------------------------------------------------------------------
    def fold_tail(self) -> None:
        """Fold events written since the saved position (a run every few minutes: a few hundred)."""
        loads = orjson.loads
        events = []
        for raw, seg, off in self.store.log.read_raw(self.pos):
            events.append(loads(raw))
            self.pos = Position(seg, off)
        if not events:
            return
        self.seq = events[-1]["seq"]
        numbers = {ev["ticket"] for ev in events if "ticket" in ev and ev["type"] in TRACK_TYPES}
        self._take_out(numbers)
        for ev in events:
            if fold_event(self.tracks, ev) is not None:
                self.touched.add(ev["ticket"])

    def fold_all(self) -> None:
        """Fold the whole log event by event (the reference for tix.sla.coldfold, which is used)."""
        loads = orjson.loads
        tracks = self.tracks
        pos = Position("", 0)
        last = None
        for raw, seg, off in self.store.log.read_raw():
            pos = Position(seg, off)
            last = raw
            if (b'"type":"ticket.c' in raw or b'"type":"message.' in raw or b'"type":"sla.' in raw
                    or b'"type":"ticket.updated"' in raw):
                fold_event(tracks, loads(raw))
        self.pos = pos
        self.seq = loads(last)["seq"] if last is not None else 0
        self.touched = set(tracks)

    def split_closed(self):
        """Cold start: take the tracks of the tickets already resolved or closed out of `table`
        and return them (the run acts on none of them: their rows are written apart)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        done = pc.is_in(self.table["status"], value_set=pa.array(list(DONE)))
        closed = self.table.filter(done)
        self.table = self.table.filter(pc.invert(done))
        self.touched = set(self.table["ticket"].to_pylist())
        return closed

    def write_part(self, chunks) -> None:
        """Write tables of rows (`schema()`) as one done part, a chunk at a time, so that they
        are never all in memory at once; `save` lists it in the meta (until then no reader
        sees it, and a later save prunes it if this run dies first)."""
        import pyarrow.parquet as pq

        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"sla-done-{self.seq}-closed.parquet"
        path = self.dir / name
        tmp = temp_name(path)
        writer, nbytes = None, 0
        try:
            for chunk in chunks:  # computing a chunk raises as itself; writing it, as a full disk would
                try:
                    writer = writer or pq.ParquetWriter(tmp, chunk.schema, compression="zstd",
                                                        use_dictionary=dictionary_columns(chunk.schema))
                    writer.write_table(chunk, row_group_size=ROW_GROUP)
                except Exception as exc:  # noqa: BLE001 - pyarrow's own errors; a full disk becomes one line
                    raise write_error(exc, path, nbytes + chunk.nbytes, SAVE_FAILED) from None
                nbytes += chunk.nbytes
            if writer is None:
                return
            try:
                writer.close()
            except Exception as exc:  # noqa: BLE001 - as above
                raise write_error(exc, path, nbytes, SAVE_FAILED) from None
            writer = None
            commit_temp(tmp, path, mode=FILE_MODE, sync_dir=False, needed=nbytes)  # sla-meta.json syncs the dir
            self.parts.append(name)
        finally:
            if writer is not None:
                writer.close()
            tmp.unlink(missing_ok=True)

    def all_tracks(self):
        """Every track of this run as one Arrow table sorted by ticket."""
        import pyarrow as pa

        table = pa.concat_tables([self.table, tracks_to_arrow(self.tracks.values())])
        return table.sort_by("ticket")

    def fold_written(self, table, events: list[dict]):
        """Fold the events this run wrote itself into `table`; move the position past them.

        A run writes `sla.*` events and changes of priority, team, assignee and tags, never of
        status: of a track, only `keys` (tix.sla.clock.fold_event appends each new key) and `gen`
        (the seq of its last event of TRACK_TYPES) change. Both are set for the named rows in
        place (a take-based scatter), not by decoding every row of the table into Python.
        """
        import numpy as np
        import pyarrow as pa

        self.pos = self.store.log.end()
        if not events:
            return table
        self.seq = events[-1]["seq"]
        gens: dict[int, int] = {}
        new_keys: dict[int, list] = {}
        for ev in events:
            number = ev.get("ticket")
            if number is None or ev.get("type") not in TRACK_TYPES:
                continue
            gens[number] = ev.get("seq", gens.get(number, 0))
            if ev["type"] in ("sla.step", "sla.breached"):
                key = (ev.get("data") or {}).get("key")
                if key:
                    new_keys.setdefault(number, []).append(key)
        numbers = table["ticket"].to_numpy()
        want = np.array(sorted(gens), np.int64)
        at = np.searchsorted(numbers, want)
        ok = at < len(numbers)
        ok[ok] = numbers[at[ok]] == want[ok]
        rows, named = at[ok], want[ok].tolist()
        if not len(rows):
            return table
        gen = table["gen"].to_numpy().copy()
        gen[rows] = [gens[n] for n in named]
        merged = []
        for number, keys in zip(named, table["keys"].take(pa.array(rows)).to_pylist(), strict=True):
            keys = list(keys or [])
            for key in new_keys.get(number, ()):
                if key not in keys:
                    keys.append(key)
            merged.append(keys)
        index = np.arange(table.num_rows)
        index[rows] = table.num_rows + np.arange(len(rows))
        kfield = table.schema.field("keys")
        keys_col = pa.concat_arrays([table["keys"].combine_chunks(), pa.array(merged, kfield.type)])
        table = table.set_column(table.schema.get_field_index("keys"), kfield, keys_col.take(pa.array(index)))
        gfield = table.schema.field("gen")
        return table.set_column(table.schema.get_field_index("gen"), gfield, pa.array(gen, gfield.type))

    # -- saving -----------------------------------------------------------------------------------
    def save(self, table, done, write_done) -> dict:
        """Write the live part (open tickets) and a done part (tickets that left the open
        statuses in this run), then the meta (atomically). Masks are numpy bool arrays."""
        import pyarrow as pa

        self.dir.mkdir(parents=True, exist_ok=True)
        live = table.filter(pa.array(~done))
        done = table.filter(pa.array(write_done))
        old_meta = self.meta or {}
        seq = self.seq
        live_name = f"sla-live-{seq}.parquet"
        old_files = {old_meta.get("live"), *old_meta.get("done", [])}
        try:
            _write(self.dir / live_name, live)
            done_parts = list(old_meta.get("done", [])) + self.parts
            if done.num_rows:
                name = f"sla-done-{seq}.parquet"
                if name in done_parts:
                    name = f"sla-done-{seq}-{len(done_parts)}.parquet"
                _write(self.dir / name, done)
                done_parts.append(name)
            if len(done_parts) > MAX_DONE_PARTS:
                done_parts = self._compact_parts(done_parts, seq, set(live["ticket"].to_pylist()))
            meta = {"format": FORMAT, "seq": seq, "segment": self.pos.segment if self.pos else "",
                    "offset": self.pos.offset if self.pos else 0, "live": live_name, "done": done_parts}
            atomic_write(self.dir / "sla-meta.json", orjson.dumps(meta, option=orjson.OPT_INDENT_2))
        except StoreWriteError as exc:  # a full disk: what this save wrote is named by no meta
            self._prune(keep=old_files)
            raise exc.with_outcome(SAVE_FAILED) from None
        self._prune(keep={live_name, *done_parts, old_meta.get("live"), *old_meta.get("done", [])})
        self.meta = meta
        self.parts = []  # listed in the meta now
        return meta

    def _compact_parts(self, parts: list[str], seq: int, live: set[int]) -> list[str]:
        """Merge the small parts into one and keep the big base part, until the small ones
        add up to a quarter of the base: then merge everything (dropping superseded rows)."""
        sizes = {p: (self.dir / p).stat().st_size for p in parts}
        base = max(parts, key=lambda p: sizes[p])
        small = [p for p in parts if p != base]
        if sum(sizes[p] for p in small) * 4 > sizes[base]:
            return [self._compact(parts, seq, live)]
        return [base, self._compact(small, seq, live)]

    def _compact(self, parts: list[str], seq: int, live: set[int]) -> str:
        import duckdb

        name = f"sla-done-{seq}-c.parquet"
        files = [str(self.dir / p) for p in parts]
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE TEMP TABLE _live AS SELECT unnest(?::BIGINT[]) AS ticket", [sorted(live)])
        tmp = temp_name(self.dir / name)
        con.execute(f"COPY (SELECT * FROM read_parquet(?) WHERE ticket NOT IN (SELECT ticket FROM _live) "
                    f"QUALIFY row_number() OVER (PARTITION BY ticket ORDER BY gen DESC) = 1 ORDER BY ticket) "
                    f"TO '{_sql_path(tmp)}' (FORMAT parquet, COMPRESSION zstd)", [files])
        commit_temp(tmp, self.dir / name, mode=FILE_MODE, sync_dir=False)  # sla-meta.json's write syncs the dir
        return name

    def _prune(self, keep: set) -> None:
        for p in self.dir.glob("sla-*.parquet"):
            if p.name not in keep:
                p.unlink(missing_ok=True)


def dictionary_columns(schema) -> list[str]:
    """The columns worth a Parquet dictionary: the strings (statuses, policies, states). The
    rest (times, seconds, lists) are nearly all distinct: trying a dictionary on each and
    giving it up doubled the time to write the 900k closed tickets' rows of the 1M store
    (1.34 -> 0.70 s CPU), and the file is smaller without (146 -> 112 MB)."""
    import pyarrow as pa

    return [f.name for f in schema if pa.types.is_string(f.type)]


def _mask(table, numbers):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.is_in(table["ticket"], value_set=pa.array(sorted(numbers), pa.int64()))


def _only(table, numbers):
    return table.filter(_mask(table, numbers))


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _write(path: Path, table) -> None:
    import pyarrow.parquet as pq

    tmp = temp_name(path)
    try:
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP)
    except Exception as exc:  # noqa: BLE001 - pyarrow's own errors; a full disk becomes one line
        tmp.unlink(missing_ok=True)
        raise write_error(exc, path, table.nbytes, SAVE_FAILED) from None
    commit_temp(tmp, path, mode=FILE_MODE, sync_dir=False, needed=table.nbytes)  # sla-meta.json syncs the dir


SAVE_FAILED = ("the events are saved; the SLA state (a cache of the log) stays as it was and the next "
               "run catches up")
