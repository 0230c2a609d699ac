"""Ticket history as facts: one row per event that matters to reports, with the ticket's state.

The ticket snapshot holds current state only (`resolved_at` is the latest resolution, cleared
on reopen); a figure about the past ("open at the end of week 45", "resolved in week 46", "who
answered first") needs the history. This module derives it from the log once and keeps it
as a cache, so a report reads a few Parquet columns instead of folding the log.

`history` view, one row per event of these kinds, in log order (seq):

    kind      event                                          columns it fills
    created   ticket.created                                 status, team, assignee (+ prev_*)
    updated   ticket.updated setting status/team/assignee    status, team, assignee (+ prev_*)
    in        message.received (a customer's message)        auto
    out       message.sent (a reply or an auto-reply)        auto, outbox, reply_no
    failed    outbox.failed with `permanent` (given up)      outbox

Every row: seq, ts (naive UTC), ticket, kind, event (what an `updated` row changed:
`resolution`, `reopen`, else `team`, `status` or `assignee`; NULL on other rows), actor
(`user:NAME`, `rule:NAME`, …), and the ticket's state right after the event: `status`,
`team`, `assignee`; right before it: `prev_status`, `prev_team`, `prev_assignee` (NULL before
creation); `is_open`/`was_open` (status new/open/pending after/before it); `episode` (how
many times it was reopened so far), `episode_start` (when the current episode began:
creation, or the latest reopen), `resolved_by` (the actor of its latest resolution),
`replies` (non-automatic replies queued so far) and, on a non-automatic `out` row,
`reply_no` (its ordinal, from 1). A resolution is a move from new/open/pending (or nothing,
at creation) to resolved/closed; a reopen a move from resolved/closed to new/open/pending.

Derived views (the definitions every built-in report uses; README "Report definitions"):
`replies` (every `message.sent`, with `agent`, `failed`: its outbox item was given up, and
`first`: the ticket's first non-automatic reply not given up), `first_responses` (those, with
the hours since creation), `resolutions` (with the hours of the episode, `answered`: a reply
was sent by then), `reopens` (with who resolved before), `backlog_changes` (the rows that make
a ticket count as open for a team, or stop), `ticket_periods` (each stretch of constant
status/team/assignee: since, until), `excluded_tickets` (tagged with `reports: exclude_tags`)
and `lost_replies` (replies given up).

The cache lives in `snapshot/history/` (a directory of its own: the ticket snapshot prunes
other Parquet files beside it)::

    meta.json                   {"format": 1, "columns": [...], "seq": N, "segment": …, "offset": …,
                                 "parts": [...]}
    history-A-B.parquet         the rows of events A..B, sorted by kind, event and seq (so that
                                a query for resolutions, or for one week, reads few row groups)

The rows of an event never change (later events only add rows), so the cache grows by parts:
bringing it up to date folds the new events on top of each touched ticket's last row; past
`MAX_PARTS` the parts are merged. It is built from the whole log (DuckDB, one segment at a
time: about 40 s and 0.8 GB for a million tickets) when missing, of another format or layout,
or when the log was rewritten under it (an erasure: the saved position no longer follows its
seq). Writers bring it up to date with the snapshot (`catch_up`, under the lock); a reader
folds the events after it in memory (and writes them as a part when there are many); a reader
that may not write folds the whole log in memory. The rows hold no personal data: numbers,
times, statuses, team and agent names.
"""
from __future__ import annotations

import re
from pathlib import Path

import orjson

from tix.model import OPEN_STATUSES
from tix.store.files import FILE_MODE, atomic_write, commit_temp, temp_name
from tix.store.log import Position, seq_before

FORMAT = 1
MAX_PARTS = 16
WRITE_AT = 20000  # a reader writes the events it folded as a part from this many rows on
ROW_GROUP = 32768
DONE = ("resolved", "closed")

COLUMNS = {
    "seq": "BIGINT", "ts": "TIMESTAMP", "ticket": "BIGINT", "kind": "VARCHAR", "event": "VARCHAR", "actor": "VARCHAR",
    "status": "VARCHAR", "team": "VARCHAR", "assignee": "VARCHAR",
    "prev_status": "VARCHAR", "prev_team": "VARCHAR", "prev_assignee": "VARCHAR",
    "is_open": "BOOLEAN", "was_open": "BOOLEAN",
    "episode": "INTEGER", "episode_start": "TIMESTAMP", "resolved_by": "VARCHAR", "replies": "INTEGER",
    "reply_no": "INTEGER", "auto": "BOOLEAN", "outbox": "VARCHAR",
}

# What the fold below reads of an event, already taken out of its JSON.
_EXTRACTED = {"seq": "BIGINT", "ts": "TIMESTAMP", "ticket": "BIGINT", "kind": "VARCHAR", "actor": "VARCHAR",
              "set_status": "VARCHAR", "has_team": "BOOLEAN", "team": "VARCHAR", "has_assignee": "BOOLEAN",
              "assignee": "VARCHAR", "auto": "BOOLEAN", "outbox": "VARCHAR"}

