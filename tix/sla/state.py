"""Persisted SLA state: clock tracks and `sla` view rows as Parquet, advanced incrementally.

Files under `snapshot/sla/` (written by `tix escalate` under the store lock; a cache, rebuilt from
the log when missing, stale or after the log was rewritten; a directory of their own, because
the ticket snapshot prunes every other `*.parquet` directly under `snapshot/`)::

    sla-meta.json            {"format": 2, "seq": N, "segment": …, "offset": …, "rev": R,
                              "live": "sla-live-N.parquet", "delta": "sla-delta-R.parquet" | null,
                              "done": ["sla-done-M.parquet", …], "fingerprint": …, "now": T,
                              "base": {"open": …, "clocks": …, "states": {…}}, "start": T0}
    sla-live-N.parquet       one row per open ticket: its track (tix.sla.clock.Track), per target
                             (fr_, nr_, res_) started/due/met/state/breached/bsec/csec, and
                             `next_change`, `computed`, `rev` (below); in groups of LIVE_GROUP rows
    sla-delta-R.parquet      the rows written since the live part was (open or not), one per ticket
    sla-done-M.parquet       the rows of tickets that left the open statuses in run M

A ticket lives in exactly one current row: the one with the highest (`gen`, `rev`) across the
listed files; `gen` is the seq of the last event folded into its track, `rev` the number of the
run that wrote the row (a row computed again because time passed keeps its `gen`), so a
reopened ticket's older done row loses, and so does a live row that the delta part rewrote.

The due-time index (issue 16, target 6: a cron run must not grow with the store). A row's
clocks change without an event only at a few known times: a running clock's warning and
breach, a WhatsApp window's warning. `next_change` is the earliest of them (epoch seconds;
null: nothing changes until an event comes), `computed` the time the row was computed at.
A run recomputes only the tickets named by new events (and those of contacts whose fields
changed, when a policy reads contact fields) and the rows whose `next_change` has come; it
reads the live part's `ticket` and `next_change` columns and only the row groups that hold
such rows, and writes them to the delta part; every other row stays as it is. When the delta
part grows past 1/DELTA_SHARE of the live part, both are merged into a new live part. The
run's counts of the rows it did not compute come from `base` (the live part's rows that the
delta does not replace) and the delta part. Everything a row depends on besides events and
time (the `sla:` and `calendars:` sections, the WhatsApp window, act_within, FORMAT, the
holidays package) is hashed into `fingerprint` (tix.sla.escalate.fingerprint); when it differs,
or the clock went back before the last run's `now`, every open ticket is computed again.

`start` is when SLA escalation began watching the store (README "SLA clocks and escalation": a
step due before it is never taken). Its source is the log (`watch_start`: the `sla.started`
event the first run writes); the meta keeps it so that a cron run does not search the log.

When there are more than `MAX_DONE_PARTS` done parts, the small ones are merged (and, once
they add up to a quarter of the biggest, everything), so a cron run rarely rewrites much.
"""
from __future__ import annotations

from dataclasses import fields as dc_fields
from pathlib import Path

import orjson

from tix.sla.clock import DONE, TRACK_TYPES, Track, fold_event
from tix.sla.coldfold import WATCH_TYPES, fold_log, track_schema
from tix.errors import StoreWriteError
from tix.store.files import FILE_MODE, atomic_write, commit_temp, temp_name, write_error
from tix.store.log import Position, seq_before

