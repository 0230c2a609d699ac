"""The `messages` DuckDB view: one row per message received or sent, from the event log.

Registered on every connection by `Reader.connect()` (see `VIEW_HOOKS` in tix.store).
Columns: seq, ticket, direction ('in' for `message.received`, 'out' for `message.sent`),
channel, ts (naive UTC TIMESTAMP), from, to, subject, auto (an auto-reply), actor (who
recorded it: `user:NAME`, `rule:NAME`, `channel:NAME`…) and agent (NAME when the actor
is `user:NAME`, the person who replied).

It reads the `events` view, i.e. the whole JSONL log: fine for `tix sql` and a site's own
reports; the built-in reports use the counters on `tickets` instead.
"""
from __future__ import annotations

MESSAGES_SQL = """
CREATE OR REPLACE TEMP VIEW messages AS
SELECT seq,
       ticket,
       CASE type WHEN 'message.received' THEN 'in' ELSE 'out' END AS direction,
       data->>'$.channel' AS channel,
       ts,
       data->>'$.from' AS "from",
       CASE WHEN json_type(data, '$.to') = 'ARRAY'
            THEN array_to_string(CAST(data->'$.to' AS VARCHAR[]), ', ')
            ELSE data->>'$.to' END AS "to",
       data->>'$.subject' AS subject,
       coalesce(TRY_CAST(data->>'$.auto' AS BOOLEAN), false) AS auto,
       actor,
       CASE WHEN actor LIKE 'user:%' THEN substr(actor, 6) END AS agent
FROM events
WHERE type IN ('message.received', 'message.sent')
"""


def register(con, reader) -> None:
    """Create the `messages` view on `con` (the `events` view must exist)."""
    con.execute(MESSAGES_SQL)
