"""The cold start of the SLA state in SQL: every ticket's track folded from the whole log at once.

`tix escalate` normally folds only the log tail since its previous run (tix.sla.state). The
first run on a store, `--rebuild`, or a log rewritten by an erasure has to fold everything;
doing that event by event in Python costs about a minute for 10M events, so this module says
the same thing as `tix.sla.clock.fold_event` with DuckDB window functions over the JSONL log
(multi-threaded, no Python per event). `tests/test_sla_coldfold.py` checks, with hypothesis,
that both give the same tracks for any sequence of events.

Per ticket, in log order: `st` is the status after each event; `cw` (customer wrote while
pending) is set by a customer message on a pending ticket and cleared by an agent reply or a
status change into or out of pending; the clock is paused when `st` is resolved/closed, or
pending without `cw`. Pause intervals are the runs of paused events. A next-response cycle
starts at a customer message whose previous message (customer or agent) was an agent reply.
"""
from __future__ import annotations

from tix.store.log import Position, seq_before

# Stage 1, one scan of the JSON: per event that can matter, its ticket, time, the status it
# sets and its kind (C created, S status, R customer, A agent, K key), kind NULL for one
# that only counts for `gen` (a change that is not a status, an automatic message).
_RAW = r"""
SELECT seq, ticket, epoch_us(ts) / 1e6 AS t, new_st,
       CASE WHEN type LIKE 'sla.%' THEN json_extract_string(data, '$.key') END AS key,
       CASE WHEN type = 'ticket.created' THEN 'C'
            WHEN type = 'ticket.updated' THEN CASE WHEN new_st IS NOT NULL THEN 'S' END
            WHEN type LIKE 'message.%' THEN CASE WHEN NOT coalesce(TRY_CAST(json_extract_string(data, '$.auto')
                                                                   AS BOOLEAN), false)
                                                 THEN CASE type WHEN 'message.received' THEN 'R' ELSE 'A' END END
            ELSE 'K' END AS k
FROM (
  SELECT seq, ticket, type, ts, data,
         CASE type WHEN 'ticket.created' THEN coalesce(json_extract_string(data, '$.status'), 'new')
                   WHEN 'ticket.updated' THEN json_extract_string(data, '$.set.status') END AS new_st
  FROM read_json($files, format = 'newline_delimited', ignore_errors = true,
                 columns = {'seq': 'BIGINT', 'ts': 'TIMESTAMP', 'type': 'VARCHAR', 'ticket': 'BIGINT', 'data': 'JSON'})
  WHERE ticket IS NOT NULL AND seq <= $upto
    AND type IN ('ticket.created', 'ticket.updated', 'message.received', 'message.sent', 'sla.step', 'sla.breached')
)
"""