_KINDS = {"ticket.created": "created", "ticket.updated": "updated", "message.received": "in",
          "message.sent": "out", "outbox.failed": "failed"}
_TYPE = re.compile(rb'"type"\s*:\s*"(ticket\.created|ticket\.updated|message\.received|message\.sent|outbox\.failed)"')
# Bytes each line that makes a row holds (its type, or a key of `set` an `updated` row
# records; orjson escapes every quote inside a string, so these occur only as written here,
# and a false hit only costs the line-by-line read). A stretch of the log without any of them
# makes no rows: `gap` skips it unread.
_ROW_MARKS = (b'"ticket.created"', b'"message.received"', b'"message.sent"', b'"outbox.failed"',
              b'"status"', b'"team"', b'"assignee"')
# A received message's `auto` flag, found without decoding its text (a quote inside a JSON
# string is escaped, so this matches a key of the data object only).
_AUTO = re.compile(rb'[{,]\s*"auto"\s*:\s*true')


def _lit(values) -> str:
    return "(" + ", ".join("'" + v + "'" for v in values) + ")"


# -- the fold, in SQL --------------------------------------------------------------------------
EVENT_STRUCT = ("STRUCT(status JSON, team JSON, assignee JSON, \"set\" JSON, auto JSON, outbox JSON, id JSON, "
                "permanent JSON)")


def events_source(files: list[str], upto: int | None = None, data: str = EVENT_STRUCT) -> str:
    """The log's JSONL files as a relation with only what the fold reads of `data`, each field
    as a JSON fragment (so no value of an unexpected type can make a line unreadable): about
    five times faster than parsing whole messages. `data`: another such struct, for another
    reader of the log (the SLA cold fold, tix.sla.coldfold)."""
    cols = ("{seq: 'BIGINT', ts: 'TIMESTAMP', actor: 'VARCHAR', type: 'VARCHAR', ticket: 'BIGINT', "
            f"data: '{data}'}}")
    where = f" WHERE seq <= {int(upto)}" if upto is not None else ""
    return (f"(SELECT * FROM read_json({_listing(files)}, format='newline_delimited', ignore_errors=true, "
            f"columns={cols}){where})")


def extract_sql(source: str) -> str:
    """The events of `source` (an `events_source`) that make rows, with the fields the fold
    reads (the same as `_extract` does in Python)."""
    return f"""
SELECT seq, ts, ticket, kind, actor,
  CASE kind WHEN 'created' THEN coalesce(json_extract_string(data.status, '$'), 'new')
            WHEN 'updated' THEN json_extract_string(data.set, '$.status') END AS set_status,
  CASE kind WHEN 'created' THEN true WHEN 'updated' THEN json_exists(data.set, '$.team') ELSE false END AS has_team,
  CASE kind WHEN 'created' THEN json_extract_string(data.team, '$')
            WHEN 'updated' THEN json_extract_string(data.set, '$.team') END AS team,
  CASE kind WHEN 'created' THEN true WHEN 'updated' THEN json_exists(data.set, '$.assignee')
            ELSE false END AS has_assignee,
  CASE kind WHEN 'created' THEN json_extract_string(data.assignee, '$')
            WHEN 'updated' THEN json_extract_string(data.set, '$.assignee') END AS assignee,
  CASE WHEN kind IN ('in', 'out') THEN coalesce(TRY_CAST(json_extract_string(data.auto, '$') AS BOOLEAN), false)
       ELSE false END AS auto,
  CASE WHEN kind IN ('out', 'failed')
       THEN coalesce(json_extract_string(data.outbox, '$'), json_extract_string(data.id, '$')) END AS outbox
FROM (
  SELECT *, CASE type WHEN 'ticket.created' THEN 'created' WHEN 'ticket.updated' THEN 'updated'
                      WHEN 'message.received' THEN 'in' WHEN 'message.sent' THEN 'out' ELSE 'failed' END AS kind
  FROM {source}
  WHERE ticket IS NOT NULL
    AND type IN ('ticket.created', 'ticket.updated', 'message.received', 'message.sent', 'outbox.failed')
)
WHERE (kind <> 'updated' OR json_exists(data.set, '$.status') OR json_exists(data.set, '$.team')
       OR json_exists(data.set, '$.assignee'))
  AND (kind <> 'failed' OR coalesce(TRY_CAST(json_extract_string(data.permanent, '$') AS BOOLEAN), false))
"""


