"""SLA clocks for reports, computed from the history when the report runs: every cycle, as of `now`.

The store's `sla` view (tix.sla.views) holds what `tix escalate` last wrote: one row per
ticket and target, the current next-response cycle only, and times frozen at that run. A
report needs more: every next-response cycle and every resolution, each with its outcome,
consistent with the other sections of the same report. So a report computes the clocks of
the tickets it can show (open now, or with any change since the start of its period) from
the `history` view (tix.store.history), with the same rules and the same business
calendars as tix.sla.clock, and puts them behind the name `sla` on its own connection.

Rules (tix.sla.clock's, plus what a report counts):

- first_response: from creation to the first agent reply actually sent (auto-replies and
  replies whose sending was given up are not responses).
- next_response: one clock per cycle: a customer message (not automatic) after an agent
  reply starts one; the next agent reply meets it.
- resolution: one clock per resolution (cycle = the episode: 0, then one more per reopen),
  from creation, met when the ticket is resolved with a reply sent by then; the time while
  resolved or closed is a pause, so a reopened ticket's clock carries on where it stopped.
  Closing a ticket that never had a reply stops the clock without meeting it.
- Clocks pause while the ticket is pending (until the customer writes) and while it is
  resolved or closed. A clock that is neither met nor running stopped when the ticket was
  resolved or closed: `stopped_at`, where its overdue time ends.

Columns of the `sla` view it makes: the store view's (ticket, policy, target, cycle,
started_at, due_at, met_at, state, breached, business_seconds_used,
business_seconds_to_meet, calendar_seconds_to_meet, status) plus `stopped_at` (when an unmet
clock stopped: the ticket was resolved or closed), `team` and `assignee` (the ticket's when the
clock fell due, if it breached, else when it was met or stopped, else now).
"""
from __future__ import annotations

import numpy as np

from tix.model import OPEN_STATUSES

DONE = ("resolved", "closed")
COLUMNS = ("ticket", "policy", "target", "cycle", "started_at", "due_at", "met_at", "stopped_at", "state",
           "breached", "business_seconds_used", "business_seconds_to_meet", "calendar_seconds_to_meet", "status")


def _lit(values) -> str:
    return "(" + ", ".join("'" + v + "'" for v in values) + ")"


# The events that move clocks, for the tickets in `_sla_rel`: C created, S status (or other
# state) change, R customer message, A agent reply actually sent.
_EVENTS_SQL = f"""
CREATE OR REPLACE TEMP TABLE _sla_ev AS
WITH rel AS (SELECT DISTINCT ticket FROM _sla_rel),
x AS (
  SELECT h.ticket, h.seq, epoch_us(h.ts) / 1e6 AS t, h.status AS st, h.prev_status AS prev_st,
         CASE h.kind WHEN 'created' THEN 'C' WHEN 'updated' THEN 'S' ELSE 'R' END AS k,
         h.kind IN ('created', 'updated') AND h.status IN {_lit(DONE)}
           AND (h.prev_status IS NULL OR h.prev_status IN {_lit(OPEN_STATUSES)}) AS resolves,
         h.replies, h.episode
  FROM history h
  WHERE h.ts >= $lo AND h.ticket IN (SELECT ticket FROM rel)
    AND (h.kind IN ('created', 'updated') OR (h.kind = 'in' AND NOT h.auto))
  UNION ALL
  SELECT r.ticket, r.seq, epoch_us(r.ts) / 1e6, r.status, r.status, 'A', false, r.reply_no, NULL
  FROM replies r
  WHERE r.ts >= $lo AND r.ticket IN (SELECT ticket FROM rel) AND NOT r.auto AND NOT r.failed
),
s1 AS (
  SELECT *,
    last_value(CASE WHEN k IN ('R', 'A') THEN k END IGNORE NULLS) OVER wp AS prev_msg,
    coalesce(last_value(CASE
      WHEN k = 'R' AND st = 'pending' THEN true
      WHEN k = 'A' THEN false
      WHEN k IN ('S', 'C') AND st IS DISTINCT FROM coalesce(prev_st, 'new')
           AND (st = 'pending' OR coalesce(prev_st, 'new') = 'pending') THEN false
    END IGNORE NULLS) OVER w, false) AS cw,
    count(*) FILTER (WHERE k = 'A') OVER w AS sent,
    first_value(CASE WHEN k = 'A' THEN t END IGNORE NULLS) OVER wn AS next_reply
  FROM x
  WINDOW w AS (PARTITION BY ticket ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
         wp AS (PARTITION BY ticket ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
         wn AS (PARTITION BY ticket ORDER BY seq ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
)
SELECT *, st IN {_lit(DONE)} OR (st = 'pending' AND NOT cw) AS paused,
       k = 'R' AND prev_msg = 'A' AS cycle_start
FROM s1
"""

