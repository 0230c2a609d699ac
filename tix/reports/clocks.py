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
  WHERE h.ticket IN (SELECT ticket FROM rel) AND (h.kind IN ('created', 'updated') OR (h.kind = 'in' AND NOT h.auto))
  UNION ALL
  SELECT r.ticket, r.seq, epoch_us(r.ts) / 1e6, r.status, r.status, 'A', false, r.reply_no, NULL
  FROM replies r
  WHERE r.ticket IN (SELECT ticket FROM rel) AND NOT r.auto AND NOT r.failed
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
    count(*) FILTER (WHERE k = 'A') OVER w AS sent
  FROM x
  WINDOW w AS (PARTITION BY ticket ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
         wp AS (PARTITION BY ticket ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
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
         max(t) FILTER (WHERE resolves) AS last_resolved
  FROM _sla_ev GROUP BY ticket
), fr AS (
  SELECT ticket, min(t) FILTER (WHERE k = 'A') AS met FROM _sla_ev GROUP BY ticket
), nr AS (
  SELECT ticket, t AS start,
         row_number() OVER (PARTITION BY ticket ORDER BY seq) AS cycle,
         (SELECT min(a.t) FROM _sla_ev a WHERE a.ticket = c.ticket AND a.k = 'A' AND a.seq > c.seq) AS met
  FROM _sla_ev c WHERE cycle_start
), res AS (
  SELECT ticket, coalesce(episode, 0) AS cycle, t AS at, sent > 0 AS answered FROM _sla_ev WHERE resolves
), res_open AS (  -- the running resolution clock of a ticket open now
  SELECT tk.ticket, coalesce((SELECT max(episode) FROM _sla_ev e WHERE e.ticket = tk.ticket), 0) AS cycle
  FROM tk WHERE tk.status NOT IN ('resolved', 'closed')
)
SELECT tk.ticket, 'first_response' AS target, 0 AS cycle, tk.created AS start, fr.met, tk.status,
       CASE WHEN tk.status IN ('resolved', 'closed') THEN tk.last_resolved END AS stop
FROM tk JOIN fr USING (ticket) WHERE tk.created IS NOT NULL
UNION ALL
SELECT nr.ticket, 'next_response', nr.cycle, nr.start, nr.met, tk.status,
       CASE WHEN tk.status IN ('resolved', 'closed') THEN tk.last_resolved END
FROM nr JOIN tk USING (ticket)
UNION ALL
SELECT res.ticket, 'resolution', res.cycle, tk.created, CASE WHEN res.answered THEN res.at END, tk.status,
       CASE WHEN NOT res.answered THEN res.at END
FROM res JOIN tk USING (ticket) WHERE tk.created IS NOT NULL
UNION ALL
SELECT ro.ticket, 'resolution', ro.cycle, tk.created, NULL, tk.status, NULL
FROM res_open ro JOIN tk USING (ticket) WHERE tk.created IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM res WHERE res.ticket = ro.ticket AND res.cycle = ro.cycle)
"""


def register(con, store, now: float, since) -> None:
    """Compute the clocks of the tickets a report over a period starting at `since` (naive
    UTC) can show, as of `now` (epoch seconds), and make them the view `sla` on `con`."""
    from tix.sla.clock import used_and_due
    from tix.sla.escalate import load_settings
    from tix.sla.policy import policy_case_sql

    settings = load_settings(store)
    policies = settings.sla.policies
    con.execute("CREATE OR REPLACE TEMP TABLE _sla_rel AS "
                "SELECT number AS ticket FROM tickets WHERE status IN ('new', 'open', 'pending') "
                "UNION SELECT DISTINCT ticket FROM history WHERE ts >= $since", {"since": since})
    con.execute(_EVENTS_SQL)
    stored = _stored_policies(con)
    case, params = policy_case_sql(policies)
    matched = dict(con.execute(
        f"SELECT t.number, {case} FROM tickets t LEFT JOIN contacts c ON c.id = t.contact "
        f"WHERE t.number IN (SELECT ticket FROM _sla_rel)", params).fetchall())
    names = [p.name for p in policies]
    clocks = con.execute(_CLOCKS_SQL + " ORDER BY 1, 2, 3").fetchnumpy()
    pauses = con.execute(_PAUSES_SQL + " ORDER BY 1, 2").fetchnumpy()
    n = len(clocks["ticket"])
    ticket = clocks["ticket"].astype(np.int64)
    pol = np.array([names.index(stored[t]) if stored.get(t) in names else matched.get(t, -1)
                    for t in ticket.tolist()], np.int64)
    target = clocks["target"].astype(object)
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
    p_s, p_e = _f(pauses["ps"]), _f(pauses["pe"])
    p_e = np.where(np.isnan(p_e), now, p_e)  # a pause still going on lasts until now
    cal_of = {p.calendar for p in policies}
    for cal_name in cal_of:
        cal = settings.calendars[cal_name]
        rows = np.nonzero(keep & np.isin(pol, [i for i, p in enumerate(policies) if p.calendar == cal_name]))[0]
        if not len(rows):
            continue
        # each clock gets its ticket's pauses
        lo = np.searchsorted(p_ticket, ticket[rows], side="left")
        hi = np.searchsorted(p_ticket, ticket[rows], side="right")
        counts = hi - lo
        owner = np.repeat(np.arange(len(rows)), counts)
        idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)]) if counts.sum() \
            else np.zeros(0, np.int64)
        u, d = used_and_due(cal, start[rows], end[rows], goal[rows], owner, p_s[idx], p_e[idx])
        used[rows], due[rows] = u, d
    is_met = ~np.isnan(met)
    eps = 1e-6
    breached = keep & (used >= goal - eps) & (~is_met | (used > goal + eps))
    stopped = ~is_met & ~np.isnan(stop)
    warn = np.array([p.warn_at for p in policies] + [np.nan])[pol]
    paused_now = _paused_now(ticket, p_ticket, pauses["pe"])
    state = np.select([is_met, breached, stopped, paused_now, used >= warn * goal],
                      ["met", "breached", "stopped", "paused", "warning"], "ok").astype(object)
    table = _arrow({
        "ticket": ticket[keep],
        "policy": [names[i] for i in pol[keep].tolist()],
        "target": target[keep].tolist(),
        "cycle": clocks["cycle"].astype(np.int64)[keep],
        "started_at": start[keep], "due_at": due[keep], "met_at": met[keep],
        "stopped_at": np.where(stopped, stop, np.nan)[keep],
        "state": state[keep].tolist(), "breached": breached[keep],
        "business_seconds_used": used[keep],
        "business_seconds_to_meet": np.where(is_met, used, np.nan)[keep],
        "calendar_seconds_to_meet": (met - start)[keep],
        "status": clocks["status"].astype(object)[keep].tolist(),
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


def _naive(epoch: float):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc).replace(tzinfo=None)


def _f(values) -> np.ndarray:
    """A fetchnumpy column (maybe masked) as float64 with NaN for NULL."""
    if isinstance(values, np.ma.MaskedArray):
        return values.astype(np.float64).filled(np.nan)
    return np.asarray(values, dtype=np.float64)


def _paused_now(ticket: np.ndarray, p_ticket: np.ndarray, p_end) -> np.ndarray:
    """Tickets whose last pause has no end (paused now)."""
    open_end = np.isnan(_f(p_end))
    paused = set(p_ticket[open_end].tolist())
    return np.array([t in paused for t in ticket.tolist()], bool) if len(ticket) else np.zeros(0, bool)


def _stored_policies(con) -> dict:
    """The policy `tix escalate` gave each ticket (kept once a ticket is closed), from the
    store's `sla` view; a ticket it has not seen yet is matched now."""
    try:
        return dict(con.execute("SELECT ticket, any_value(policy) FROM sla WHERE ticket IN "
                                "(SELECT ticket FROM _sla_rel) GROUP BY ticket").fetchall())
    except Exception:  # noqa: BLE001 - no such view (a store without tix.sla): match every ticket
        return {}


def _arrow(cols: dict):
    import pyarrow as pa

    out = {}
    for name, values in cols.items():
        if name in ("ticket", "cycle"):
            out[name] = pa.array(np.asarray(values), pa.int64())
        elif name == "breached":
            out[name] = pa.array(np.asarray(values, bool), pa.bool_())
        elif name in ("policy", "target", "state", "status"):
            out[name] = pa.array(list(values), pa.string())
        else:
            arr = np.asarray(values, np.float64)
            out[name] = pa.array(arr, pa.float64(), mask=np.isnan(arr))
    return pa.table(out)