def fold_sql(extracted: str, prior: str | None) -> str:
    """Rows (`COLUMNS`) for the extracted events, each ticket continuing from its `prior` row
    (columns ticket, status, team, assignee, episode, episode_start, replies), if any."""
    opened, done = _lit(OPEN_STATUSES), _lit(DONE)
    pr = prior or ("(SELECT NULL::BIGINT AS ticket, NULL::VARCHAR AS status, NULL::VARCHAR AS team, "
                   "NULL::VARCHAR AS assignee, NULL::INTEGER AS episode, NULL::TIMESTAMP AS episode_start, "
                   "NULL::VARCHAR AS resolved_by, NULL::INTEGER AS replies WHERE false)")
    cols = ", ".join(COLUMNS)
    return f"""
WITH j AS (
  SELECT x.*, p.ticket IS NOT NULL AS has_prior, p.status AS p_status, coalesce(p.team, '') AS p_team,
         coalesce(p.assignee, '') AS p_assignee, coalesce(p.episode, 0) AS p_episode,
         p.episode_start AS p_episode_start, p.resolved_by AS p_resolved_by, coalesce(p.replies, 0) AS p_replies
  FROM ({extracted}) x LEFT JOIN {pr} p USING (ticket)
),
s1 AS (
  SELECT *,
    last_value(set_status IGNORE NULLS) OVER wc AS st_c,
    last_value(set_status IGNORE NULLS) OVER wp AS st_p,
    last_value(tm_set IGNORE NULLS) OVER wc AS tm_c,
    last_value(tm_set IGNORE NULLS) OVER wp AS tm_p,
    last_value(asg_set IGNORE NULLS) OVER wc AS asg_c,
    last_value(asg_set IGNORE NULLS) OVER wp AS asg_p,
    count(*) FILTER (WHERE kind = 'out' AND NOT auto) OVER wc AS rc
  FROM (SELECT *, CASE WHEN has_team THEN coalesce(team, '') END AS tm_set,
               CASE WHEN has_assignee THEN coalesce(assignee, '') END AS asg_set FROM j)
  WINDOW wc AS (PARTITION BY ticket ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
         wp AS (PARTITION BY ticket ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
s2 AS (
  SELECT seq, ts, ticket, kind, actor, auto, outbox, p_episode, p_episode_start, p_resolved_by,
    coalesce(st_c, p_status) AS st,
    coalesce(st_p, p_status) AS prev_st,
    coalesce(tm_c, p_team) AS tm,
    coalesce(tm_p, CASE WHEN has_prior THEN p_team END) AS prev_tm,
    coalesce(asg_c, p_assignee) AS asg,
    coalesce(asg_p, CASE WHEN has_prior THEN p_assignee END) AS prev_asg,
    (p_replies + rc)::INTEGER AS replies
  FROM s1
),
s3 AS (
  SELECT *, kind = 'updated' AND st IN {opened} AND prev_st IN {done} AS is_reopen,
         kind IN ('created', 'updated') AND st IN {done} AND (prev_st IS NULL OR prev_st IN {opened}) AS is_resolution
  FROM s2
),
s4 AS (
  SELECT *,
    (p_episode + count(*) FILTER (WHERE is_reopen) OVER w)::INTEGER AS episode,
    coalesce(last_value(CASE WHEN kind = 'created' OR is_reopen THEN ts END IGNORE NULLS) OVER w,
             p_episode_start) AS episode_start,
    coalesce(last_value(CASE WHEN is_resolution THEN actor END IGNORE NULLS) OVER w, p_resolved_by) AS resolved_by
  FROM s3
  WINDOW w AS (PARTITION BY ticket ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT {cols} FROM (
  SELECT seq, ts, ticket, kind,
         CASE WHEN is_resolution THEN 'resolution' WHEN is_reopen THEN 'reopen'
              WHEN kind <> 'updated' THEN NULL
              WHEN tm IS DISTINCT FROM prev_tm THEN 'team'
              WHEN st IS DISTINCT FROM prev_st THEN 'status'
              WHEN asg IS DISTINCT FROM prev_asg THEN 'assignee' END AS event,
         actor, coalesce(st, 'new') AS status, nullif(tm, '') AS team, nullif(asg, '') AS assignee,
         prev_st AS prev_status, nullif(prev_tm, '') AS prev_team, nullif(prev_asg, '') AS prev_assignee,
         coalesce(st, 'new') IN {opened} AS is_open, coalesce(prev_st IN {opened}, false) AS was_open,
         episode, episode_start, resolved_by, replies,
         CASE WHEN kind = 'out' AND NOT auto THEN replies END AS reply_no,
         auto, outbox
  FROM s4
)
ORDER BY kind, event, seq
"""


def prior_table(con, parts: list[str], tickets_relation: str) -> str | None:
    """Temp table `_prior`: each ticket's last row in `parts`, for the tickets of
    `tickets_relation` (a relation with a `ticket` column); its name, None when no parts.

    A table of its own, not a subquery of `fold_sql`'s join: DuckDB plans the scan of every
    part better alone (a report's tail of 100 events at a million tickets: 64-74 -> 49-56 ms)."""
    if not parts:
        return None
    # arg_max_null: the last row's value even when it is NULL (an unassigned team)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _prior AS "
                f"SELECT ticket, arg_max_null(status, seq) AS status, arg_max_null(team, seq) AS team, "
                f"arg_max_null(assignee, seq) AS assignee, arg_max_null(episode, seq) AS episode, "
                f"arg_max_null(episode_start, seq) AS episode_start, arg_max_null(resolved_by, seq) AS resolved_by, "
                f"arg_max_null(replies, seq) AS replies "
                f"FROM read_parquet({_listing(parts)}) "
                f"WHERE ticket IN (SELECT DISTINCT ticket FROM {tickets_relation}) GROUP BY ticket")
    return "_prior"


