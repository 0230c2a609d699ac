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


def events_source(glob: str, longest: int | None = None) -> str:
    """The events of JSONL files as a relation. `longest`, the longest line's length when
    the caller knows it, sizes DuckDB's read buffers (by default 32 MB a thread)."""
    g = glob.replace("'", "''")
    size = f", maximum_object_size={max(1 << 20, 2 * int(longest))}" if longest is not None else ""
    return (f"read_json('{g}', format='newline_delimited', ignore_errors=true{size}, columns={{seq: 'BIGINT', "
            f"ts: 'TIMESTAMP', type: 'VARCHAR', ticket: 'BIGINT', contact: 'BIGINT', data: 'JSON'}})")


def empty_base() -> str:
    """A relation with the snapshot's ticket columns and no rows (the base of a full rebuild)."""
    cols = ", ".join(f'NULL::{"VARCHAR" if t == "JSON" else t} AS "{c}"' for c, t in TICKET_COLUMNS.items())
    return f"(SELECT {cols} WHERE false)"


FIELDS = (*SIMPLE, "contact")


def extract_sql(source: str) -> str:
    """SELECT of the events of `source` with what the fold reads of their data as typed
    columns: each event's JSON is parsed here once, and the fold works on these columns.

    `f_<field>` is the JSON value a `ticket.created`/`ticket.updated` sets the field to (a JSON
    `null` when it clears it, SQL NULL when it leaves it alone); `data` is kept for contact
    events only (folded in Python), never a message's text.
    """
    created_paths = ", ".join(f"'$.{f}'" for f in FIELDS)
    updated_paths = ", ".join(f"'$.set.{f}'" for f in FIELDS)
    fields = ", ".join(f"v[{i}] AS f_{f}" for i, f in enumerate(FIELDS, start=1))
    return f"""
SELECT seq, ts, type, ticket, contact, {fields}, auto, upto, tag_add, tag_remove, fmap, data FROM (
  SELECT seq, ts, type, ticket, contact,
    CASE type WHEN 'ticket.created' THEN json_extract(data, [{created_paths}])
              WHEN 'ticket.updated' THEN json_extract(data, [{updated_paths}]) END AS v,
    CASE WHEN type = 'message.sent'
         THEN coalesce(TRY_CAST(json_extract_string(data, '$.auto') AS BOOLEAN), false) END AS auto,
    CASE WHEN type = 'ticket.routed' THEN TRY_CAST(json_extract_string(data, '$.upto') AS BIGINT) END AS upto,
    CASE type WHEN 'ticket.created' THEN json_extract_string(data, '$.tags[*]')
              WHEN 'ticket.tagged' THEN json_extract_string(data, '$.add[*]') END AS tag_add,
    CASE WHEN type = 'ticket.tagged' THEN json_extract_string(data, '$.remove[*]') END AS tag_remove,
    CASE WHEN type = 'ticket.created' AND contains(CAST(data AS VARCHAR), '"fields":')
              THEN CAST(json_extract(data, '$.fields') AS MAP(VARCHAR, JSON))
         WHEN type = 'ticket.updated' AND contains(CAST(data AS VARCHAR), '"fields.')
              THEN map_from_entries(list_filter(
                  map_entries(CAST(json_extract(data, '$.set') AS MAP(VARCHAR, JSON))),
                  lambda kv: starts_with(kv.key, 'fields.'))) END AS fmap,
    CASE WHEN starts_with(type, 'contact.') THEN data END AS data
  FROM {source}
)"""


