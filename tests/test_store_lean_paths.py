"""Issue 16: the cheaper paths give the same answers as the full ones.

- a report or `tix list` creates only the views its SQL names (and those they read);
- `tix rebuild` keeps only the part of each event a fold reads, under a DuckDB memory limit,
  and folds contacts a chunk at a time: the same snapshot as folding everything at once;
- a snapshot refresh copies the log tail in blocks (commit marks, messages, lines without a
  ticket): the same rows as a rebuild;
- an HTML report's charts are kept by a digest of what they show, and used again.
No timing here: the figures are in bench/ (bench_growth.py, bench_store.py, bench_reports.py).
"""
from __future__ import annotations

import io
import shutil

import duckdb

from tests.plugins.reports import NOW
from tix.reports import render, run_report
from tix.store import Store, history, views
from tix.store import reader as readermod
from tix.store import store as storemod
from tix.tickets import create_ticket, get_ticket, set_fields, tag
from tix.tickets.bulk import bulk_update


def _names(con) -> set[str]:
    rows = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal "
                       "UNION SELECT table_name FROM duckdb_tables()").fetchall()
    return {r[0] for r in rows}


def _fill(store: Store, n: int = 6) -> None:
    with store.writing(actor="user:a", via="t") as b:
        cids = []
        for i in range(3):
            cids.append(b.new_contact_id())
            b.emit("contact.created", contact=cids[-1], data={"name": f"C {i}", "emails": [f"c{i}@example.com"],
                                                              "phones": [], "fields": {}})
        for i in range(n):
            create_ticket(b, f"t{i} \"quoted\" \\ text", team="billing", contact=cids[i % 3])
    with store.writing(actor="user:a", via="t") as b:
        for i in range(1, n + 1, 2):
            row = get_ticket(b, i)
            set_fields(b, row, {"status": "pending", "fields.order_id": f"PO-{i}"})
            tag(b, row, add=["vip"])
        b.emit("message.received", ticket=2, data={"message": "m1", "channel": "email", "text": "x" * 5000,
                                                    "auto": False})
        b.emit("message.sent", ticket=2, data={"message": "m2", "channel": "email", "text": "reply", "auto": True})
        b.emit("contact.updated", contact=cids[0], data={"set": {"name": "Renamed", "fields.city": "Bandung"},
                                                   "add_phones": ["6281100"]})


def _rows(store: Store, kind: str = "tickets"):
    key = "number" if kind == "tickets" else "id"
    return store.connect().execute(f"SELECT * FROM {kind} ORDER BY {key}").fetchall()


def _rebuilt(store: Store, tmp_path, name: str) -> Store:
    copy = tmp_path / name
    shutil.copytree(store.root, copy)
    shutil.rmtree(copy / "snapshot")
    (copy / "snapshot").mkdir()
    other = Store(copy)
    other.rebuild()
    return other


def test_only_the_named_views_and_what_they_read_are_created(store):
    _fill(store)
    reader = store.read()
    con = reader.connect(only={"tickets"})
    assert {"tickets"} <= _names(con) and not {"events", "messages", "contacts", "sla"} & _names(con)
    con = reader.connect(only=views.names_used("SELECT count(*) FROM messages"))
    assert {"events", "messages"} <= _names(con) and "tickets" not in _names(con)
    history.register(con, store, upto=reader.end, only={"messages"})  # names no history view: none made
    assert "history" not in _names(con)
    assert con.execute("SELECT getvariable('tix_exclude_tags')").fetchall()[0][0]  # the excluded() macro's list
    con = reader.connect(only={"backlog_changes"})
    history.register(con, store, upto=reader.end, only={"backlog_changes"})
    assert {"history", "backlog_changes"} <= _names(con) and not {"replies", "first_responses"} & _names(con)
    con = reader.connect(only={"first_responses"})
    history.register(con, store, upto=reader.end, only={"first_responses"})
    assert {"tickets", "excluded_tickets", "replies", "first_responses"} <= _names(con)
    full = reader.connect()
    history.register(full, store, upto=reader.end)
    assert con.execute("SELECT * FROM first_responses ORDER BY ticket").fetchall() == \
        full.execute("SELECT * FROM first_responses ORDER BY ticket").fetchall()


