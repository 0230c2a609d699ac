"""The store's DuckDB views, the names every report, rule and `tix sql` query reads.

`register(con, reader)` (called by `Reader.connect()`) creates on a connection:

- `tickets`, `contacts`: the snapshot's rows not touched by the log tail, plus the tail's
  folded rows (`_merged_view`); columns as in tix.model.
- `events`: every committed event of the JSONL log up to the reader's last seq
  (`_events_view`; torn, damaged and not yet committed lines are left out); columns
  `EVENT_COLUMNS`.
- `messages`: one row per message received or sent, from `events`. Columns: seq, ticket,
  direction ('in' for `message.received`, 'out' for `message.sent`), channel, ts (naive UTC
  TIMESTAMP), from, to, subject, auto (an auto-reply), actor (who recorded it: `user:NAME`,
  `rule:NAME`, `channel:NAME`…) and agent (NAME when the actor is `user:NAME`, the person
  who replied). It reads the whole log: fine for `tix sql` and a site's own reports; the
  built-in reports read the history views below instead.
- the stages' own views, through `VIEW_HOOKS` (e.g. `sla`, owned by tix.sla.views).

`tix sql` and every report also get the ticket history's views (tix.store.history:
`history`, `replies`, `resolutions`, `reopens`, `first_responses`, `ticket_periods`,
`backlog_changes`, `excluded_tickets`): what happened when, read from a Parquet cache of the
log instead of the log itself. They are registered by `history.register(con, store)`, not
here, because keeping the cache fresh reads the log's newest lines: a cost only those pay.

`run_sql(store, query)` runs one read-only statement over them (`tix sql`); `sandbox` and
`statements` lock down any connection that runs SQL from a file or a user (reports too).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from tix.errors import UsageError
from tix.model import CONTACT_COLUMNS, TICKET_COLUMNS
from tix.store.snapshot import register_rows

if TYPE_CHECKING:
    from tix.store.store import Store


def register(con, reader, only=None) -> None:
    """Create every view on `con` from what `reader` read (timestamps are naive UTC).

    `only`: the names a caller's SQL uses (`names_used`): just those views, and those they
    read, are created (a report that reads `tickets` pays for no `events` or `sla` view).
    """
    con.execute("SET TimeZone = 'UTC'")
    want = None if only is None else closure(only)
    if want is None or "tickets" in want:
        _merged_view(con, "tickets", "number", reader.snapshot_sql("tickets"), reader.state.tickets, TICKET_COLUMNS)
    if want is None or "contacts" in want:
        _merged_view(con, "contacts", "id", reader.snapshot_sql("contacts"), reader.state.contacts, CONTACT_COLUMNS)
    if want is None or "events" in want:
        _events_view(con, reader.store.log.dir, reader.last_seq)
    if want is None or "messages" in want:
        con.execute(MESSAGES_SQL)
    for hook in VIEW_HOOKS:
        if want is None or want & set(HOOK_VIEWS.get(hook, ())):
            _call_hook(hook, con, reader)


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def names_used(*texts: str) -> set[str]:
    """Every word of these SQL texts, lowercased: a superset of the views they read (a name
    in a comment or a string counts too, so no view a query reads is ever left out)."""
    return {w.lower() for text in texts for w in _WORD.findall(text or "")}


def closure(names) -> set[str]:
    """`names` with every view (of this module and of tix.store.history) the named ones read."""
    from tix.store.history import view_depends

    depends = {**BASE_DEPENDS, **view_depends()}
    out: set[str] = set()
    todo = [n for n in names if n in depends]
    while todo:
        name = todo.pop()
        if name not in out:
            out.add(name)
            todo.extend(depends[name])
    return out


# The views of this module and what each reads; views of the stages' hooks (HOOK_VIEWS) too.
BASE_DEPENDS: dict[str, tuple[str, ...]] = {"tickets": (), "contacts": (), "events": (), "messages": ("events",),
                                            "sla": ()}


def tail_table(name: str) -> str:
    """The table of the reader's tail rows behind view `name` (`tickets`, `contacts`), when
    the tail holds any."""
    return f"_tail_{name}"


def _merged_view(con, name: str, key: str, snap_sql: str | None, tail_rows: dict, columns: dict) -> None:
    """View `name` = snapshot rows not touched by the tail + the tail's folded rows.

    With an empty tail, no Arrow table is built (pyarrow is not even imported).
    """
    cast = ", ".join(f'CAST("{c}" AS JSON) AS "{c}"' if t == "JSON" else f'"{c}"' for c, t in columns.items())
    cols = ", ".join(f'"{c}"' for c in columns)
    if not tail_rows:
        if snap_sql is None:
            empty = ", ".join(f'NULL::{"VARCHAR" if t == "JSON" else t} AS "{c}"' for c, t in columns.items())
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {cast} FROM (SELECT {empty}) WHERE false")
        else:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {cast} FROM ({snap_sql})")
        return
    tail_name = tail_table(name)
    register_rows(con, tail_name, list(tail_rows.values()), columns)
    if snap_sql is None:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {cast} FROM {tail_name}")
        return
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {cast} FROM ("
        f"SELECT {cols} FROM ({snap_sql}) WHERE {key} NOT IN (SELECT {key} FROM {tail_name}) "
        f"UNION ALL SELECT {cols} FROM {tail_name})"
    )


# Further views, owned by other stages: "module:function(con, reader)". A stage whose module
# is not there yet is skipped; an error inside a present module is raised.
VIEW_HOOKS = ("tix.sla.views:register",)
HOOK_VIEWS = {"tix.sla.views:register": ("sla",)}


def _call_hook(target: str, con, reader) -> None:
    import importlib

    module, func = target.split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return
        raise
    getattr(mod, func)(con, reader)


EVENT_COLUMNS = {"seq": "BIGINT", "ts": "TIMESTAMP", "actor": "VARCHAR", "via": "VARCHAR",
                 "type": "VARCHAR", "ticket": "BIGINT", "contact": "BIGINT", "data": "JSON", "why": "VARCHAR"}


def _events_view(con, events_dir: Path, upto: int) -> None:
    files = sorted(events_dir.glob("*.jsonl")) if events_dir.is_dir() else []
    if not files:
        cols = ", ".join(f"NULL::{t} AS {c}" for c, t in EVENT_COLUMNS.items())
        con.execute(f"CREATE OR REPLACE TEMP VIEW events AS SELECT {cols} WHERE false")
        return
    glob = str(events_dir / "*.jsonl").replace("'", "''")
    columns = "{" + ", ".join(f"'{c}': '{t}'" for c, t in EVENT_COLUMNS.items()) + "}"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW events AS SELECT * FROM read_json('{glob}', "
        f"format='newline_delimited', columns={columns}, ignore_errors=true) WHERE seq <= {int(upto)}"
    )


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


ALLOWED_STATEMENTS = ("SELECT", "EXPLAIN")
_TEMP_CREATE = ("CREATE TEMP ", "CREATE TEMPORARY ", "CREATE OR REPLACE TEMP ", "CREATE OR REPLACE TEMPORARY ")


def sandbox(con, store: Store) -> None:
    """Lock a DuckDB connection down before it runs SQL from a file or a user.

    It may read the store's files and nothing else, write no file, and change no setting
    afterwards (`lock_configuration`): `COPY … TO`, `ATTACH`, `read_csv('/etc/…')` and
    `SET enable_external_access` all fail. DuckDB's temp directory (which it may use when
    short of memory, and which stays readable) is moved into the store's `state/`, away from
    the current directory. Used by `tix sql` and every report.
    """
    root = str(store.root) + "/"
    con.execute("SET temp_directory = ?", [str(store.path("state", "duckdb-tmp"))])
    con.execute("SET allowed_directories = ?", [[root]])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def statements(con, sql: str, allowed=ALLOWED_STATEMENTS, temp_create: bool = False) -> list:
    """Parse `sql` into statements, refusing any kind not in `allowed` (UsageError).

    With `temp_create`, `CREATE TEMP TABLE/VIEW/MACRO …` is allowed too (a report's setup
    section); nothing else that writes.
    """
    import duckdb

    try:
        found = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise UsageError(f"SQL does not parse: {str(exc).splitlines()[0]}") from None
    for st in found:
        kind = st.type.name
        text = " ".join(st.query.split()).upper()
        if kind in allowed or (temp_create and kind == "CREATE" and text.startswith(_TEMP_CREATE)):
            continue
        what = "SELECT or CREATE TEMP" if temp_create else "SELECT"
        raise UsageError(f"only read-only queries ({what}) are allowed, not {kind}")
    return found


def run_sql(store: Store, query: str) -> list[dict]:
    """Run one read-only query over the store's views; anything but a SELECT is refused."""
    import duckdb

    from tix.store import history

    reader = store.read()
    con = reader.connect()
    found = statements(con, query)
    if len(found) != 1:
        raise UsageError("give exactly one SQL statement")
    history.register(con, store, upto=reader.end, reader=reader)  # the history views (tix.store.history) too
    sandbox(con, store)
    try:
        cur = con.execute(found[0])
    except duckdb.Error as exc:
        raise UsageError(f"SQL error: {str(exc).splitlines()[0]}") from None
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