def fold_sql(source: str, base: str | None = None, extracted: bool = False) -> str:
    """SELECT producing one row per ticket named in `source`, folded on top of its `base` row.

    `source` is an events relation, or with `extracted` one that is already `extract_sql`
    of it (`tix rebuild` keeps that in a table: the JSON is parsed while it is read);
    `base` a relation with the snapshot's ticket columns (the state before the first event
    of `source`), or None for a fold from nothing.

    The aggregates each read only the rows and narrow columns they need: counts and times
    over every event, the last value of each field over the field-setting events only
    (taken as JSON, turned into a value once per ticket), status times over the status
    changes only, tags and custom fields over the few events that touch them.
    """
    base = base or empty_base()
    quiet = _lit(sorted(_QUIET))
    opened = _lit(OPEN_STATUSES)
    events = (f"SELECT * FROM {source} WHERE ticket IS NOT NULL" if extracted
              else f"SELECT * FROM ({extract_sql(source)}) WHERE ticket IS NOT NULL")
    last_values = ",\n    ".join(f"arg_max(f_{f}, seq) FILTER (WHERE f_{f} IS NOT NULL) AS {f}" for f in FIELDS)
    final_simple = ",\n  ".join(
        f"CASE WHEN f.{f} IS NOT NULL THEN json_extract_string(f.{f}, '$') WHEN b.number IS NOT NULL THEN b.{f} "
        f"ELSE {DEFAULTS.get(f, 'NULL')} END AS {f}"
        for f in SIMPLE)
    return f"""
WITH e AS {"NOT MATERIALIZED" if extracted else "MATERIALIZED"} ({events}),
b AS MATERIALIZED (SELECT * FROM {base} WHERE number IN (SELECT DISTINCT ticket FROM e)),
a AS (
  SELECT ticket,
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
f AS (
  SELECT ticket,
    {last_values}
  FROM e WHERE type IN ('ticket.created', 'ticket.updated') GROUP BY ticket
),
st AS (
  SELECT s.ticket, s.seq, s.ts, s.type, s.new_status,
         coalesce(lag(s.new_status) OVER (PARTITION BY s.ticket ORDER BY s.seq),
                  CASE WHEN s.type = 'ticket.updated' THEN coalesce(b.status, 'new') END) AS prev
  FROM (SELECT ticket, seq, ts, type, json_extract_string(f_status, '$') AS new_status
        FROM e WHERE f_status IS NOT NULL) s
  LEFT JOIN b ON b.number = s.ticket
),
st1 AS (
  SELECT ticket,
    count(*) FILTER (WHERE type = 'ticket.updated' AND new_status IN {opened}
                     AND prev IN ('resolved', 'closed')) AS reopened,
    max(seq) FILTER (WHERE new_status IN {opened}) AS last_open_seq,
    arg_max(ts, seq) AS last_status_ts,
    arg_max(new_status, seq) AS status
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
  SELECT ticket, list(tag) FILTER (WHERE present) AS present, list(tag) AS touched
  FROM (SELECT ticket, tag, arg_max(is_add, k) AS present FROM tg GROUP BY ticket, tag) GROUP BY ticket
),
fl AS (
  SELECT ticket, CASE WHEN starts_with(kv.key, 'fields.') THEN kv.key[8:] ELSE kv.key END AS k,
         arg_max_null(kv.value, seq) AS v
  FROM (SELECT ticket, seq, unnest(map_entries(fmap)) AS kv FROM e WHERE cardinality(fmap) > 0)
  GROUP BY ALL
),
flds AS (
  SELECT ticket, list(k) AS touched, list({{'key': k, 'value': v}}) FILTER (WHERE v IS NOT NULL) AS kept
  FROM fl GROUP BY ticket
)
SELECT a.ticket AS number,
  {final_simple},
  CASE WHEN tags.ticket IS NULL THEN coalesce(b.tags, []::VARCHAR[]) ELSE list_sort(list_distinct(list_concat(
      list_filter(coalesce(b.tags, []::VARCHAR[]), lambda x: NOT list_contains(tags.touched, x)),
      coalesce(tags.present, []::VARCHAR[])))) END AS tags,
  CASE WHEN f.contact IS NOT NULL THEN TRY_CAST(json_extract_string(f.contact, '$') AS BIGINT)
       ELSE b.contact END AS contact,
  CASE WHEN flds.ticket IS NULL THEN coalesce(CAST(b.fields AS VARCHAR), '{{}}') ELSE
    CAST(to_json(map_from_entries(list_sort(list_concat(
      list_filter(map_entries(CAST(CAST(coalesce(b.fields, '{{}}') AS JSON) AS MAP(VARCHAR, JSON))),
                  lambda kv: NOT list_contains(flds.touched, kv.key)),
      coalesce(flds.kept, []))))) AS VARCHAR) END AS fields,
  coalesce(a.created_ts, b.created_at, a.first_ts) AS created_at,
  coalesce(a.updated_at, b.updated_at, a.created_ts, a.first_ts) AS updated_at,
  coalesce(b.first_response_at, a.first_response_at) AS first_response_at,
  CASE WHEN st1.ticket IS NULL THEN b.resolved_at
       WHEN st1.status = 'resolved' THEN st1.last_status_ts
       WHEN st1.status = 'closed'
            THEN coalesce(st2.last_resolved_ts, CASE WHEN st1.last_open_seq IS NULL THEN b.resolved_at END,
                          st2.first_closed_ts) END AS resolved_at,
  CASE WHEN st1.ticket IS NULL THEN b.closed_at
       WHEN st1.status = 'closed' THEN st1.last_status_ts END AS closed_at,
  coalesce(a.last_customer_at, b.last_customer_at) AS last_customer_at,
  coalesce(a.last_agent_at, b.last_agent_at) AS last_agent_at,
  (coalesce(b.messages_in, 0) + a.messages_in)::INTEGER AS messages_in,
  (coalesce(b.messages_out, 0) + a.messages_out)::INTEGER AS messages_out,
  (coalesce(b.notes, 0) + a.notes)::INTEGER AS notes,
  (coalesce(b.reopened, 0) + coalesce(st1.reopened, 0))::INTEGER AS reopened,
  coalesce(a.routed_seq, b.routed_seq, 0) AS routed_seq,
  coalesce(a.intake_seq, b.intake_seq, 0) AS intake_seq,
  coalesce(a.last_seq, b.last_seq, 0) AS last_seq
FROM a
LEFT JOIN b ON b.number = a.ticket
LEFT JOIN f USING (ticket)
LEFT JOIN st1 USING (ticket) LEFT JOIN st2 USING (ticket) LEFT JOIN tags USING (ticket) LEFT JOIN flds USING (ticket)
"""