def _listing(paths: list[str]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


# -- the fold's input, from raw log lines ----------------------------------------------------
def _extract(raw: bytes) -> tuple | None:
    """One log line -> the `_EXTRACTED` fields, or None when it makes no row."""
    m = _TYPE.search(raw, 0, 600)
    if m is None:
        return None
    kind = _KINDS[m.group(1).decode()]
    if kind == "in":  # the text is most of the log's bytes, and not needed here
        cut = raw.find(b',"data":')
        ev = orjson.loads(raw[:cut] + b"}") if cut > 0 else orjson.loads(raw)
        if ev.get("ticket") is None:  # keys in another order: decode it all
            ev = orjson.loads(raw)
        auto = bool(_AUTO.search(raw, cut if cut > 0 else 0))
        data = {}
    else:
        ev = orjson.loads(raw)
        data = ev.get("data") or {}
        auto = bool(data.get("auto")) if kind == "out" else False
    ticket = ev.get("ticket")
    if ticket is None or ev.get("type") not in _KINDS:
        return None
    status = team = assignee = outbox = None
    has_team = has_assignee = False
    if kind == "created":
        status = data.get("status") or "new"
        team, assignee, has_team, has_assignee = data.get("team"), data.get("assignee"), True, True
    elif kind == "updated":
        s = data.get("set") or {}
        if not ("status" in s or "team" in s or "assignee" in s):
            return None
        status = s.get("status")
        has_team, team = "team" in s, s.get("team")
        has_assignee, assignee = "assignee" in s, s.get("assignee")
    elif kind == "out":
        outbox = data.get("outbox")
    elif kind == "failed":
        if not data.get("permanent"):
            return None
        outbox = data.get("outbox") or data.get("id")
    return (ev["seq"], ev["ts"], ticket, kind, ev.get("actor"), status, has_team, _str(team), has_assignee,
            _str(assignee), auto, _str(outbox))


def _str(v):
    return None if v is None else str(v)


def _extracted_arrow(rows: list[tuple]):
    import pyarrow as pa

    names = list(_EXTRACTED)
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    types = {"BIGINT": pa.int64(), "VARCHAR": pa.string(), "BOOLEAN": pa.bool_(), "TIMESTAMP": pa.string()}
    arrays = []
    for name, values in zip(names, cols, strict=True):
        arr = pa.array(list(values), types[_EXTRACTED[name]])
        if name == "ts":
            arr = arr.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, names=names)


