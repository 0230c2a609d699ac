"""The ticket fold of `tix.store.fold`, written as one DuckDB query, for `tix rebuild`.

Folding 10M events in Python takes over a minute; DuckDB reads the JSONL segments on
every core and aggregates per ticket in a few seconds. The two implementations must
agree exactly: `tests/test_store_snapshot.py` folds random event sequences both ways
(Python over snapshot + tail, this query on rebuild) and compares every column.

Per ticket, last-writer-wins fields take the value of the highest `seq` that set them;
counters count; status-derived times follow `fold._status`; tags are the set left by
the add/remove operations (sorted); custom fields merge key by key (null removes).
"""
from __future__ import annotations

from tix.model import OPEN_STATUSES, TICKET_COLUMNS
from tix.store.fold import _QUIET

SIMPLE = ("subject", "status", "priority", "category", "team", "assignee", "channel", "inbox")
DEFAULTS = {"status": "'new'", "priority": "'normal'"}


def _lit(values) -> str:
    return "(" + ", ".join("'" + v + "'" for v in values) + ")"


def events_source(glob: str) -> str:
    g = glob.replace("'", "''")
    return (f"read_json('{g}', format='newline_delimited', ignore_errors=true, columns={{seq: 'BIGINT', "
            f"ts: 'TIMESTAMP', type: 'VARCHAR', ticket: 'BIGINT', contact: 'BIGINT', data: 'JSON'}})")