# Stage 2, per range of ticket numbers (a ticket's events are all in one range): the tracks.
_SQL = r"""
WITH raw AS (SELECT * FROM _sla_raw WHERE ticket BETWEEN $lo AND $hi),
ev AS (SELECT seq, ticket, t, new_st, key, k FROM raw WHERE k IS NOT NULL),
s1 AS (
  SELECT *,
    coalesce(last_value(new_st IGNORE NULLS) OVER w, 'new') AS st,
    coalesce(last_value(new_st IGNORE NULLS) OVER wp, 'new') AS prev_st,
    last_value(CASE WHEN k IN ('R', 'A') THEN k END IGNORE NULLS) OVER wp AS prev_msg,
    count(*) FILTER (WHERE k = 'C') OVER w AS created_seen,
    count(*) OVER wp AS n_before
  FROM ev
  WINDOW w AS (PARTITION BY ticket ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
         wp AS (PARTITION BY ticket ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
s2 AS (  -- cw after this event and after the one before (one window pass gives both)
  SELECT *,
    coalesce(last_value(cwx IGNORE NULLS) OVER w, false) AS cw,
    coalesce(last_value(cwx IGNORE NULLS) OVER wp, false) AS prev_cw,
    k = 'R' AND prev_msg = 'A' AS cycle_start
  FROM (SELECT *, CASE
      WHEN k = 'R' AND st = 'pending' THEN true
      WHEN k = 'A' THEN false
      WHEN k IN ('S', 'C') AND st <> prev_st AND (st = 'pending' OR prev_st = 'pending') THEN false
    END AS cwx FROM s1)
  WINDOW w AS (PARTITION BY ticket ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
         wp AS (PARTITION BY ticket ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
s4 AS (  -- paused after this event and after the one before (the previous row's st and cw)
  SELECT *, st IN ('resolved', 'closed') OR (st = 'pending' AND NOT cw) AS paused,
         n_before > 0 AND (prev_st IN ('resolved', 'closed') OR (prev_st = 'pending' AND NOT prev_cw)) AS was_paused,
         CASE WHEN n_before > 0 THEN prev_st END AS lag_st
  FROM s2
),
edges AS (  -- pause starts and ends; an end closes the latest start
  SELECT ticket, seq, t, paused AND NOT was_paused AS p_start, was_paused AND NOT paused AS p_end,
         sum(CASE WHEN paused AND NOT was_paused THEN 1 ELSE 0 END) OVER (PARTITION BY ticket ORDER BY seq) AS pause_no
  FROM s4
  WHERE k <> 'K' AND paused <> was_paused
),
pauses AS (
  SELECT ticket, pause_no, max(CASE WHEN p_start THEN t END) AS ps, max(CASE WHEN p_end THEN t END) AS pe
  FROM edges GROUP BY ticket, pause_no
),
pause_lists AS (
  SELECT ticket,
         flatten(list([ps, pe] ORDER BY pause_no) FILTER (WHERE pe IS NOT NULL AND pe > ps)) AS pauses,
         max(CASE WHEN pe IS NULL THEN ps END) AS paused_since
  FROM pauses GROUP BY ticket
),
cycles AS (
  SELECT ticket, count(*) AS nr_cycle, max(t) AS nr_start, max(seq) AS start_seq
  FROM s4 WHERE cycle_start GROUP BY ticket
),
resolved AS (  -- the latest move into resolved/closed (from an open status, or created so)
  SELECT ticket, max(t) AS resolved
  FROM s4 WHERE k IN ('C', 'S') AND st IN ('resolved', 'closed')
               AND (lag_st IS NULL OR lag_st NOT IN ('resolved', 'closed') OR k = 'C')
  GROUP BY ticket
),
next_reply AS (
  SELECT c.ticket, min(e.t) AS nr_met
  FROM cycles c JOIN ev e ON e.ticket = c.ticket AND e.k = 'A' AND e.seq > c.start_seq
  GROUP BY c.ticket
),
gens AS (SELECT ticket, max(seq) AS gen FROM raw GROUP BY ticket),
per_ticket AS (
  SELECT ticket,
         coalesce(max(t) FILTER (WHERE k = 'C'), min(t)) AS created_fallback,
         arg_max(t, seq) FILTER (WHERE k = 'C') AS created_last,
         arg_max(st, seq) AS status,
         arg_max(cw, seq) FILTER (WHERE k <> 'K') AS customer_wrote,
         coalesce(arg_max(k = 'R', seq) FILTER (WHERE k IN ('R', 'A')), false) AS awaiting,
         min(t) FILTER (WHERE k = 'A') AS fr_met,
         max(t) FILTER (WHERE k = 'R') AS last_customer,
         list(DISTINCT key) FILTER (WHERE k = 'K' AND key IS NOT NULL) AS keys
  FROM s4 GROUP BY ticket
)
SELECT p.ticket,
       coalesce(p.created_last, p.created_fallback) AS created,
       p.status,
       coalesce(p.customer_wrote, false) AS customer_wrote,
       p.awaiting,
       pl.paused_since,
       coalesce(pl.pauses, []::DOUBLE[]) AS pauses,
       p.fr_met,
       coalesce(c.nr_cycle, 0) AS nr_cycle,
       c.nr_start,
       nx.nr_met,
       CASE WHEN p.status IN ('resolved', 'closed') THEN r.resolved END AS resolved,
       p.last_customer,
       coalesce(p.keys, []::VARCHAR[]) AS keys,
       NULL::VARCHAR AS policy,
       g.gen
FROM per_ticket p
JOIN gens g USING (ticket)
LEFT JOIN next_reply nx USING (ticket)
LEFT JOIN pause_lists pl USING (ticket)
LEFT JOIN cycles c USING (ticket)
LEFT JOIN resolved r USING (ticket)
ORDER BY p.ticket
"""


def fold_log(store, chunk_events: int | None = None) -> tuple[object, Position, int]:
    """(tracks as an Arrow table, log position folded up to, seq there) for the whole log.

    The JSON is read once into a narrow temp table; the window functions then run on one
    range of ticket numbers at a time (about `chunk_events`, by default CHUNK_EVENTS, events
    each), so that DuckDB sorts in memory within FOLD_MEMORY instead of spilling the whole
    log's windows to disk.
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
    con.execute(f"CREATE TEMP TABLE _sla_raw AS {_RAW}", {"files": files, "upto": upto})
    n, lo, hi = con.execute("SELECT count(*), min(ticket), max(ticket) FROM _sla_raw").fetchall()[0]
    if not n:
        return track_schema().empty_table(), end, upto
    chunks = -(-n // (chunk_events or CHUNK_EVENTS))
    step = -(-(hi - lo + 1) // chunks)
    tables = [con.sql(_SQL, params={"lo": a, "hi": a + step - 1}).to_arrow_table().cast(track_schema())
              for a in range(lo, hi + 1, step)]
    con.close()
    return pa.concat_tables(tables), end, upto


# DuckDB's memory for the cold fold (it spills to state/duckdb-tmp beyond it), and the events
# folded per range of tickets: 10M events take ~10 ranges, each sorted in memory.
FOLD_MEMORY = "400MB"
CHUNK_EVENTS = 1_000_000


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