FORMAT = 2
MAX_DONE_PARTS = 12
ROW_GROUP = 65536  # rows per Parquet row group of a part: a ticket's row is found by reading one
LIVE_GROUP = 1024  # rows per row group of the live part: a cron run reads the groups of the rows it recomputes
DELTA_SHARE = 8  # the delta part is merged into the live part when it holds more than 1/8 of its rows
DELTA_MIN = 4096  # (and more than this many rows)
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
    cols += [("next_change", f64), ("computed", f64), ("rev", pa.int64())]  # the due-time index (module doc)
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
    new events become Track objects (`tracks`) while the tail is folded into them.

    `full`: every open ticket is computed (a cold start, a changed fingerprint); otherwise
    (`incremental`) `table` and `tracks` hold only the tickets this run computes again (the
    module doc's due-time index) and `rest` counts the rows it leaves as they are."""

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
        self.full = True  # every open ticket is in `table`/`tracks` (see the class doc)
        self.parts: list[str] = []  # done parts written in this run before `save` (write_part)
        self.contacts: set[int] = set()  # contacts named by new events (incremental runs)
        self.rev = 0  # the run number the rows this run writes carry (meta "rev" + 1)
        self.delta = None  # Arrow, every column: the delta part's rows (incremental runs)
        self.base_tickets = self.base_next = self.base_gone = None  # the live part's index (numpy)
        self.base_rows = None  # Arrow: the live part's rows this run computes again (not in the delta)
        self.base_counts: dict = _no_counts()  # counts of the live part's rows not in the delta
        self.fingerprint: str | None = None  # of the settings the rows were computed with (saved in the meta)
        self.now: float | None = None  # the time this run computes at
        self.start: float | None = None  # when SLA began watching the store (`watch_start`); None: never
        self._start_search = None  # a cold start's search of the log for `start` (`watched_since`)

    # -- loading ------------------------------------------------------------------------------
    @staticmethod
    def saved(store) -> bool:
        """Has a run saved a state here (whatever its format or position)?"""
        return store.path("snapshot", "sla", "sla-meta.json").exists()

    @classmethod
    def load(cls, store, rebuild: bool = False, fingerprint: str | None = None,
             now: float | None = None) -> "SlaState":
        """The saved state with the log tail folded in; a cold start when there is none.

        With `fingerprint` (of the settings) and `now` equal to the saved ones' (and `now` not
        before the last run's), only the tickets named by the tail and the rows due by `now`
        are loaded (incremental); else every open ticket (full)."""
        st = cls(store)
        st.fingerprint, st.now = fingerprint, now
        try:
            st.meta = None if rebuild else orjson.loads((st.dir / "sla-meta.json").read_bytes())
        except (FileNotFoundError, ValueError):
            st.meta = None
        if st.meta and st.meta.get("format") == FORMAT and st._position_ok():
            m = st.meta
            st.pos, st.seq, st.rev = Position(m["segment"], m["offset"]), m["seq"], m.get("rev", 0) + 1
            st.full = (fingerprint is None or now is None or m.get("fingerprint") != fingerprint
                       or now < m.get("now", now))
            st._read_live(full=st.full)
            st.fold_tail(now)
            # None: not watched yet (the log up to `pos` holds no start; only a run writes one)
            st.start = m["start"] if "start" in m else watch_start(store, st.pos)  # else: saved before it was kept
        else:
            st.meta, st.cold = None, True
            st.rev = 1
            seen: dict = {}
            st.table, st.pos, st.seq = fold_log(store, seen=seen)  # the same as fold_all(), in SQL
            st.touched = set(st.table["ticket"].to_pylist())
            if "watch" in seen:  # the fold read every sla.* event of the log: no search of its own
                st.start = next((t for t in map(start_of, seen["watch"]) if t is not None), None)
            else:
                st._start_search = _Beside(watch_start, store, st.pos)  # read with `watched_since`
        return st

    def watched_since(self) -> float | None:
        """`start` (see the module doc): on a cold start, the log's search for it runs in a
        thread beside what the run computes after the fold (`_Beside`); this waits for it."""
        if self._start_search is not None:
            self.start, self._start_search = self._start_search.result(), None
        return self.start

    def _position_ok(self) -> bool:
        m = self.meta
        if not m.get("segment"):
            return True
        path = self.store.log.dir / m["segment"]
        if not path.exists() or path.stat().st_size < m["offset"]:
            return False
        names = [m["live"], *([m["delta"]] if m.get("delta") else []), *m.get("done", [])]
        if any(not (self.dir / n).exists() for n in names):
            return False
        return seq_before(path, m["offset"]) == m["seq"]  # the log was not rewritten under us

    def _read_live(self, full: bool) -> None:
        """The delta part (whole), and of the live part: every row (`full`), else its index
        (`ticket`, `next_change`: which rows are due, which the delta replaces)."""
        import numpy as np
        import pyarrow.parquet as pq

        m = self.meta
        # ParquetFile, not read_table: that one imports pyarrow.dataset (0.07 s of a cron run)
        self.delta = pq.ParquetFile(self.dir / m["delta"]).read() if m.get("delta") else schema().empty_table()
        gone = self.delta["ticket"].to_numpy()
        self.base_counts = dict(m.get("base") or _no_counts())
        if full:
            import pyarrow as pa
            import pyarrow.compute as pc

            base = pq.ParquetFile(self.dir / m["live"]).read(columns=TRACK_FIELDS)
            base = base.filter(pc.invert(pc.is_in(base["ticket"], value_set=pa.array(gone, pa.int64()))))
            fresh = self.delta.filter(pc.invert(_done_mask(self.delta))).select(TRACK_FIELDS)
            self.table = pa.concat_tables([base, fresh]).sort_by("ticket")
            return
        index = pq.ParquetFile(self.dir / m["live"]).read(columns=["ticket", "next_change"])
        self.base_tickets = index["ticket"].to_numpy()
        self.base_next = _f64(index, "next_change", np.inf)
        self.base_gone = _member(self.base_tickets, gone)
        self.base_rows = None
        self.table = track_schema().empty_table()

    def _due(self, now: float) -> set[int]:
        """Open tickets whose saved row changes by `now` without an event."""
        import pyarrow.compute as pc

        due = set(self.base_tickets[(self.base_next <= now) & ~self.base_gone].tolist())
        d = self.delta
        if d.num_rows:
            hit = pc.and_(pc.less_equal(pc.fill_null(d["next_change"], float("inf")), now), pc.invert(_done_mask(d)))
            due.update(d.filter(hit)["ticket"].to_pylist())
        return due

    def _live_rows(self, numbers: set[int], keep_done: set[int]):
        """Incremental: the tracks of `numbers` from the delta part, else from the live part (only
        the row groups that hold them); rows of tickets no longer open only if in `keep_done`."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        parts = []
        if self.delta.num_rows:
            parts.append(_only(self.delta, numbers).select(TRACK_FIELDS))
        in_delta = set(parts[0]["ticket"].to_pylist()) if parts else set()
        rest = np.array(sorted(numbers - in_delta), np.int64)
        rows = np.nonzero(_member(self.base_tickets, rest) & ~self.base_gone)[0] if len(rest) else rest
        if len(rows):
            pf = pq.ParquetFile(self.dir / self.meta["live"])
            ends = np.cumsum([pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)])
            groups = sorted(set(np.searchsorted(ends, rows, side="right").tolist()))
            cols = TRACK_FIELDS + [f"{p}_state" for p in PREFIX.values()]  # the track, and what `rest` counts
            want = set(self.base_tickets[rows].tolist())  # a group at a time: never all those groups in memory
            got = pa.concat_tables([_only(pf.read_row_group(g, columns=cols), want) for g in groups])
            self.base_rows = got if self.base_rows is None else pa.concat_tables([self.base_rows, got])
            parts.append(got.select(TRACK_FIELDS))
        if not parts:
            return track_schema().empty_table()
        table = pa.concat_tables(parts)
        return table.filter(pc.or_(pc.invert(_done_mask(table)), _mask(table, keep_done or {-1})))

    def rest(self, numbers) -> tuple[dict, float]:
        """(counts, earliest next_change) of the saved open rows that are not `numbers` (the rows
        a run leaves as they are); nothing when the run computes every open ticket."""
        import numpy as np
        import pyarrow.compute as pc

        if self.full:
            return _no_counts(), np.inf
        numbers = np.asarray(numbers, np.int64)
        counts = _add_counts(dict(self.base_counts), _counts(self.base_rows), -1)
        d = self.delta
        d = d.filter(pc.invert(pc.or_(_done_mask(d), pc.is_in(d["ticket"], value_set=_int_array(numbers)))))
        counts = _add_counts(counts, _counts(d))
        left = ~self.base_gone & ~_member(self.base_tickets, numbers)
        nxt = self.base_next[left]
        best = float(nxt.min()) if len(nxt) else np.inf
        if d.num_rows:
            best = min(best, float(_f64(d, "next_change", np.inf).min()))
        return counts, best

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
    def fold_tail(self, now: float | None = None) -> None:
        """Fold events written since the saved position (a run every few minutes: a few hundred).

        Incremental: first load the rows this run computes again: the tickets named by any new
        event (a tag or a field can change the policy), with their tracks, and the rows due by
        `now`; note the contacts named (their tickets' policy may read contact fields)."""
        loads = orjson.loads
        events = []
        for raw, seg, off in self.store.log.read_raw(self.pos):
            events.append(loads(raw))
            self.pos = Position(seg, off)
        if events:
            self.seq = events[-1]["seq"]
        numbers = {ev["ticket"] for ev in events if "ticket" in ev and ev["type"] in TRACK_TYPES}
        if not self.full:
            named = {ev["ticket"] for ev in events if ev.get("ticket") is not None}
            self.contacts = {ev["contact"] for ev in events
                             if ev.get("contact") is not None and ev["type"].startswith("contact.")}
            self.table = self._live_rows(named | numbers | self._due(now), keep_done=numbers)
        self._take_out(numbers)
        for ev in events:
            if fold_event(self.tracks, ev) is not None:
                self.touched.add(ev["ticket"])

    def add(self, numbers: set[int]) -> None:
        """Incremental: compute these open tickets again too (e.g. of a contact whose fields changed)."""
        have = set(self.table["ticket"].to_pylist()) | set(self.tracks)
        more = set(numbers) - have
        if more and not self.full:
            import pyarrow as pa

            self.table = pa.concat_tables([self.table, self._live_rows(more, keep_done=set())])

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
        sees it, and a later save prunes it if this run dies first). Each chunk is written in
        a thread while the caller computes the next (Parquet's encoding and compression let go
        of the GIL: 1.6 s of CPU for the 900k closed tickets of the 1M store's first run)."""
        from concurrent.futures import ThreadPoolExecutor

        import pyarrow.parquet as pq

        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"sla-done-{self.seq}-closed.parquet"
        path = self.dir / name
        tmp = temp_name(path)
        writer, nbytes = None, 0

        def put(chunk) -> None:
            nonlocal writer, nbytes
            try:
                writer = writer or pq.ParquetWriter(tmp, chunk.schema, compression="zstd",
                                                    use_dictionary=dictionary_columns(chunk.schema))
                writer.write_table(chunk, row_group_size=ROW_GROUP)
            except Exception as exc:  # noqa: BLE001 - pyarrow's own errors; a full disk becomes one line
                raise write_error(exc, path, nbytes + chunk.nbytes, SAVE_FAILED) from None
            nbytes += chunk.nbytes

        try:
            with ThreadPoolExecutor(1, thread_name_prefix="tix-sla-part") as pool:  # left: the writes ended
                writing = None
                for chunk in chunks:  # computing a chunk raises as itself; writing it, as a full disk would
                    chunk = _stamp(chunk, self.rev)
                    if writing is not None:
                        writing.result()
                    writing = pool.submit(put, chunk)
                    chunk = None
                if writing is not None:
                    writing.result()
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
        table = table.set_column(table.schema.get_field_index("gen"), gfield, pa.array(gen, gfield.type))
        # their clocks and policy are computed again by the next round (or, should the run stop
        # first, by the next run: due at once)
        nxt = _f64(table, "next_change", np.inf).copy()
        nxt[rows] = -np.inf
        i = table.schema.get_field_index("next_change")
        return table.set_column(i, table.schema.field(i), pa.array(nxt, pa.float64()))

    # -- saving -----------------------------------------------------------------------------------
    def save(self, table, done, write_done) -> dict:
        """Write this run's rows, then the meta (atomically). Masks are numpy bool arrays.

        `table` holds the rows this run computed (every open ticket's, when `full`): those of
        tickets that left the open statuses in this run (`write_done`) go to a done part as
        well. Full: the open rows become the new live part. Incremental: the rows go to the
        delta part (replacing the old delta's rows of the same tickets); when the delta part
        outgrows its share, live and delta parts are merged into a new live part."""
        import pyarrow as pa

        self.dir.mkdir(parents=True, exist_ok=True)
        table = _stamp(table, self.rev)
        done_rows = table.filter(pa.array(write_done))
        old_meta = self.meta or {}
        seq = self.seq
        old_files = {old_meta.get("live"), old_meta.get("delta"), *old_meta.get("done", [])}
        live_name, delta_name = old_meta.get("live"), None
        counts = delta = None
        try:
            if not self.full:
                delta = pa.concat_tables([self.delta.filter(_not_in(self.delta, table["ticket"])), table])
                delta = delta.sort_by("ticket")
                gone = self.base_gone | _member(self.base_tickets, table["ticket"].to_numpy())
                if delta.num_rows > max(DELTA_MIN, int((~gone).sum()) // DELTA_SHARE):
                    live = self._merged(delta, gone)
                else:
                    live = None
                    delta_name = f"sla-delta-{self.rev}.parquet"
                    _write(self.dir / delta_name, delta)
            else:
                live = table.filter(pa.array(~done)).sort_by("ticket")
            if live is not None:
                live_name = f"sla-live-{seq}-{self.rev}.parquet"
                _write(self.dir / live_name, live, LIVE_GROUP)
                counts = _counts(live)
            done_parts = list(old_meta.get("done", [])) + self.parts
            if done_rows.num_rows:
                name = f"sla-done-{seq}.parquet"
                if name in done_parts:
                    name = f"sla-done-{seq}-{self.rev}.parquet"
                _write(self.dir / name, done_rows)
                done_parts.append(name)
            if len(done_parts) > MAX_DONE_PARTS:
                done_parts = self._compact_parts(done_parts, seq, set(live["ticket"].to_pylist())
                                                 if live is not None else self._open_tickets(delta, gone))
            if counts is None:
                counts = _add_counts(dict(self.base_counts), _counts(self.base_rows), -1)
            meta = {"format": FORMAT, "seq": seq, "segment": self.pos.segment if self.pos else "",
                    "offset": self.pos.offset if self.pos else 0, "rev": self.rev, "live": live_name,
                    "delta": delta_name, "done": done_parts, "fingerprint": self.fingerprint, "now": self.now,
                    "base": counts, "start": self.start}
            atomic_write(self.dir / "sla-meta.json", orjson.dumps(meta, option=orjson.OPT_INDENT_2))
        except StoreWriteError as exc:  # a full disk: what this save wrote is named by no meta
            self._prune(keep=old_files)
            raise exc.with_outcome(SAVE_FAILED) from None
        self._prune(keep={live_name, delta_name, *done_parts, *old_files})
        self.meta = meta
        self.parts = []  # listed in the meta now
        self._saved(table, live, delta if live is None else None, counts)
        return meta

    def _merged(self, delta, gone):
        """The new live part: the live part's rows the delta does not replace, and the delta's open rows."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        base = pq.ParquetFile(self.dir / self.meta["live"]).read().filter(pa.array(~gone))
        return pa.concat_tables([base, delta.filter(pc.invert(_done_mask(delta)))]).sort_by("ticket")

    def _open_tickets(self, delta, gone) -> set[int]:
        import pyarrow.compute as pc

        return set(self.base_tickets[~gone].tolist()) | set(delta.filter(pc.invert(_done_mask(delta)))["ticket"]
                                                              .to_pylist())

    def _saved(self, table, live, delta, counts) -> None:
        """The in-memory state as the files now are, for the next round of the same run."""
        import numpy as np
        import pyarrow.compute as pc

        self.rev += 1
        self.base_counts = counts
        if live is not None:  # a new live part: this run's open rows are in it
            self.delta = schema().empty_table()
            self.base_tickets = live["ticket"].to_numpy()
            self.base_next = _f64(live, "next_change", np.inf)
            self.base_gone = np.zeros(len(self.base_tickets), bool)
            self.base_rows = live.filter(pc.is_in(live["ticket"], value_set=table["ticket"]))
        else:
            self.delta = delta
            self.base_gone = self.base_gone | _member(self.base_tickets, table["ticket"].to_numpy())
            self.base_rows = None

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
                    f"QUALIFY row_number() OVER (PARTITION BY ticket ORDER BY gen DESC, rev DESC) = 1 ORDER BY ticket) "
                    f"TO '{_sql_path(tmp)}' (FORMAT parquet, COMPRESSION zstd)", [files])
        commit_temp(tmp, self.dir / name, mode=FILE_MODE, sync_dir=False)  # sla-meta.json's write syncs the dir
        return name

    def _prune(self, keep: set) -> None:
        for p in self.dir.glob("sla-*.parquet"):
            if p.name not in keep:
                p.unlink(missing_ok=True)


# What `watch_start` looks for: the lines of these event types (orjson writes `"type":"…"` with
# no space; a quote inside a string is escaped, so these bytes are only ever a key and its value).
WATCH_MARK = b'"type":"sla.'


def start_of(ev) -> float | None:
    """The watch start an event marks (epoch seconds): an `sla.started` event's `data.start`,
    an `sla.step`'s or `sla.breached`'s time; None for another event or a damaged one."""
    from tix.store.log import epoch

    if not isinstance(ev, dict) or ev.get("type") not in WATCH_TYPES:
        return None
    when = (ev.get("data") or {}).get("start") if ev["type"] == "sla.started" else ev.get("ts")
    try:
        return epoch(str(when))
    except (TypeError, ValueError):
        return None  # a damaged start: the next one, or a step's time


def watch_start(store, upto: Position | None = None, block: int = 8 << 20) -> float | None:
    """When SLA escalation began watching the store (epoch seconds), read from the log: the first
    `sla.started` event's `data.start`; for a store SLA ran on before that event existed, the
    time of its first `sla.step` or `sla.breached` event (whichever comes first in the log).
    None: SLA never ran on it. One forward search of the log's bytes (`EventLog.blocks`) that
    decodes only the lines holding `"type":"sla.` and stops at the first such event."""
    log = store.log
    upto = upto or log.end()
    if not upto.segment:
        return None
    segment, tail = None, b""
    for name, _at, chunk in log.blocks(None, upto, block):
        if name != segment:
            segment, tail = name, b""
        first = chunk.find(b"\n") + 1
        if not first:  # no line ends in this block
            tail += chunk
            continue
        last = chunk.rfind(b"\n") + 1
        head = tail + chunk[:first]  # the line the block before began (small: no copy of the block)
        found = _watch_event(head, 0, len(head))
        if found is None:  # searched in place, whole lines only
            found = _watch_event(chunk, first, last)
        if found is not None:
            return found
        tail = chunk[last:]
    return None


def _watch_event(data: bytes, lo: int, hi: int) -> float | None:
    """`watch_start` of the first event it wants among the whole lines of data[lo:hi]."""
    from tix.store.log import unmark

    at = data.find(WATCH_MARK, lo, hi)
    while at >= 0:
        start = data.rfind(b"\n", lo, at) + 1 or lo
        end = data.find(b"\n", at, hi)
        try:
            ev = orjson.loads(unmark(data[start:end]))
        except ValueError:
            ev = None
        found = start_of(ev)
        if found is not None:
            return found
        at = data.find(WATCH_MARK, end, hi)
    return None


class _Beside:
    """fn(*args) run in a thread; `result()` waits for it and returns (or raises) what it did.

    The cold start's search of the log for the watch start (`watch_start`, bytes.find: it
    holds the GIL) runs while the run computes the closed tickets' rows and the open tickets'
    clocks (numpy and pyarrow: they let go of it), on the core those leave free; beside the
    cold fold it would fight the fold's own search of the log for the GIL instead."""

    def __init__(self, fn, *args):
        import threading

        self._out: tuple | None = None

        def run():
            try:
                self._out = (fn(*args), None)
            except BaseException as exc:  # noqa: BLE001 - raised again by result()
                self._out = (None, exc)

        self._thread = threading.Thread(target=run, name="tix-watch-start", daemon=True)
        self._thread.start()

    def result(self):
        self._thread.join()
        value, exc = self._out
        if exc is not None:
            raise exc
        return value


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


def _member(sorted_tickets, values):
    """Mask over `sorted_tickets` (ascending, unique: the live part's): which are among `values`.
    A binary search per value, not a sort of the live part's tickets (np.isin) per call."""
    import numpy as np

    values = np.asarray(values, np.int64)
    out = np.zeros(len(sorted_tickets), bool)
    if not len(values) or not len(sorted_tickets):
        return out
    at = np.minimum(np.searchsorted(sorted_tickets, values), len(sorted_tickets) - 1)
    out[at[sorted_tickets[at] == values]] = True
    return out


def _int_array(values):
    import pyarrow as pa

    return pa.array(values, pa.int64())


def _not_in(table, tickets):
    """Mask: rows of `table` whose ticket is not in `tickets` (an Arrow array)."""
    import pyarrow.compute as pc

    return pc.invert(pc.is_in(table["ticket"], value_set=tickets))


def _done_mask(table):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.fill_null(pc.is_in(table["status"], value_set=pa.array(list(DONE))), False)


def _f64(table, name: str, null: float):
    import pyarrow.compute as pc

    return pc.fill_null(table[name], null).to_numpy().astype("float64", copy=False)


def _stamp(table, rev: int):
    """The rows with `rev` set: written by run `rev`."""
    import pyarrow as pa

    i = table.schema.get_field_index("rev")
    return table.set_column(i, table.schema.field(i), pa.array([rev] * table.num_rows, pa.int64()))


def _no_counts() -> dict:
    return {"open": 0, "clocks": 0, "states": {}}


def _counts(table) -> dict:
    """Of saved rows: how many are open, their clocks, and those clocks by state (as a run's report counts)."""
    import pyarrow.compute as pc

    out = _no_counts()
    if table is None or not table.num_rows:
        return out
    live = table.filter(pc.invert(_done_mask(table)))
    out["open"] = live.num_rows
    for p in PREFIX.values():
        for row in pc.value_counts(live[f"{p}_state"]).to_pylist():
            if row["values"] is not None:
                out["clocks"] += row["counts"]
                out["states"][row["values"]] = out["states"].get(row["values"], 0) + row["counts"]
    return out


def _add_counts(a: dict, b: dict, sign: int = 1) -> dict:
    states = dict(a.get("states", {}))
    for k, v in b["states"].items():
        states[k] = states.get(k, 0) + sign * v
    return {"open": a["open"] + sign * b["open"], "clocks": a["clocks"] + sign * b["clocks"],
            "states": {k: v for k, v in states.items() if v}}


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _write(path: Path, table, row_group: int | None = None) -> None:
    import pyarrow.parquet as pq

    tmp = temp_name(path)
    try:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group or ROW_GROUP)
    except Exception as exc:  # noqa: BLE001 - pyarrow's own errors; a full disk becomes one line
        tmp.unlink(missing_ok=True)
        raise write_error(exc, path, table.nbytes, SAVE_FAILED) from None
    commit_temp(tmp, path, mode=FILE_MODE, sync_dir=False, needed=table.nbytes)  # sla-meta.json syncs the dir


SAVE_FAILED = ("the events are saved; the SLA state (a cache of the log) stays as it was and the next "
               "run catches up")