def test_a_view_named_anywhere_in_a_report_is_created(store):
    """A name in a string or a comment counts (a superset is harmless; a missing view is not)."""
    assert {"tickets", "events"} <= views.names_used("SELECT * FROM query_table('TICKETS') -- events")


def test_every_report_gives_what_it_gave_with_every_view(report_store, monkeypatch):
    names = ["backlog", "weekly", "response-times", "volume", "agents", "sla"]
    week = {n: None if n == "backlog" else "2026-W47" for n in names}
    lean = {n: run_report(report_store, n, week=week[n], now=NOW) for n in names}
    monkeypatch.setattr("tix.reports.run.names_used", lambda *texts: {"sla"})  # forces every view
    for n in names:
        full = run_report(report_store, n, week=week[n], now=NOW)
        assert [(s.name, s.columns, s.rows, s.note) for s in lean[n].sections] == \
            [(s.name, s.columns, s.rows, s.note) for s in full.sections], n


def test_rebuild_under_a_small_memory_limit_and_in_contact_chunks_equals_the_refreshed_snapshot(
        store, tmp_path, monkeypatch):
    _fill(store, 9)
    store.refresh_snapshot()
    tickets, contacts = _rows(store), _rows(store, "contacts")
    monkeypatch.setattr(storemod, "REBUILD_MEMORY", "64MB")
    monkeypatch.setattr(storemod, "CONTACT_CHUNK", 1)
    other = _rebuilt(store, tmp_path, "rebuilt")
    assert _rows(other) == tickets
    assert _rows(other, "contacts") == contacts
    assert other.snapshot.meta()["max_contact"] == store.read().max_contact == 3
    assert len(contacts) == 3


def test_a_refresh_of_a_tail_with_messages_marks_and_contact_lines_equals_a_rebuild(store, tmp_path, monkeypatch):
    _fill(store)
    store.refresh_snapshot()
    _fill(store, 4)  # a tail: created, updated, tagged, messages (one long), contact lines, commit marks
    monkeypatch.setattr(readermod, "_copy_tail", _small_blocks(readermod._copy_tail))
    store.refresh_snapshot()
    assert _rows(store) == _rows(_rebuilt(store, tmp_path, "rebuilt"))


def _small_blocks(copy):
    def run(log, start, end, fh):
        return copy(log, start, end, fh, chunk=97)  # lines cut across blocks
    return run


def test_bulk_update_of_tags_only_and_fields_only(store):
    _fill(store)
    result = bulk_update(store, "", numbers=[1, 2, 3], add_tags=["x"], confirmed=True, actor="user:a")
    assert result.changed == 3
    result = bulk_update(store, "", numbers=[1, 2], set_pairs=["order_id=PO-9"], confirmed=True, actor="user:a")
    assert result.changed == 2
    rows = store.connect().execute("SELECT number, tags, fields->>'$.order_id' FROM tickets WHERE number <= 3 "
                                   "ORDER BY number").fetchall()
    assert rows == [(1, ["vip", "x"], "PO-9"), (2, ["x"], "PO-9"), (3, ["vip", "x"], "PO-3")]


def _html(store) -> str:
    result = run_report(store, "weekly", week="2026-W47", now=NOW, locale="en")
    out = io.StringIO()
    render(result, "html", out, template_dirs=[store.path("templates")])
    return out.getvalue()


def test_charts_are_drawn_once_and_used_again(report_store):
    first = _html(report_store)
    cached = sorted(report_store.path("snapshot", "charts").glob("*.svg"))
    assert len(cached) == first.count("<svg") == 3
    assert _html(report_store) == first
    cached[0].write_text('<svg class="chart">from the cache</svg>', encoding="utf-8")
    assert "from the cache" in _html(report_store)  # used as it is: nothing drawn again


def test_charts_are_drawn_when_the_cache_cannot_be_written(report_store):
    first = _html(report_store)
    shutil.rmtree(report_store.path("snapshot", "charts"))
    report_store.path("snapshot", "charts").write_text("not a directory", encoding="utf-8")
    assert _html(report_store) == first


def test_the_yardstick_query_of_the_benches_reads_the_snapshot(store):
    """bench_growth.py times a bare DuckDB query of the snapshot's Parquet beside each command."""
    _fill(store)
    store.refresh_snapshot()
    meta = store.snapshot.meta()
    path = str(store.path("snapshot", meta["tickets"]))
    rows = duckdb.sql(f"SELECT team, count(*) FROM read_parquet('{path}') "
                      "WHERE status IN ('new', 'open', 'pending') GROUP BY team").fetchall()
    assert rows == [("billing", 6)]