_PAUSES_SQL = """
WITH e AS (
  SELECT ticket, seq, t, paused,
         coalesce(lag(paused) OVER (PARTITION BY ticket ORDER BY seq), false) AS was
  FROM _sla_ev
), edges AS (
  SELECT ticket, t, paused AND NOT was AS starts,
         sum(CASE WHEN paused AND NOT was THEN 1 ELSE 0 END) OVER (PARTITION BY ticket ORDER BY seq) AS n
  FROM e WHERE paused <> was
)
SELECT ticket, max(t) FILTER (WHERE starts) AS ps, max(t) FILTER (WHERE NOT starts) AS pe
FROM edges GROUP BY ticket, n
"""

# One row per clock: target, cycle, start, met (NULL: not met), and the ticket's stop (its
# latest resolution when it is resolved or closed now).
_CLOCKS_SQL = """
WITH tk AS (
  SELECT ticket, min(t) FILTER (WHERE k = 'C') AS created, arg_max(st, seq) AS status,
         max(t) FILTER (WHERE resolves) AS last_resolved, min(t) FILTER (WHERE k = 'A') AS fr_met,
         coalesce(max(episode), 0) AS episode
  FROM _sla_ev GROUP BY ticket
), nr AS (
  SELECT ticket, t AS start, row_number() OVER (PARTITION BY ticket ORDER BY seq) AS cycle, next_reply AS met
  FROM _sla_ev WHERE cycle_start
), res AS (
  SELECT ticket, coalesce(episode, 0) AS cycle, t AS at, sent > 0 AS answered FROM _sla_ev WHERE resolves
)
SELECT ticket, 'first_response' AS target, 0 AS cycle, created AS start, fr_met AS met, status,
       CASE WHEN status IN ('resolved', 'closed') THEN last_resolved END AS stop
FROM tk WHERE created IS NOT NULL
UNION ALL
SELECT nr.ticket, 'next_response', nr.cycle, nr.start, nr.met, tk.status,
       CASE WHEN tk.status IN ('resolved', 'closed') THEN tk.last_resolved END
FROM nr JOIN tk USING (ticket)
UNION ALL
SELECT res.ticket, 'resolution', res.cycle, tk.created, CASE WHEN res.answered THEN res.at END, tk.status,
       CASE WHEN NOT res.answered THEN res.at END
FROM res JOIN tk USING (ticket) WHERE tk.created IS NOT NULL
UNION ALL  -- the running resolution clock of a ticket open now (its current episode)
SELECT ticket, 'resolution', episode, created, NULL, status, NULL
FROM tk WHERE created IS NOT NULL AND status NOT IN ('resolved', 'closed')
"""


