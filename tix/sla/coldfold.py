"""The cold start of the SLA state: every ticket's track folded from the whole log at once.

`tix escalate` normally folds only the log tail since its previous run (tix.sla.state). The
first run on a store, `--rebuild`, or a log rewritten by an erasure has to fold everything;
doing that event by event in Python costs about a minute for 10M events, so this module says
the same thing as `tix.sla.clock.fold_event` in two vectorised stages: DuckDB reads the
events that can matter into a narrow table (`_RAW`), then, one range of ticket numbers at a
time, numpy folds them (`fold_sorted`; DuckDB window functions did the same in 20 s of CPU
for 9M events, numpy takes about 3). `tests/test_sla_coldfold.py` checks, with hypothesis,
that this and the event-by-event fold give the same tracks for any sequence of events.

Per ticket, in log order: the status after each event; `cw` (customer wrote while pending)
is set by a customer message on a pending ticket and cleared by an agent reply or a status
change into or out of pending; the clock is paused when the status is resolved/closed, or
pending without `cw`. Pause intervals are the runs of paused events. A next-response cycle
starts at a customer message whose previous message (customer or agent) was an agent reply.
"""
from __future__ import annotations

from tix.store.log import Position, seq_before

# Stage 1, one scan of the JSON: per event that can matter, its ticket, time, the status it
# sets and its kind as a small integer (C created, S status, R customer, A agent, K key, see
# below), GEN_ONLY for one that only counts for `gen` (a change that is not a status, an
# automatic message). The key is NULL but on K rows (DuckDB keeps a mostly-NULL column in
# little memory, and sorts nothing: no copy of the 9M rows without their keys is needed,
# which cost 1.5 s of CPU; a kind as text did not fit FOLD_MEMORY).
# The log is read as tix.store.history reads it (`events_source`): of `data`, only the four
# fields used, each a JSON fragment (a value of an unexpected type cannot make a line
# unreadable), not the whole object kept as JSON and parsed again for each field (a message's
# text and all: about 1 s more CPU of the 1M store's 9).
_DATA = 'STRUCT(status JSON, "set" JSON, auto JSON, key JSON)'
_RAW = r"""
SELECT seq, ticket, epoch_us(ts) / 1e6 AS t, new_st,
       CASE WHEN type LIKE 'sla.%' THEN json_extract_string(data.key, '$') END AS key,
       (CASE WHEN type = 'ticket.created' THEN 0
             WHEN type = 'ticket.updated' THEN CASE WHEN new_st IS NOT NULL THEN 1 ELSE 5 END
             WHEN type LIKE 'message.%' THEN CASE WHEN NOT coalesce(TRY_CAST(json_extract_string(data.auto, '$')
                                                                    AS BOOLEAN), false)
                                                  THEN CASE type WHEN 'message.received' THEN 2 ELSE 3 END
                                                  ELSE 5 END
             ELSE 4 END)::TINYINT AS k
FROM (
  SELECT seq, ticket, type, ts, data,
         CASE type WHEN 'ticket.created' THEN coalesce(json_extract_string(data.status, '$'), 'new')
                   WHEN 'ticket.updated' THEN json_extract_string(data.set, '$.status') END AS new_st
  FROM {source}
  WHERE ticket IS NOT NULL
    AND type IN ('ticket.created', 'ticket.updated', 'message.received', 'message.sent', 'sla.step', 'sla.breached')
)
"""

_NO_KEYROWS = "CREATE TEMP TABLE _sla_keyrows (seq BIGINT, ticket BIGINT, t DOUBLE, key VARCHAR)"

# Stage 2, per range of ticket numbers (a ticket's events are all in one range): the events,
# put in ticket and log order by numpy (`_in_order`; DuckDB's ORDER BY here cost 2.5 s of CPU
# for the 19 ranges of the 1M store, numpy's sorts 0.24), for `fold_sorted`.
_RANGE = r"""
SELECT ticket, seq, t, new_st, key, k FROM _sla_raw WHERE ticket BETWEEN $lo AND $hi
UNION ALL
SELECT ticket, seq, t, NULL, key, 4::TINYINT FROM _sla_keyrows WHERE ticket BETWEEN $lo AND $hi
"""
C, S, R, A, K, GEN_ONLY = range(6)
DONE = ("resolved", "closed")