def test_a_read_with_a_tail_registers_it_without_pyarrow_and_the_same_rows(store, tmp_path):
    """Issue 16: the tail's folded rows went to DuckDB as an Arrow table, so every read after
    a write imported pyarrow and numpy (about 0.25 s, 50 MB); now one JSON parameter. Same
    types, same rows as the Arrow table."""
    import subprocess
    import sys

    from tix.model import CONTACT_COLUMNS, TICKET_COLUMNS
    from tix.store.snapshot import register_rows, rows_to_arrow

    _fill(store)
    store.refresh_snapshot()
    _fill(store, 3)  # a tail: new tickets, changed ones, contacts
    reader = store.read()
    assert reader.state.tickets and reader.state.contacts
    for rows, columns in ((reader.state.tickets, TICKET_COLUMNS), (reader.state.contacts, CONTACT_COLUMNS)):
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.register("a", rows_to_arrow(list(rows.values()), columns))
        register_rows(con, "b", list(rows.values()), columns)
        assert con.execute("DESCRIBE a").fetchall() == con.execute("DESCRIBE b").fetchall()
        assert sorted(con.execute("SELECT * FROM a").fetchall(), key=repr) == \
            sorted(con.execute("SELECT * FROM b").fetchall(), key=repr)
    code = ("import sys; from tix.store import Store; s = Store.open(sys.argv[1]); "
            "print(s.connect().execute('SELECT count(*) FROM tickets').fetchall()[0][0], 'pyarrow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(store.root)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["9", "False"]


def _excluded_now(store: Store, reader=None) -> tuple[list[int], list[int]]:
    """(excluded_tickets as a report gets it, the same table computed from every ticket's tags)."""
    reader = reader or store.read()
    con = reader.connect()
    history.register(con, store, upto=reader.end, reader=reader)
    got = sorted(r[0] for r in con.execute("SELECT ticket FROM excluded_tickets").fetchall())
    con.execute(history.VIEWS_SQL[0].replace("excluded_tickets", "_live_excluded"))
    return got, sorted(r[0] for r in con.execute("SELECT ticket FROM _live_excluded").fetchall())


def test_a_read_with_a_tail_and_its_query_share_one_duckdb_connection(store, monkeypatch):
    """Issue 16: a reader with a tail read the snapshot rows of the tail's tickets on a DuckDB
    connection of its own, and its caller then opened another for the views (15-20 ms each,
    on most reads: a store usually has a tail). `tix list` gets the reader's; a report lends
    the reader the one its files were parsed with. The rows are the same."""
    _fill(store)
    store.refresh_snapshot()
    _fill(store, 3)
    query = "SELECT number, status, priority, updated_at FROM tickets ORDER BY number"
    expected = store.read().connect().execute(query).fetchall()
    opened = []
    real = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: opened.append(1) or real(*a, **k))
    reader = store.read()
    assert reader.state.tickets and len(opened) == 1  # the tail's snapshot rows were read
    con = reader.connect()
    assert len(opened) == 1 and con.execute(query).fetchall() == expected  # handed over, not opened again
    assert reader.connect() is not con and len(opened) == 2  # only once: the next caller gets its own
    run_report(store, "backlog", now=NOW)  # (the first builds the history cache, on connections of its own)
    opened.clear()
    run_report(store, "backlog", now=NOW)
    assert len(opened) == 1  # the report's files were parsed on it, the reader read on it, it ran on it