def register(con, store, now: float, since) -> None:
    """Compute the clocks of the tickets a report over a period starting at `since` (naive
    UTC) can show, as of `now` (epoch seconds), and make them the view `sla` on `con`."""
    from tix.sla.clock import used_and_due
    from tix.sla.escalate import load_settings

    settings = load_settings(store)
    policies = settings.sla.policies
    names = [p.name for p in policies]
    _relevant(con, settings, since)
    # the oldest of them began at `lo`: older rows are not read (a bound value: Parquet skips them)
    lo = con.execute("SELECT coalesce(min(created_at), $now) FROM tickets WHERE number IN "
                     "(SELECT ticket FROM _sla_rel)", {"now": _naive(now)}).fetchall()[0][0]
    con.execute(_EVENTS_SQL, {"lo": lo})
    tickets_rel = con.execute("SELECT ticket FROM _sla_rel ORDER BY ticket").fetchnumpy()["ticket"].astype(np.int64)
    pol_of = _policies(con, policies, names, tickets_rel)
    clocks = con.execute(_CLOCKS_SQL + " ORDER BY 1, 2, 3").fetchnumpy()
    pauses = con.execute(_PAUSES_SQL + " ORDER BY 1, 2").fetchnumpy()
    n = len(clocks["ticket"])
    ticket = clocks["ticket"].astype(np.int64)
    at = np.searchsorted(tickets_rel, ticket)
    pol = pol_of[np.minimum(at, max(len(pol_of) - 1, 0))] if len(pol_of) else np.full(n, -1, np.int64)
    target = np.asarray(clocks["target"], dtype=object)
    goal = np.full(n, np.nan)
    for i, p in enumerate(policies):
        for tgt, secs in p.targets.items():
            goal[(pol == i) & (target == tgt)] = secs
    keep = ~np.isnan(goal)
    start = _f(clocks["start"])
    met = _f(clocks["met"])
    stop = _f(clocks["stop"])
    end = np.where(~np.isnan(met), met, np.where(~np.isnan(stop), stop, now))
    used = np.full(n, np.nan)
    due = np.full(n, np.nan)
    p_ticket = pauses["ticket"].astype(np.int64)
    p_s, p_end = _f(pauses["ps"]), _f(pauses["pe"])
    p_e = np.where(np.isnan(p_end), now, p_end)  # a pause still going on lasts until now
    for cal_name in {p.calendar for p in policies}:
        cal = settings.calendars[cal_name]
        rows = np.nonzero(keep & np.isin(pol, [i for i, p in enumerate(policies) if p.calendar == cal_name]))[0]
        if not len(rows):
            continue
        # each clock gets its ticket's pauses (p_ticket is sorted)
        lo = np.searchsorted(p_ticket, ticket[rows], side="left")
        counts = np.searchsorted(p_ticket, ticket[rows], side="right") - lo
        owner = np.repeat(np.arange(len(rows)), counts)
        idx = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        u, d = used_and_due(cal, start[rows], end[rows], goal[rows], owner, p_s[idx], p_e[idx])
        used[rows], due[rows] = u, d
    is_met = ~np.isnan(met)
    eps = 1e-6
    breached = keep & (used >= goal - eps) & (~is_met | (used > goal + eps))
    stopped = ~is_met & ~np.isnan(stop)
    warn = np.array([p.warn_at for p in policies] + [np.nan])[pol]
    paused_now = np.isin(ticket, p_ticket[np.isnan(p_end)])
    state = np.select([is_met, breached, stopped, paused_now, used >= warn * goal],
                      ["met", "breached", "stopped", "paused", "warning"], "ok").astype(object)
    names_arr = np.array(names + [None], dtype=object)
    table = _arrow({
        "ticket": ticket[keep],
        "policy": names_arr[pol[keep]],
        "target": target[keep],
        "cycle": clocks["cycle"].astype(np.int64)[keep],
        "started_at": start[keep], "due_at": due[keep], "met_at": met[keep],
        "stopped_at": np.where(stopped, stop, np.nan)[keep],
        "state": state[keep], "breached": breached[keep],
        "business_seconds_used": used[keep],
        "business_seconds_to_meet": np.where(is_met, used, np.nan)[keep],
        "calendar_seconds_to_meet": (met - start)[keep],
        "status": np.asarray(clocks["status"], dtype=object)[keep],
    })
    con.register("_sla_report_rows", table)
    times = ("started_at", "due_at", "met_at", "stopped_at")
    cols = ", ".join(f"make_timestamp(CAST(round({c} * 1000000) AS BIGINT)) AS {c}" if c in times else c
                     for c in COLUMNS)
    # who had the ticket when the clock fell due (breached) or was met or stopped
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _sla_report AS
        SELECT r.*, h.team, h.assignee FROM (SELECT {cols} FROM _sla_report_rows) r
        ASOF LEFT JOIN (SELECT ticket, ts, team, assignee FROM history
                        WHERE kind IN ('created', 'updated') AND ticket IN (SELECT ticket FROM _sla_rel)) h
          ON h.ticket = r.ticket
         AND h.ts <= coalesce(CASE WHEN r.breached THEN r.due_at END, r.met_at, r.stopped_at, $now)""",
                {"now": _naive(now)})
    con.unregister("_sla_report_rows")
    con.execute("CREATE OR REPLACE TEMP VIEW sla AS SELECT * FROM _sla_report")
    for name in ("_sla_ev", "_sla_rel"):
        con.execute(f"DROP TABLE IF EXISTS {name}")


def _relevant(con, settings, since) -> None:
    """`_sla_rel`: the tickets that can have a clock counted from `since` on: those with any
    event since then, and the open ones whose clocks may fall due since then.

    An open ticket with no event since `since` has kept its state since its last change L
    (`updated_at`, or later): a clock that was running then, with business time R < target left,
    falls due at Cinv(C(L) + R) <= Cinv(C(L) + the largest target on its calendar); one met or
    breached before L, or paused since, counts before `since`. So a ticket whose bound is
    before `since` cannot show, and the years of stale open tickets are not folded.
    """
    from tix.store.log import epoch

    con.execute("CREATE OR REPLACE TEMP TABLE _sla_rel AS SELECT DISTINCT ticket FROM history WHERE ts >= $since",
                {"since": since})
    stale = con.execute("SELECT number, epoch_us(updated_at) / 1e6 AS l FROM tickets "
                        "WHERE status IN ('new', 'open', 'pending') "
                        "AND number NOT IN (SELECT ticket FROM _sla_rel)").fetchnumpy()
    if not len(stale["number"]):
        return
    last = _f(stale["l"])
    s = epoch(since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")) if hasattr(since, "strftime") else float(since)
    keep = np.zeros(len(last), bool)
    for cal_name in {p.calendar for p in settings.sla.policies}:
        longest = max((max(p.targets.values(), default=0.0) for p in settings.sla.policies
                       if p.calendar == cal_name), default=0.0)
        cal = settings.calendars[cal_name]
        keep |= cal.Cinv(cal.C(last) + longest) >= s
    import pyarrow as pa

    con.register("_sla_more", pa.table({"ticket": pa.array(stale["number"][keep].astype(np.int64), pa.int64())}))
    con.execute("INSERT INTO _sla_rel SELECT ticket FROM _sla_more")
    con.unregister("_sla_more")


def _policies(con, policies, names, tickets) -> np.ndarray:
    """Each ticket's policy index (-1: none): the one `tix escalate` gave it (kept once a ticket
    is closed), else the one it matches now."""
    from tix.sla.policy import policy_case_sql

    case, params = policy_case_sql(policies)
    matched = con.execute(f"SELECT t.number, {case} AS pol FROM tickets t LEFT JOIN contacts c ON c.id = t.contact "
                          f"WHERE t.number IN (SELECT ticket FROM _sla_rel) ORDER BY 1", params).fetchnumpy()
    out = np.full(len(tickets), -1, np.int64)
    num = matched["number"].astype(np.int64)
    if len(num):
        at = np.minimum(np.searchsorted(num, tickets), len(num) - 1)
        hit = num[at] == tickets
        out[hit] = matched["pol"].astype(np.int64)[at[hit]]
    stored = _stored_policies(con)
    if stored is not None and len(stored["ticket"]):
        num = stored["ticket"].astype(np.int64)
        idx = np.array([names.index(n) if n in names else -1 for n in stored["policy"].tolist()], np.int64)
        at = np.minimum(np.searchsorted(tickets, num), max(len(tickets) - 1, 0))
        ok = (tickets[at] == num) & (idx >= 0) if len(tickets) else np.zeros(len(num), bool)
        out[at[ok]] = idx[ok]
    return out


def _naive(epoch: float):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc).replace(tzinfo=None)


def _f(values) -> np.ndarray:
    """A fetchnumpy column (maybe masked) as float64 with NaN for NULL."""
    if isinstance(values, np.ma.MaskedArray):
        return values.astype(np.float64).filled(np.nan)
    return np.asarray(values, dtype=np.float64)


def _stored_policies(con):
    """The policy `tix escalate` gave each ticket, from the store's `sla` view (ticket, policy
    arrays), or None when there is no such view (a store without tix.sla)."""
    import duckdb

    try:
        return con.execute("SELECT ticket, any_value(policy) AS policy FROM sla WHERE ticket IN "
                           "(SELECT ticket FROM _sla_rel) GROUP BY ticket").fetchnumpy()
    except duckdb.CatalogException:
        return None


def _arrow(cols: dict):
    import pyarrow as pa

    out = {}
    for name, values in cols.items():
        if name in ("ticket", "cycle"):
            out[name] = pa.array(np.asarray(values), pa.int64())
        elif name == "breached":
            out[name] = pa.array(np.asarray(values, bool), pa.bool_())
        elif name in ("policy", "target", "state", "status"):
            out[name] = pa.array(np.asarray(values, dtype=object).tolist(), pa.string())
        else:
            arr = np.asarray(values, np.float64)
            out[name] = pa.array(arr, pa.float64(), mask=np.isnan(arr))
    return pa.table(out)