# -- the cache ----------------------------------------------------------------------------------
class History:
    """The cache directory: its meta, its parts, and bringing it up to a log position."""

    def __init__(self, store):
        self.store = store
        self.dir = store.path("snapshot", "history")

    def meta(self) -> dict | None:
        try:
            meta = orjson.loads((self.dir / "meta.json").read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return meta if self._valid(meta) else None

    def _valid(self, m: dict) -> bool:
        if m.get("format") != FORMAT or m.get("columns") != list(COLUMNS) \
                or any(not (self.dir / p).exists() for p in m.get("parts", [])):
            return False  # another tix wrote it: rebuilt
        if not m.get("segment"):
            return m.get("seq", 0) == 0
        path = self.store.log.dir / m["segment"]
        if not path.exists() or path.stat().st_size < m["offset"]:
            return False
        return seq_before(path, m["offset"]) == m["seq"]  # the log was not rewritten under us

    def parts(self, meta: dict) -> list[str]:
        return [str(self.dir / p) for p in meta.get("parts", [])]

    def gap(self, meta: dict, upto: Position | None) -> tuple[list[tuple], Position, int]:
        """Extracted rows of the events after the cache, up to `upto` (default: the log's end);
        with the position and seq reached."""
        rows = []
        pos = Position(meta["segment"], meta["offset"]) if meta.get("segment") else None
        seq = meta.get("seq", 0)
        end = upto or self.store.log.end()
        if pos == end:
            return rows, end, seq
        if pos is not None and not self.store.log.holds_any(pos, end, _ROW_MARKS):  # e.g. a bulk change
            last_seq = seq_before(self.store.log.dir / end.segment, end.offset)
            if last_seq is not None:
                return rows, end, last_seq
        reached = pos or Position("", 0)
        last = None
        for raw, seg, off in self.store.log.read_raw(pos, end):  # committed batches only
            row = _extract(raw)
            if row is not None:
                rows.append(row)
            last = raw
            reached = Position(seg, off)
            if reached == end:
                break
        if last is not None:
            seq = orjson.loads(last)["seq"]
        return rows, reached, seq

    def build(self) -> dict:
        """Fold the whole log into parts, one segment (a month) at a time: each DuckDB scan
        and window stays the size of a month, whatever the size of the log."""
        log = self.store.log
        end = log.end()
        upto = seq_before(log.dir / end.segment, end.offset) if end.segment else None
        self.dir.mkdir(parents=True, exist_ok=True)
        parts: list[str] = []
        if upto:
            con = _duck(self.store)
            for seg in log.segments():
                if seg > end.segment:
                    break
                con.execute(f"CREATE OR REPLACE TEMP TABLE _hx AS "
                            f"{extract_sql(events_source([str(log.dir / seg)], upto))}")
                first, last = con.execute("SELECT min(seq), max(seq) FROM _hx").fetchall()[0]
                if first is None:
                    continue
                name = f"history-{first}-{last}.parquet"
                prior = prior_table(con, [str(self.dir / p) for p in parts], "_hx")
                self._copy(con, fold_sql("SELECT * FROM _hx", prior), name)
                parts.append(name)
            con.execute("DROP TABLE IF EXISTS _hx")
            parts = self._merge(con, parts, upto)
        meta = {"format": FORMAT, "columns": list(COLUMNS), "seq": upto or 0, "segment": end.segment,
                "offset": end.offset, "parts": parts}
        return self._commit(meta, None)

    def _merge(self, con, parts: list[str], seq: int) -> list[str]:
        """Parts over `MAX_PARTS` become one (in seq order: each part is sorted, and they follow each other)."""
        if len(parts) <= MAX_PARTS:
            return parts
        name = f"history-m{seq}.parquet"
        self._copy(con, f"SELECT * FROM read_parquet({_listing([str(self.dir / p) for p in parts])})", name)
        return [name]

    def catch_up(self, upto: Position | None = None, build: bool = True) -> dict | None:
        """Bring the cache up to `upto` (default: the log's end) and return its meta.

        Without `build`, a missing or stale cache is left alone (None): a writer does not
        stop to fold the whole log for a report nobody asked for yet.
        """
        old = self.meta()
        if old is None:
            return self.build() if build else None
        rows, pos, seq = self.gap(old, upto)
        return self._append(old, rows, pos, seq)

    def _append(self, old: dict, rows: list[tuple], pos: Position, seq: int) -> dict:
        if pos == Position(old.get("segment", ""), old.get("offset", 0)):
            return old
        parts = list(old.get("parts", []))
        if rows:
            con = _duck(self.store)
            con.register("_hx", _extracted_arrow(rows))
            name = f"history-{rows[0][0]}-{rows[-1][0]}.parquet"
            self._copy(con, fold_sql("SELECT * FROM _hx", prior_table(con, self.parts(old), "_hx")), name)
            parts.append(name)
            parts = self._merge(con, parts, seq)
        meta = {"format": FORMAT, "columns": list(COLUMNS), "seq": seq, "segment": pos.segment,
                "offset": pos.offset, "parts": parts}
        return self._commit(meta, old)

    def _copy(self, con, select: str, name: str) -> None:
        tmp = temp_name(self.dir / name)
        path = str(tmp).replace("'", "''")
        con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP})")
        commit_temp(tmp, self.dir / name, mode=FILE_MODE, sync_dir=False)  # the meta's write syncs the dir

    def _commit(self, meta: dict, old: dict | None) -> dict:
        atomic_write(self.dir / "meta.json", orjson.dumps(meta, option=orjson.OPT_INDENT_2))
        keep = {*meta["parts"], *((old or {}).get("parts", []))}  # readers may still hold the old meta
        for name in list(keep):
            try:
                keep.add(changes_name(self.dir / name))
            except OSError:
                pass
        for p in [*self.dir.glob("history-*.parquet"), *self.dir.glob("changes-*.parquet")]:
            if p.name not in keep:
                p.unlink(missing_ok=True)
        return meta


def _duck(store):
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET temp_directory = ?", [str(store.path("state", "duckdb-tmp"))])
    return con


def catch_up(store) -> None:
    """For writers, after a snapshot refresh: fold the new events into an existing cache."""
    History(store).catch_up(build=False)


# -- the views ----------------------------------------------------------------------------------
DEFAULT_EXCLUDE_TAGS = ("spam", "auto", "otomatis")


REPORTS_KEYS = ("exclude_tags",)


def exclude_tags(config) -> list[str]:
    """Tags that keep a ticket out of report figures (`reports: exclude_tags:` in tix.yaml,
    default spam, auto, otomatis), lowercased. Such tickets are counted on their own line."""
    section = config.section("reports") or {}
    tags = section.get("exclude_tags", list(DEFAULT_EXCLUDE_TAGS)) if isinstance(section, dict) \
        else list(DEFAULT_EXCLUDE_TAGS)
    if isinstance(tags, str):
        tags = [tags]
    return sorted({str(t).strip().lower() for t in (tags or []) if str(t).strip()})