def test_the_snapshots_excluded_tickets_are_kept_and_the_tail_still_counts(store):
    """Issue 16: reading every ticket's tags for `excluded_tickets` was 0.05 s of each report
    at a million tickets. The snapshot's part is kept in snapshot/history/excluded.json, keyed
    by the snapshot's files and the tags asked for; tickets the tail changed are taken from the
    tail. Always the table computed from every ticket's tags."""
    _fill(store, 8)
    with store.writing(actor="user:a", via="t") as b:
        for n in (2, 3, 5):
            tag(b, get_ticket(b, n), add=["spam" if n != 5 else "auto"])
    store.refresh_snapshot()
    kept = store.path("snapshot", "history", "excluded.json")
    got, live = _excluded_now(store)
    assert got == live == [2, 3, 5]
    first = kept.read_bytes()
    assert b'"tickets":[2,3,5]' in first
    with store.writing(actor="user:a", via="t") as b:  # a tail: one more, one less, a new ticket
        tag(b, get_ticket(b, 3), remove=["spam"])
        tag(b, get_ticket(b, 7), add=["otomatis"])
        create_ticket(b, "new one", team="billing")
    with store.writing(actor="user:a", via="t") as b:
        tag(b, get_ticket(b, 9), add=["spam"])
    got, live = _excluded_now(store)
    assert got == live == [2, 5, 7, 9]
    assert kept.read_bytes() == first  # the same snapshot: the kept answer was used
    # the backlog leaves them out (its open tickets are read without their tags: excluded_tickets)
    reader = store.read()
    con = reader.connect()
    open_now = {r[0] for r in con.execute("SELECT number FROM tickets WHERE status IN ('new', 'open', 'pending')")
                .fetchall()}
    summary = {r["metric"]: r["value"] for r in run_report(store, "backlog", now=NOW).section("summary").dicts()}
    assert len(open_now) == 9 and summary["open_tickets"] == len(open_now - {2, 5, 7, 9}) == 5
    kept.write_bytes(b'{"key": "' + b"0" * 64 + b'", "tickets": [1, 4]}')  # another key: not used
    assert _excluded_now(store) == ([2, 5, 7, 9], [2, 5, 7, 9])
    kept.write_bytes(b"\x00garbage")
    assert _excluded_now(store) == ([2, 5, 7, 9], [2, 5, 7, 9])
    assert kept.read_bytes() == first
    store.refresh_snapshot()  # new snapshot files: a new key
    assert _excluded_now(store) == ([2, 5, 7, 9], [2, 5, 7, 9])
    assert b'"tickets":[2,5,7,9]' in kept.read_bytes()
    with open(store.path("tix.yaml"), "a") as fh:
        fh.write("\nreports:\n  exclude_tags: [vip]\n")
    store = Store.open(store.root)
    got, live = _excluded_now(store)
    assert got == live == [1, 3, 5, 7]


def test_opening_a_store_and_reading_imports_no_sqlite_or_secrets(store):
    """Issue 16: every command opens the store; the search index (SQLite) and the rewrite's
    plan id (secrets, which pulls in hmac and the OpenSSL hashes) are imported where used.
    (DuckDB imports secrets itself: this is for the commands that read without it, fetch.)"""
    import subprocess
    import sys

    _fill(store)
    code = ("import sys; from tix.store import Store; s = Store.open(sys.argv[1]); "
            "n = s.read().max_ticket; "
            "print(n, sorted(m for m in ('sqlite3', 'secrets', 'duckdb') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(store.root)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["6", "[]"]


def test_a_report_with_a_history_tail_registers_it_without_pyarrow_and_the_same_rows(store):
    """The history tail (events after the cache's last part) went to DuckDB as an Arrow table:
    every report on a store with any tail imported pyarrow (0.2 s at a million tickets). Now
    one JSON parameter (register_rows): same types, same rows."""
    import subprocess
    import sys

    from tix.store.snapshot import register_rows

    _fill(store)
    store.refresh_snapshot()
    h = history.History(store)
    h.build()
    _fill(store, 3)  # events after the cache: a tail
    rows, _pos, _seq = h.gap(h.meta(), store.log.end())
    assert rows
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("a", history._extracted_arrow(rows))
    register_rows(con, "b", [dict(zip(history._EXTRACTED, r, strict=True)) for r in rows], history._EXTRACTED)
    assert con.execute("DESCRIBE a").fetchall() == con.execute("DESCRIBE b").fetchall()
    ordered = "SELECT * FROM {} ORDER BY seq"
    assert con.execute(ordered.format("a")).fetchall() == con.execute(ordered.format("b")).fetchall()
    code = ("import sys; from tix.store import Store; from tix.reports import run_report; "
            "r = run_report(Store.open(sys.argv[1]), 'backlog'); "
            "print(r.section('summary').rows[0][1], 'pyarrow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(store.root)], capture_output=True, text=True, check=True)
    assert out.stdout.split()[1] == "False"