def fold_log(store, chunk_events: int | None = None, history: bool = True,
             seen: dict | None = None) -> tuple[object, Position, int]:
    """(tracks as an Arrow table, log position folded up to, seq there) for the whole log.

    The events are read once into a narrow temp table: from the ticket history cache
    (tix.store.history, Parquet) when it is there and close to the log's end (`history`), else
    from the JSON log. Then numpy folds one range of ticket numbers at a time (about
    `chunk_events`, by default CHUNK_EVENTS, events each; DuckDB within FOLD_MEMORY).

    `seen`: when the history cache was read, the fold decoded every `sla.*` event of the log;
    `seen["watch"]` is then those of WATCH_TYPES, in log order (tix.sla.state: the watch start,
    without a search of its own).
    """
    import duckdb
    import pyarrow as pa

    end = store.log.end()
    files = [str(store.log.dir / s) for s in store.log.segments()]
    if not files or not end.segment:
        return track_schema().empty_table(), Position("", 0), 0
    upto = seq_before(store.log.dir / end.segment, end.offset) or 0
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET temp_directory = ?", [str(store.path("state", "duckdb-tmp"))])
    con.execute(f"SET memory_limit = '{FOLD_MEMORY}'")
    con.execute("SET preserve_insertion_order = false")
    if not (history and _raw_from_history(store, con, end, upto, seen)):
        from tix.store.history import events_source

        con.execute(f"CREATE TEMP TABLE _sla_raw AS {_RAW.format(source=events_source(files, upto, _DATA))}")
        con.execute(_NO_KEYROWS)
    n, lo, hi = con.execute("SELECT count(*), min(ticket), max(ticket) FROM "
                            "(SELECT ticket FROM _sla_raw UNION ALL SELECT ticket FROM _sla_keyrows)").fetchall()[0]
    if not n:
        return track_schema().empty_table(), end, upto
    chunks = -(-n // (chunk_events or CHUNK_EVENTS))
    step = -(-(hi - lo + 1) // chunks)
    tables = [fold_sorted(events) for events in _ranges(con, lo, hi, step)]
    con.close()
    return pa.concat_tables(tables), end, upto


def _ranges(con, lo: int, hi: int, step: int):
    """The events of each range of ticket numbers (`_RANGE`), sorted, in order. DuckDB reads
    the next range and numpy sorts it (`_in_order`) in a thread while the caller folds this one
    (DuckDB lets go of the GIL while it works, and so do numpy's sorts and passes over big
    arrays): two cores, not one. Only that thread uses `con` until the last range is handed out."""
    from concurrent.futures import ThreadPoolExecutor

    def fetch(a: int):
        return _in_order(con.sql(_RANGE, params={"lo": a, "hi": a + step - 1}).to_arrow_table())

    starts = list(range(lo, hi + 1, step))
    with ThreadPoolExecutor(1, thread_name_prefix="tix-coldfold") as pool:
        ahead = pool.submit(fetch, starts[0])
        for nxt in [*starts[1:], None]:
            events = ahead.result()
            ahead = pool.submit(fetch, nxt) if nxt is not None else None
            yield events
            events = None


def _in_order(events):
    """The rows of an Arrow table of events sorted by ticket, then seq (by numpy, not DuckDB's
    ORDER BY: numpy lets go of the GIL while it sorts, and costs a quarter). DuckDB hands the
    rows out nearly in log order, so when the range spans fewer than 65536 ticket numbers (the
    1M store's ranges span 52k) it is two stable sorts: by seq (a merge sort, quick on nearly
    sorted rows), then by ticket as 16 bits (a radix sort): 0.24 s for the 1M store's 9.4M
    events, lexsort's 0.57."""
    import numpy as np

    if not events.num_rows:
        return events
    ticket, seq = events["ticket"].to_numpy(), events["seq"].to_numpy()
    low = int(ticket.min())
    if int(ticket.max()) - low < 1 << 16:
        by_seq = np.argsort(seq, kind="stable")
        order = by_seq[np.argsort((ticket - low).astype(np.uint16)[by_seq], kind="stable")]
    else:
        order = np.lexsort((seq, ticket))
    return events.take(order)


# The same narrow table from the history cache: its rows are the log's ticket.created,
# ticket.updated (status, team or assignee), message.received and message.sent events, with
# the status after each event; a change of status is one whose status differs from the one
# before (setting the status a ticket already has changes nothing in the fold either).
_RAW_HISTORY = r"""
SELECT seq, ticket, epoch_us(ts) / 1e6 AS t,
       CASE WHEN kind = 'created' OR status IS DISTINCT FROM prev_status THEN status END AS new_st,
       NULL::VARCHAR AS key,
       (CASE kind WHEN 'created' THEN 0
                  WHEN 'updated' THEN CASE WHEN status IS DISTINCT FROM prev_status THEN 1 ELSE 5 END
                  WHEN 'in' THEN CASE WHEN NOT auto THEN 2 ELSE 5 END
                  WHEN 'out' THEN CASE WHEN NOT auto THEN 3 ELSE 5 END END)::TINYINT AS k
FROM read_parquet($parts)
WHERE kind IN ('created', 'updated', 'in', 'out') AND seq <= $upto
UNION ALL
SELECT seq, ticket, epoch_us(ts) / 1e6, new_st, NULL,
       (CASE kind WHEN 'created' THEN 0 WHEN 'updated' THEN CASE WHEN new_st IS NOT NULL THEN 1 ELSE 5 END
                  WHEN 'in' THEN CASE WHEN NOT auto THEN 2 ELSE 5 END
                  WHEN 'out' THEN CASE WHEN NOT auto THEN 3 ELSE 5 END END)::TINYINT
FROM _sla_gap WHERE kind IN ('created', 'updated', 'in', 'out') AND seq <= $upto
"""
_KEYROWS_HISTORY = "SELECT seq, ticket, epoch_us(ts) / 1e6 AS t, key FROM _sla_keys WHERE seq <= $upto"
HISTORY_GAP = 200_000  # more events than this after the history cache: read the JSON log instead


def _raw_from_history(store, con, end: Position, upto: int, seen: dict | None = None) -> bool:
    """Fill `_sla_raw` from the history cache and the `sla.*` events (their lines found by
    searching the log's bytes, only those decoded); False when the cache cannot be used.

    About 2 s instead of 11 for the 1M store: no JSON is parsed but the few lines the cache
    does not have (the events after it, and the SLA keys). `gen` is then the seq of the
    ticket's last event in the cache or with a key, not of a change of priority or tags after
    it: any later event still has a higher seq, which is all `gen` is for (tix.sla.state).
    The search for the `sla.*` lines (about 1.2 s of the 1M store's 2.4 GB) runs in a thread
    while DuckDB reads the cache (it lets go of the GIL; the search holds it for a block at a
    time, a fraction of a millisecond).
    """
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

    from tix.store.history import History

    h = History(store)
    meta = h.meta()
    if meta is None or not meta.get("parts") or upto - int(meta.get("seq") or 0) > HISTORY_GAP:
        return False
    rows, reached, _seq = h.gap(meta, end)
    if reached != end:
        return False
    with ThreadPoolExecutor(1, thread_name_prefix="tix-coldfold") as pool:
        found = pool.submit(_key_events, store)
        _raw_from_parts(con, h.parts(meta), rows, upto)
        keys, watch = found.result()
    if seen is not None:
        seen["watch"] = watch
    con.register("_sla_keys", pa.table({
        "seq": pa.array([r[0] for r in keys], pa.int64()),
        "ts": pa.array([r[1] for r in keys], pa.string()).cast(pa.timestamp("us", tz="UTC")),
        "ticket": pa.array([r[2] for r in keys], pa.int64()),
        "key": pa.array([None if r[3] is None else str(r[3]) for r in keys], pa.string())}))
    con.execute(f"CREATE TEMP TABLE _sla_keyrows AS {_KEYROWS_HISTORY}", {"upto": upto})
    con.unregister("_sla_keys")
    return True


WATCH_TYPES = ("sla.started", "sla.step", "sla.breached")  # what marks the SLA watch's start (tix.sla.state)


def _key_events(store) -> tuple[list[tuple], list[dict]]:
    """(seq, ts, ticket, key) of each `sla.*` event of the log, the last first; and the events
    of WATCH_TYPES, in log order."""
    keys, watch = [], []
    for ev in store.log.read_backward(match=b'"type":"sla.'):
        kind = str(ev.get("type"))
        if kind in WATCH_TYPES:
            watch.append(ev)
        if ev.get("ticket") is not None and kind in ("sla.step", "sla.breached"):
            keys.append((ev.get("seq"), ev.get("ts"), ev.get("ticket"), (ev.get("data") or {}).get("key")))
    watch.reverse()
    return keys, watch


def _raw_from_parts(con, parts: list[str], rows: list[tuple], upto: int) -> None:
    """`_sla_raw` from the history cache's parts and the rows of the events after it."""
    import pyarrow as pa

    # gap rows: (seq, ts, ticket, kind, actor, status set, has_team, team, has_assignee, assignee, auto, outbox)
    con.register("_sla_gap", pa.table({
        "seq": pa.array([r[0] for r in rows], pa.int64()),
        "ts": pa.array([r[1] for r in rows], pa.string()).cast(pa.timestamp("us", tz="UTC")),
        "ticket": pa.array([r[2] for r in rows], pa.int64()), "kind": pa.array([r[3] for r in rows], pa.string()),
        "new_st": pa.array([r[5] for r in rows], pa.string()), "auto": pa.array([r[10] for r in rows], pa.bool_())}))
    con.execute(f"CREATE TEMP TABLE _sla_raw AS {_RAW_HISTORY}", {"parts": parts, "upto": upto})
    con.unregister("_sla_gap")


def fold_sorted(events):
    """The tracks (a `track_schema` table, by ticket) of events sorted by ticket and seq: an
    Arrow table of ticket, seq, t (epoch seconds), new_st (the status the event sets, else
    NULL), key (of an `sla.*` event) and k (C, S, R, A, K or GEN_ONLY, see `_RAW`).

    Each per-ticket running value of tix.sla.clock.fold_event (the status, "the customer wrote
    while pending", the previous message's side) is a forward fill within the ticket's rows:
    the index of the latest row that set it, `np.maximum.accumulate` over row numbers. So the
    whole fold is a few dozen numpy passes, whatever the number of tickets.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not events.num_rows:
        return track_schema().empty_table()
    kind_all = events["k"].to_numpy()
    ticket_all = events["ticket"].to_numpy()
    seq_all = events["seq"].to_numpy()
    last_all = np.append(ticket_all[1:] != ticket_all[:-1], True)
    gen_tickets, gen_seqs = ticket_all[last_all], seq_all[last_all]  # by ticket: the seq of its last event
    rows = np.nonzero(kind_all != GEN_ONLY)[0]  # the rest count only for `gen`
    m = len(rows)
    if not m:
        return track_schema().empty_table()
    tk = ticket_all[rows]
    t = pc.fill_null(events["t"], np.nan).to_numpy().astype(np.float64)[rows]
    k = kind_all[rows]
    enc = pc.dictionary_encode(events["new_st"]).combine_chunks()
    names = [str(v) for v in enc.dictionary.to_pylist()]
    if "new" not in names:
        names.append("new")
    code = pc.fill_null(enc.indices, -1).to_numpy().astype(np.int32)[rows]
    NEW = names.index("new")
    PEND = names.index("pending") if "pending" in names else -2
    is_done = np.array([n in DONE for n in names])  # by status code

    # row numbers as int32 (half the bytes of int64 for each pass over them; a range is far
    # below 2**31 rows)
    idx = np.arange(m, dtype=np.int32 if m < 2**31 else np.int64)
    first = np.append(True, tk[1:] != tk[:-1])
    last = np.append(first[1:], True)
    starts = np.nonzero(first)[0]
    starts = starts.astype(idx.dtype)
    gid = np.cumsum(first, dtype=idx.dtype) - 1
    gs = starts[gid]  # the first row of each row's ticket

    def ffill(valid):
        """Per row, the latest row at or before it in its ticket where `valid`, else -1."""
        j = np.maximum.accumulate(np.where(valid, idx, -1))
        return np.where(j >= gs, j, -1)

    def before(j):
        """The same, for the rows strictly before (a ticket's first row: -1)."""
        out = np.empty_like(j)
        out[0] = -1
        out[1:] = j[:-1]
        out[first] = -1
        return out

    j_st = ffill(code >= 0)
    st = np.where(j_st >= 0, code[j_st], NEW)
    j_prev = before(j_st)
    prev_st = np.where(j_prev >= 0, code[j_prev], NEW)
    j_msg = before(ffill((k == R) | (k == A)))
    prev_agent = (j_msg >= 0) & (k[j_msg] == A)
    n_before = idx - gs
    pend, prev_pend = st == PEND, prev_st == PEND
    cw_true = (k == R) & pend  # "the customer wrote while pending": set, cleared, or left as it was
    cw_false = (k == A) | (((k == S) | (k == C)) & (st != prev_st) & (pend | prev_pend))
    j_cw = ffill(cw_true | cw_false)
    cw = (j_cw >= 0) & cw_true[j_cw]
    j_pcw = before(j_cw)
    prev_cw = (j_pcw >= 0) & cw_true[j_pcw]
    done = is_done[st]
    prev_done = is_done[prev_st]
    paused = done | (pend & ~cw)
    was_paused = (n_before > 0) & (prev_done | (prev_pend & ~prev_cw))
    cycle_start = (k == R) & prev_agent

    # pauses: the edges alternate start, end, start… within a ticket (K rows never change it)
    edge = np.nonzero((k != K) & (paused != was_paused))[0]
    is_start = paused[edge]
    q = np.nonzero(is_start)[0]
    nxt = q + 1
    has_end = nxt < len(edge)
    has_end[has_end] = tk[edge[nxt[has_end]]] == tk[edge[q[has_end]]]
    ps = t[edge[q]]
    pe = np.full(len(q), np.nan)
    pe[has_end] = t[edge[nxt[has_end]]]
    owner = gid[edge[q]]
    n_groups = len(starts)
    closed = has_end & (pe > ps)
    paused_since = np.full(n_groups, np.nan)
    paused_since[owner[~has_end]] = ps[~has_end]
    counts = np.bincount(owner[closed], minlength=n_groups) * 2
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    flat = np.empty(int(offsets[-1]))
    flat[0::2], flat[1::2] = ps[closed], pe[closed]
    pauses = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, pa.float64()))

    def per_ticket(op, values, where, empty=np.nan):
        return op.reduceat(np.where(where, values, empty), starts)

    def latest(valid):  # per ticket, its latest row where `valid`, else -1 (ffill at its last row)
        return np.maximum.reduceat(np.where(valid, idx, -1), starts)

    j_c = latest(k == C)
    created = np.where(j_c >= 0, t[np.maximum(j_c, 0)], np.minimum.reduceat(t, starts))
    status = pa.array(names, pa.string()).take(pa.array(st[last]))
    j_nk = latest(k != K)
    customer_wrote = (j_nk >= 0) & cw[np.maximum(j_nk, 0)]
    j_m = latest((k == R) | (k == A))
    awaiting = (j_m >= 0) & (k[np.maximum(j_m, 0)] == R)
    fr_met = per_ticket(np.minimum, t, k == A, np.inf)
    last_customer = per_ticket(np.maximum, t, k == R, -np.inf)
    nr_cycle = np.add.reduceat(cycle_start.astype(np.int64), starts)
    nr_start = per_ticket(np.maximum, t, cycle_start, -np.inf)
    last_cs = latest(cycle_start)[gid]  # the ticket's latest cycle start, per row
    nr_met = per_ticket(np.minimum, t, (k == A) & (last_cs >= 0) & (idx > last_cs), np.inf)
    resolves = ((k == C) | (k == S)) & done & ((n_before == 0) | ~prev_done | (k == C))
    resolved = per_ticket(np.maximum, t, resolves, -np.inf)
    resolved[~is_done[st[last]]] = np.nan
    keys = _keys_per_ticket(gid, k == K, rows, events["key"], n_groups)
    numbers = tk[first]

    def opt(a):
        a = np.where(np.isinf(a), np.nan, a)
        return pa.array(a, pa.float64(), mask=np.isnan(a))

    return pa.Table.from_arrays([
        pa.array(numbers, pa.int64()), pa.array(created, pa.float64()), status,
        pa.array(customer_wrote), pa.array(awaiting), opt(paused_since), pauses, opt(fr_met),
        pa.array(nr_cycle, pa.int64()), opt(nr_start), opt(nr_met), opt(resolved), opt(last_customer),
        keys, pa.nulls(n_groups, pa.string()),
        pa.array(gen_seqs[np.searchsorted(gen_tickets, numbers)], pa.int64())], schema=track_schema())


def _keys_per_ticket(gid, is_key, rows_in, key_col, n_groups: int):
    """Each ticket's `sla.*` keys, first occurrence first, once each (what fold_event keeps),
    as an Arrow list array (`is_key` by folded row, `rows_in` each folded row's row of
    `key_col`): built from the key rows in a few numpy and Arrow calls, not a Python list per
    ticket (1M empty lists and their conversion were ~1 s of the 1M store)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = np.nonzero(is_key)[0]  # of the folded rows; `rows_in`: their rows in `key_col`
    keys = key_col.take(pa.array(rows_in[rows])).combine_chunks() if len(rows) else pa.array([], pa.string())
    ok = ~pc.is_null(keys).to_numpy(zero_copy_only=False) if len(rows) else np.zeros(0, bool)
    rows, keys = rows[ok], keys.filter(pa.array(ok))
    owner = gid[rows]
    if len(rows):  # a key again on the same ticket: only its first row counts
        code = pc.dictionary_encode(keys).indices.to_numpy().astype(np.int64)
        _, firsts = np.unique(owner * (int(code.max()) + 1) + code, return_index=True)
        firsts.sort()
        owner, keys = owner[firsts], keys.take(pa.array(firsts))
    offsets = np.zeros(n_groups + 1, np.int32)
    np.cumsum(np.bincount(owner, minlength=n_groups), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), keys.cast(pa.string()))


# DuckDB's memory for the cold fold (it spills to state/duckdb-tmp beyond it), and the events
# folded per range of tickets: 10M events take ~20 ranges, each sorted in memory.
FOLD_MEMORY = "400MB"
CHUNK_EVENTS = 500_000


def track_schema():
    """The Arrow schema of a track table: one row per ticket, the fields of tix.sla.clock.Track
    in their order, times as epoch seconds. `fold_log` returns such a table; tix.sla.state
    stores it and adds each target's columns beside it."""
    import pyarrow as pa

    f64 = pa.float64()
    return pa.schema([
        ("ticket", pa.int64()), ("created", f64), ("status", pa.string()), ("customer_wrote", pa.bool_()),
        ("awaiting", pa.bool_()), ("paused_since", f64), ("pauses", pa.list_(f64)), ("fr_met", f64),
        ("nr_cycle", pa.int64()), ("nr_start", f64), ("nr_met", f64), ("resolved", f64),
        ("last_customer", f64), ("keys", pa.list_(pa.string())), ("policy", pa.string()), ("gen", pa.int64())])