def validate_section(node, path) -> list:
    """`reports:` of tix.yaml (tix.config.SECTION_VALIDATORS): `exclude_tags`, a list of tags."""
    from tix.config import check_keys
    from tix.errors import Problem

    fname = str(path)
    if not isinstance(node, dict):
        return [Problem(fname, getattr(node, "line", None), "reports must be a mapping (exclude_tags: [...])")]
    problems = check_keys(node, REPORTS_KEYS, fname, "reports", listing="keys")
    tags = node.get("exclude_tags")
    if tags is not None and not (isinstance(tags, (list, str)) and all(isinstance(t, str) for t in
                                                                         ([tags] if isinstance(tags, str) else tags))):
        line = node.line_of("exclude_tags") if hasattr(node, "line_of") else None
        problems.append(Problem(fname, line, "reports: exclude_tags must be a list of tags"))
    return problems


def register(con, store, upto: Position | None = None, excluded=None, only=None, reader=None) -> None:
    """Create the history views on `con`, up to the log position `upto` (a reader's end; default
    the log's end). Builds or extends the cache when needed. `excluded`: the tags that mark a
    ticket as not a customer's request (default: the `reports: exclude_tags` setting).

    `only`: the views a caller's SQL uses (tix.store.views.names_used): just those, and what
    they read, are created; with none of them, the cache is not even read (the variable
    `tix_exclude_tags`, which the reports' `excluded()` macro reads, is always set).

    `reader`: the reader whose views `con` has (`tickets` from its snapshot and tail): the
    snapshot's part of `excluded_tickets` is then kept between runs (`_excluded`).
    """
    tags = exclude_tags(store.config) if excluded is None else list(excluded)
    con.execute("SET VARIABLE tix_exclude_tags = $tags::VARCHAR[]", {"tags": tags})
    if only is not None:
        from tix.store.views import closure

        want = closure(only) & set(view_depends())
        if not want:
            return
    else:
        want = set(view_depends())
    h = History(store)
    meta = h.meta()
    try:
        if meta is None:
            meta = h.build()
        rows, pos, seq = h.gap(meta, upto)
        if len(rows) >= WRITE_AT:
            meta = h._append(meta, rows, pos, seq)
            rows = []
    except OSError:  # the cache cannot be written (a store this user may only read): fold in memory
        meta, rows = None, []
    in_memory = False
    if meta is None:
        log = store.log
        end = upto or log.end()
        files = [str(log.dir / s) for s in log.segments() if s <= end.segment]
        last = seq_before(log.dir / end.segment, end.offset) if end.segment else None
        source = events_source(files, last or 0) if files else "(SELECT NULL::BIGINT AS seq WHERE false)"
        if files:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _history_mem AS {fold_sql(extract_sql(source), None)}")
            in_memory = True
        meta = {"parts": []}
    parts = h.parts(meta)
    empty = ", ".join(f"NULL::{t} AS {c}" for c, t in COLUMNS.items())
    stored = f"SELECT * FROM read_parquet({_listing(parts)})" if parts else f"SELECT {empty} WHERE false"
    if in_memory:
        stored = "SELECT * FROM _history_mem"
    if rows:  # (as JSON, not Arrow: importing pyarrow cost a report with any tail 0.2 s)
        from tix.store.snapshot import register_rows

        register_rows(con, "_history_x", [dict(zip(_EXTRACTED, r, strict=True)) for r in rows], _EXTRACTED)
        prior = prior_table(con, parts, "_history_x")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _history_tail AS {fold_sql('SELECT * FROM _history_x', prior)}")
        con.execute("DROP TABLE _history_x")
        con.execute("DROP TABLE IF EXISTS _prior")
        stored += " UNION ALL SELECT * FROM _history_tail"
    con.execute("SET enable_object_cache = true")  # parse the parts' Parquet metadata once, not per query
    con.execute(f"CREATE OR REPLACE TEMP VIEW history AS {stored}")
    failures = con.execute("SELECT count(*) FROM history WHERE kind = 'failed'").fetchall()[0][0] \
        if "_lost_by_ticket" in want else 0
    for sql in VIEWS_SQL:
        if _created(sql) not in want:
            continue
        if _created(sql) == "excluded_tickets" and reader is not None and _excluded(con, store, reader, tags):
            continue
        if _created(sql) == "backlog_changes" and not in_memory and _changes_view(con, h, parts, bool(rows)):
            continue
        if not failures and "_lost_by_ticket AS" in sql:  # nothing was given up: skip reading every reply
            sql = ("CREATE OR REPLACE TEMP TABLE _lost_by_ticket AS SELECT NULL::BIGINT AS ticket, "
                   "NULL::INTEGER[] AS nos, NULL::VARCHAR[] AS outboxes WHERE false")
        con.execute(sql)


def changes_name(part: Path) -> str:
    """The companion file of a history part (its `backlog_changes` rows), named after the
    part's name, size and mtime: a part made again under the same name (a rebuild after a
    log rewrite) gets a new companion, never the old one's rows. OSError if it is gone."""
    st = part.stat()
    return f"changes-{part.stem.removeprefix('history-')}-{st.st_size:x}-{st.st_mtime_ns:x}.parquet"


