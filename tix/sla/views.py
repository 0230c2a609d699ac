"""The `sla` DuckDB view: one row per ticket and target, for `tix sql` and reports.

Columns: ticket, policy, target (first_response | next_response | resolution), cycle (the
next-response cycle; 0 otherwise), started_at, due_at, met_at (naive UTC TIMESTAMPs like
every view), state (ok | warning | paused | breached | met | stopped), breached (bool: late,
or a breach recorded by an `sla.breached` event), business_seconds_used,
business_seconds_to_meet and calendar_seconds_to_meet (only when met), status (the
ticket's status as the clock last saw it), computed_at (when the row's clocks were computed).

It reads the Parquet rows that `tix escalate` writes (see tix.sla.state), so it costs a
Parquet scan, never a fold of the log. Before the first run the view exists and is empty.
A run computes a ticket's row again when an event names it or when its clocks change state
(a running clock's warning and breach fall due: the due-time index), not otherwise: state,
breached, started_at, due_at and met_at are those of the last run, as computing every row
would give them; but for a clock still running (ok, warning, breached) business_seconds_used
is as of computed_at, and so is a paused clock's due_at (the due time had it resumed then).
"""
from __future__ import annotations

import orjson

# Same as tix.sla.state.PREFIX; repeated so that opening a view never imports numpy.
PREFIX = {"first_response": "v_fr", "next_response": "v_nr", "resolution": "v_res"}

COLUMNS = {"ticket": "BIGINT", "policy": "VARCHAR", "target": "VARCHAR", "cycle": "BIGINT",
           "started_at": "TIMESTAMP", "due_at": "TIMESTAMP", "met_at": "TIMESTAMP", "state": "VARCHAR",
           "breached": "BOOLEAN", "business_seconds_used": "DOUBLE", "business_seconds_to_meet": "DOUBLE",
           "calendar_seconds_to_meet": "DOUBLE", "status": "VARCHAR", "computed_at": "TIMESTAMP"}


def _ts(col: str) -> str:
    return f"make_timestamp(CAST(round({col} * 1000000) AS BIGINT))"


def register(con, reader) -> None:
    """Create the temp view `sla` on `con` (called by `Reader.connect()` via VIEW_HOOKS)."""
    d = reader.store.path("snapshot", "sla")
    try:
        meta = orjson.loads((d / "sla-meta.json").read_bytes())
    except (FileNotFoundError, ValueError):
        meta = {}
    names = [meta.get("live"), meta.get("delta"), *meta.get("done", [])]
    paths = [str(d / n) for n in names if n and (d / n).exists()]
    if not paths:
        cols = ", ".join(f"NULL::{t} AS {c}" for c, t in COLUMNS.items())
        con.execute(f"CREATE OR REPLACE TEMP VIEW sla AS SELECT {cols} WHERE false")
        return
    listing = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
    indexed = meta.get("format", 1) >= 2  # rows with `rev` and `computed` (until a run rewrites older ones)
    order = "gen DESC, rev DESC" if indexed else "gen DESC"
    dedupe = "" if len(paths) == 1 else f"QUALIFY row_number() OVER (PARTITION BY ticket ORDER BY {order}) = 1"
    computed = _ts("computed") if indexed else "NULL::TIMESTAMP"
    parts = []
    for target, p in PREFIX.items():
        parts.append(
            f"SELECT ticket, policy, '{target}' AS target, {p}_cycle AS cycle, {_ts(p + '_started')} AS started_at, "
            f"{_ts(p + '_due')} AS due_at, {_ts(p + '_met')} AS met_at, {p}_state AS state, "
            f"{p}_breached AS breached, {p}_bsec AS business_seconds_used, "
            f"CASE WHEN {p}_met IS NOT NULL THEN {p}_bsec END AS business_seconds_to_meet, "
            f"{p}_csec AS calendar_seconds_to_meet, status, {computed} AS computed_at "
            f"FROM _sla_rows WHERE {p}_state IS NOT NULL")
    con.execute(f"CREATE OR REPLACE TEMP VIEW _sla_rows AS SELECT * FROM read_parquet({listing}) {dedupe}")
    con.execute("CREATE OR REPLACE TEMP VIEW sla AS " + " UNION ALL ".join(parts))