def ticket_select_sql(source: str, base: str | None = None, extracted: bool = False) -> str:
    """The fold with the snapshot's column order and types, sorted by number."""
    cols = ", ".join(f'CAST("{c}" AS {"VARCHAR" if t == "JSON" else t}) AS "{c}"' for c, t in TICKET_COLUMNS.items())
    return f"SELECT {cols} FROM ({fold_sql(source, base, extracted)}) ORDER BY number"


def plain_contacts_sql(events: str) -> str:
    """SELECT of the contact rows (`CONTACT_COLUMNS`, `fields` as VARCHAR) of the contacts whose
    only event is a plain `contact.created` -- a name (text or null), emails and phones (lists
    of text, or none) and no custom fields -- as `fold` makes them: nearly every contact of a
    store, taken in SQL on every core. Every other contact (updated, merged, erased, or
    created with custom fields or odd values) is left to the Python fold.

    `events` is `extract_sql` of the log (only `contact`, `type`, `ts` and `data` are read).
    """
    def texts(col: str) -> str:  # null, or a list of strings
        return (f"(json_type({col}) IS NULL OR json_type({col}) = 'NULL' OR (json_type({col}) = 'ARRAY' AND "
                f"coalesce(list_bool_and(list_transform(CAST({col} AS JSON[]), lambda x: json_type(x) = 'VARCHAR')), "
                f"true)))")

    def uniq(col: str) -> str:  # fold._uniq: the first of each value, in order
        return (f"list_filter(coalesce(CAST({col} AS VARCHAR[]), []::VARCHAR[]), "
                f"lambda x, i: list_position(coalesce(CAST({col} AS VARCHAR[]), []::VARCHAR[]), x) = i)")

    return f"""
SELECT contact AS id, json_extract_string(name, '$') AS name, {uniq('emails')} AS emails,
  {uniq('phones')} AS phones, '{{}}' AS fields, NULL::BIGINT AS merged_into, ts AS created_at, ts AS updated_at
FROM (
  SELECT contact, ts, json_extract(data, '$.name') AS name, json_extract(data, '$.emails') AS emails,
         json_extract(data, '$.phones') AS phones, json_extract(data, '$.fields') AS fields
  FROM (SELECT contact, count(*) AS n, any_value(type) AS type, any_value(ts) AS ts, any_value(data) AS data
        FROM {events} WHERE starts_with(type, 'contact.') AND contact IS NOT NULL GROUP BY contact)
  WHERE n = 1 AND type = 'contact.created'
)
WHERE coalesce(json_type(name), 'NULL') IN ('VARCHAR', 'NULL') AND {texts('emails')} AND {texts('phones')}
  AND coalesce(CAST(fields AS VARCHAR), 'null') IN ('null', '{{}}')"""