def _changes_view(con, h: History, parts: list[str], tail: bool) -> bool:
    """Create `backlog_changes` over the parts' companion files (made for the parts that have
    none yet), plus the in-memory tail's rows. The backlog's trend read every history row of
    its weeks to keep a fifth of them (0.06 s of 0.45 at a million tickets). False when a
    companion cannot be written (a store this user may only read): the caller creates the
    view over `history`."""
    files = []
    con_w = None
    for part in parts:
        try:
            comp = h.dir / changes_name(Path(part))
        except OSError:
            return False
        if not comp.exists():
            import duckdb

            try:
                con_w = con_w or _duck(h.store)
                tmp = temp_name(comp)
                con_w.execute(f"COPY (SELECT {CHANGES_COLUMNS} FROM read_parquet({_listing([part])}) "
                              f"WHERE {CHANGES_WHERE} ORDER BY seq) TO {_listing([str(tmp)])[1:-1]} "
                              f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP})")
                commit_temp(tmp, comp, mode=FILE_MODE, sync_dir=False)
            except (OSError, duckdb.Error):  # a directory this user may not write
                return False
        files.append(str(comp))
    sources = [f"SELECT {CHANGES_COLUMNS} FROM read_parquet({_listing(files)})"] if files else []
    if tail:
        sources.append(f"SELECT {CHANGES_COLUMNS} FROM _history_tail WHERE {CHANGES_WHERE}")
    if not sources:
        sources.append(f"SELECT {CHANGES_COLUMNS} FROM history WHERE false")
    con.execute("CREATE OR REPLACE TEMP VIEW backlog_changes AS " + " UNION ALL ".join(sources))
    return True


def _excluded(con, store, reader, tags: list[str]) -> bool:
    """Create `excluded_tickets` from the snapshot's excluded tickets kept in
    snapshot/history/excluded.json, and the reader's tail. Reading the tags of every ticket
    is most of what a report costs besides its own query (0.05 s at a million tickets); the
    snapshot's answer changes only with its files and the tags asked for, which key it.
    False when there is no snapshot (the caller creates the table from `tickets`)."""
    import hashlib
    import os

    from tix.store.views import tail_table

    snap = reader.snapshot_sql("tickets")
    if snap is None:
        return False
    files = re.findall(r"read_parquet\('([^']+)'\)", snap)
    try:
        stats = [(f, st.st_size, st.st_mtime_ns, st.st_ino) for f in dict.fromkeys(files) for st in [os.stat(f)]]
    except OSError:
        return False
    key = hashlib.sha256(orjson.dumps([snap, stats, sorted(tags)])).hexdigest()
    path = store.path("snapshot", "history", "excluded.json")
    try:
        kept = orjson.loads(path.read_bytes())
        numbers = kept["tickets"] if kept.get("key") == key else None
    except (OSError, ValueError, TypeError, AttributeError):
        numbers = None
    if numbers is None:
        numbers = [r[0] for r in con.execute(
            f"SELECT DISTINCT number FROM ({snap}) WHERE list_has_any(tags, $tags::VARCHAR[]) ORDER BY number",
            {"tags": tags}).fetchall()]
        try:
            atomic_write(path, orjson.dumps({"key": key, "tickets": numbers}), sync_dir=False)
        except OSError:  # a store this user may only read: the answer is not kept
            pass
    # the reader's tail tickets, when it has any (tix.store.views._merged_view registered them
    # with its `tickets` view, which this view reads); asking DuckDB's catalog instead cost the
    # first catalog query's ~10 ms
    tail = tail_table("tickets") if reader.state.tickets else None
    kept_sql = "SELECT unnest($n::BIGINT[]) AS ticket"
    if tail:
        kept_sql = (f"SELECT ticket FROM ({kept_sql}) WHERE ticket NOT IN (SELECT number FROM {tail}) "
                    f"UNION SELECT number FROM {tail} WHERE list_has_any(tags, getvariable('tix_exclude_tags'))")
    con.execute(f"CREATE OR REPLACE TEMP TABLE excluded_tickets AS {kept_sql}", {"n": numbers})
    return True


_OPEN, _DONE = _lit(OPEN_STATUSES), _lit(DONE)

# `backlog_changes`: the history rows that change whether a ticket counts as open (for its
# team); about a fifth of the history. Each part of the cache gets a companion file of just
# these rows (`_changes_view`).
CHANGES_COLUMNS = "ticket, seq, ts, team, prev_team, is_open, was_open"
CHANGES_WHERE = ("(kind = 'created' OR event IN ('resolution', 'reopen', 'team')) "
                 "AND (is_open <> was_open OR (is_open AND team IS DISTINCT FROM prev_team))")