def fold_sql(source: str) -> str:
    """SELECT producing one row per ticket with the snapshot columns, from an events relation.

    Each event's JSON is parsed once (multi-path `json_extract` into a materialized CTE);
    every aggregate after that works on typed columns.
    """
    quiet = _lit(sorted(_QUIET))
    opened = _lit(OPEN_STATUSES)
    paths = ", ".join(f"'$.{f}'" for f in (*SIMPLE, "contact"))
    simple = ",\n    ".join(
        f"arg_max_null(json_extract_string(v[{i}], '$'), seq) FILTER (WHERE v[{i}] IS NOT NULL) AS {f}"
        for i, f in enumerate(SIMPLE, start=1))
    ci = len(SIMPLE) + 1
    final_simple = ",\n  ".join(f"coalesce(a.{f}, {DEFAULTS[f]}) AS {f}" if f in DEFAULTS else f"a.{f}"
                                for f in SIMPLE)
    return f"""
WITH e AS MATERIALIZED (
  SELECT seq, ts, type, ticket,
    CASE type WHEN 'ticket.created' THEN json_extract(data, [{paths}])
              WHEN 'ticket.updated' THEN json_extract(data, [{", ".join(f"'$.set.{f}'" for f in (*SIMPLE, "contact"))}]) END AS v,
    CASE WHEN type = 'message.sent' THEN coalesce(TRY_CAST(json_extract_string(data, '$.auto') AS BOOLEAN), false) END AS auto,
    CASE WHEN type = 'ticket.routed' THEN TRY_CAST(json_extract_string(data, '$.upto') AS BIGINT) END AS upto,
    CASE type WHEN 'ticket.created' THEN json_extract_string(data, '$.tags[*]')
              WHEN 'ticket.tagged' THEN json_extract_string(data, '$.add[*]') END AS tag_add,
    CASE WHEN type = 'ticket.tagged' THEN json_extract_string(data, '$.remove[*]') END AS tag_remove,
    CASE WHEN type = 'ticket.created' AND contains(CAST(data AS VARCHAR), '"fields":')
              THEN CAST(json_extract(data, '$.fields') AS MAP(VARCHAR, JSON))
         WHEN type = 'ticket.updated' AND contains(CAST(data AS VARCHAR), '"fields.')
              THEN map_from_entries(list_filter(
                  map_entries(CAST(json_extract(data, '$.set') AS MAP(VARCHAR, JSON))),
                  lambda kv: starts_with(kv.key, 'fields.'))) END AS fmap
  FROM {source} WHERE ticket IS NOT NULL
),
a AS (
  SELECT ticket,
    {simple},
    arg_max_null(TRY_CAST(json_extract_string(v[{ci}], '$') AS BIGINT), seq) FILTER (WHERE v[{ci}] IS NOT NULL) AS contact,
    arg_max(ts, seq) FILTER (WHERE type = 'ticket.created') AS created_ts,
    min(ts) AS first_ts,
    count(*) FILTER (WHERE type = 'message.received') AS messages_in,
    count(*) FILTER (WHERE type = 'message.sent') AS messages_out,
    count(*) FILTER (WHERE type = 'ticket.note') AS notes,
    max(ts) FILTER (WHERE type = 'message.received') AS last_customer_at,
    max(seq) FILTER (WHERE type IN ('ticket.created', 'message.received')) AS intake_seq,
    min(ts) FILTER (WHERE type = 'message.sent' AND NOT auto) AS first_response_at,
    max(ts) FILTER (WHERE type = 'message.sent' AND NOT auto) AS last_agent_at,
    arg_max(coalesce(upto, seq), seq) FILTER (WHERE type = 'ticket.routed') AS routed_seq,
    arg_max(ts, seq) FILTER (WHERE type NOT IN {quiet}) AS updated_at,
    max(seq) FILTER (WHERE type NOT IN {quiet}) AS last_seq
  FROM e GROUP BY ticket
),
st AS (
  SELECT ticket, seq, ts, type, json_extract_string(v[2], '$') AS new_status,
         lag(json_extract_string(v[2], '$')) OVER (PARTITION BY ticket ORDER BY seq) AS prev
  FROM e WHERE v[2] IS NOT NULL
),
st1 AS (
  SELECT ticket,
    count(*) FILTER (WHERE type = 'ticket.updated' AND new_status IN {opened} AND prev IN ('resolved', 'closed')) AS reopened,
    max(seq) FILTER (WHERE new_status IN {opened}) AS last_open_seq,
    arg_max(ts, seq) AS last_status_ts
  FROM st GROUP BY ticket
),
st2 AS (
  SELECT st.ticket,
    arg_max(st.ts, st.seq) FILTER (WHERE st.new_status = 'resolved') AS last_resolved_ts,
    arg_min(st.ts, st.seq) FILTER (WHERE st.new_status = 'closed') AS first_closed_ts
  FROM st JOIN st1 USING (ticket) WHERE st.seq > coalesce(st1.last_open_seq, 0) GROUP BY st.ticket
),
tg AS (
  SELECT ticket, seq * 2 AS k, unnest(tag_add) AS tag, true AS is_add FROM e WHERE tag_add IS NOT NULL
  UNION ALL SELECT ticket, seq * 2 + 1, unnest(tag_remove), false FROM e WHERE tag_remove IS NOT NULL
),
tags AS (
  SELECT ticket, list(tag ORDER BY tag) FILTER (WHERE present) AS tags
  FROM (SELECT ticket, tag, arg_max(is_add, k) AS present FROM tg GROUP BY ticket, tag) GROUP BY ticket
),
fl AS (
  SELECT ticket, CASE WHEN starts_with(kv.key, 'fields.') THEN kv.key[8:] ELSE kv.key END AS k,
         arg_max_null(kv.value, seq) AS v
  FROM (SELECT ticket, seq, unnest(map_entries(fmap)) AS kv FROM e WHERE cardinality(fmap) > 0)
  GROUP BY ALL
),
flds AS (
  SELECT ticket, to_json(map_from_entries(list((k, v) ORDER BY k) FILTER (WHERE v IS NOT NULL))) AS fields
  FROM fl GROUP BY ticket
)
SELECT a.ticket AS number,
  {final_simple},
  coalesce(tags.tags, []::VARCHAR[]) AS tags,
  a.contact,
  coalesce(CAST(flds.fields AS VARCHAR), '{{}}') AS fields,
  coalesce(a.created_ts, a.first_ts) AS created_at,
  coalesce(a.updated_at, a.created_ts, a.first_ts) AS updated_at,
  a.first_response_at,
  CASE WHEN coalesce(a.status, 'new') = 'resolved' THEN st1.last_status_ts
       WHEN a.status = 'closed' THEN coalesce(st2.last_resolved_ts, st2.first_closed_ts) END AS resolved_at,
  CASE WHEN a.status = 'closed' THEN st1.last_status_ts END AS closed_at,
  a.last_customer_at, a.last_agent_at,
  a.messages_in::INTEGER AS messages_in, a.messages_out::INTEGER AS messages_out, a.notes::INTEGER AS notes,
  coalesce(st1.reopened, 0)::INTEGER AS reopened,
  coalesce(a.routed_seq, 0) AS routed_seq,
  coalesce(a.intake_seq, 0) AS intake_seq,
  coalesce(a.last_seq, 0) AS last_seq
FROM a
LEFT JOIN st1 USING (ticket) LEFT JOIN st2 USING (ticket) LEFT JOIN tags USING (ticket) LEFT JOIN flds USING (ticket)
"""


def ticket_select_sql(source: str) -> str:
    """The fold with the snapshot's column order and types, sorted by number."""
    cols = ", ".join(f'CAST("{c}" AS {"VARCHAR" if t == "JSON" else t}) AS "{c}"' for c, t in TICKET_COLUMNS.items())
    return f"SELECT {cols} FROM ({fold_sql(source)}) ORDER BY number"