VIEWS_SQL = (
    # tickets that are not a customer's request (spam, automatic mail): kept out of report figures;
    # a table, read once (most queries use it, and few tickets have tags)
    """CREATE OR REPLACE TEMP TABLE excluded_tickets AS
    SELECT DISTINCT number AS ticket FROM (SELECT number, unnest(tags) AS tag FROM tickets)
    WHERE list_contains(getvariable('tix_exclude_tags'), tag)""",
    # replies whose outbox item was given up: a handful, so the views below join them by
    # equality only (a correlated subquery would make DuckDB read the whole history)
    """CREATE OR REPLACE TEMP VIEW lost_replies AS
    SELECT h.ticket, h.outbox, h.reply_no, h.auto
    FROM history h SEMI JOIN (SELECT ticket, outbox FROM history WHERE kind = 'failed') g
         ON g.ticket = h.ticket AND g.outbox = h.outbox
    WHERE h.kind = 'out'""",
    """CREATE OR REPLACE TEMP TABLE _lost_by_ticket AS
    SELECT ticket, list(reply_no) FILTER (WHERE NOT auto) AS nos, list(outbox) AS outboxes
    FROM lost_replies GROUP BY ticket""",
    """CREATE OR REPLACE TEMP VIEW replies AS
    SELECT seq, ts, ticket, actor, agent, auto, outbox, failed, reply_no, team, assignee, status,
           NOT auto AND NOT failed AND reply_no - 1 = lost_before AS first
    FROM (
      SELECT h.seq, h.ts, h.ticket, h.actor, CASE WHEN h.actor LIKE 'user:%' THEN substr(h.actor, 6) END AS agent,
             h.auto, h.outbox, coalesce(list_contains(l.outboxes, h.outbox), false) AS failed,
             h.reply_no, h.team, h.assignee, h.status,
             coalesce(len(list_filter(l.nos, lambda n: n < h.reply_no)), 0) AS lost_before
      FROM history h LEFT JOIN _lost_by_ticket l ON l.ticket = h.ticket
      WHERE h.kind = 'out'
    )""",
    """CREATE OR REPLACE TEMP VIEW ticket_periods AS
    SELECT ticket, ts AS since, lead(ts) OVER (PARTITION BY ticket ORDER BY seq) AS until, status, team, assignee,
           episode, actor AS set_by
    FROM history WHERE kind IN ('created', 'updated')""",
    """CREATE OR REPLACE TEMP VIEW resolutions AS
    SELECT h.ticket, h.seq, h.ts, h.actor, CASE WHEN h.actor LIKE 'user:%' THEN substr(h.actor, 6) END AS agent,
           h.status, h.team, h.assignee, h.episode, h.episode_start,
           date_diff('second', h.episode_start, h.ts) / 3600.0 AS hours,
           h.replies - coalesce(len(list_filter(l.nos, lambda n: n <= h.replies)), 0) > 0 AS answered,
           x.ticket IS NOT NULL AS excluded
    FROM history h LEFT JOIN _lost_by_ticket l ON l.ticket = h.ticket
         LEFT JOIN excluded_tickets x ON x.ticket = h.ticket
    WHERE h.event = 'resolution'""",
    """CREATE OR REPLACE TEMP VIEW reopens AS
    SELECT h.ticket, h.seq, h.ts, h.actor, h.status, h.team, h.assignee, h.episode,
           h.prev_team AS resolved_team, h.resolved_by,
           CASE WHEN h.resolved_by LIKE 'user:%' THEN substr(h.resolved_by, 6) END AS resolved_by_agent,
           x.ticket IS NOT NULL AS excluded
    FROM history h LEFT JOIN excluded_tickets x ON x.ticket = h.ticket
    WHERE h.event = 'reopen'""",
    """CREATE OR REPLACE TEMP VIEW first_responses AS
    SELECT r.ticket, r.seq, r.ts, r.actor, r.agent, r.team, r.assignee, t.created_at,
           date_diff('second', t.created_at, r.ts) / 3600.0 AS hours,
           x.ticket IS NOT NULL AS excluded
    FROM replies r JOIN tickets t ON t.number = r.ticket LEFT JOIN excluded_tickets x ON x.ticket = r.ticket
    WHERE r.first""",
    # (an open/closed change is a creation, a resolution or a reopen; a team change is `team`
    # unless it came with one of those: the filter on `event` lets Parquet skip the rest)
    f"""CREATE OR REPLACE TEMP VIEW backlog_changes AS
    SELECT {CHANGES_COLUMNS}
    FROM history
    WHERE {CHANGES_WHERE}""",
)


_CREATED = re.compile(r"CREATE OR REPLACE TEMP (?:VIEW|TABLE) (\w+)")
_WORD = re.compile(r"\w+")


def _created(sql: str) -> str:
    return _CREATED.search(sql).group(1)


def view_depends() -> dict[str, tuple[str, ...]]:
    """Each history view and the views it reads (the names in its SQL), for `register(only=…)`."""
    if not _DEPENDS:
        _DEPENDS["history"] = ()
        for sql in VIEWS_SQL:
            words = set(_WORD.findall(sql.split(" AS", 1)[1]))
            _DEPENDS[_created(sql)] = tuple(n for n in [*_DEPENDS, "tickets"] if n in words)
    return _DEPENDS


_DEPENDS: dict[str, tuple[str, ...]] = {}
