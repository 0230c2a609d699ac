"""The ticket history behind the reports (tix.store.history): one fold, three ways to run it.

The cache is built from the whole log (DuckDB, a segment at a time), brought up to date from
the log's new lines (Python decodes them, DuckDB folds them on top of each ticket's last row),
or extended in memory by a reader. For any sequence of events all three must give the rows
that a plain reading of the events gives (`reference` below), and their last state must be
the ticket fold's (the backlog is computed as "open now, minus later changes").
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tix.store import Store, history
from tix.store.history import History

OPEN, DONE = ("new", "open", "pending"), ("resolved", "closed")
STATUSES = ("new", "open", "pending", "resolved", "closed")
TEAMS = (None, "support", "billing")
AGENTS = (None, "ani", "budi")
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- events --------------------------------------------------------------------------------------
@st.composite
def event_lists(draw):
    """A plausible log: tickets created first, then changes, messages and outbox outcomes."""
    n_tickets = draw(st.integers(1, 4))
    out, created, outboxes = [], set(), []
    t = T0
    for _ in range(draw(st.integers(1, 40))):
        t += timedelta(minutes=draw(st.sampled_from([0, 1, 7, 60, 600, 3000])))
        number = draw(st.integers(1, n_tickets))
        actor = draw(st.sampled_from(["user:ani", "user:budi", "rule:r", "system", "channel:email"]))
        if number not in created:
            created.add(number)
            data = {"subject": "s", "status": draw(st.sampled_from(["new", "new", "open", "closed"]))}
            team, agent = draw(st.sampled_from(TEAMS)), draw(st.sampled_from(AGENTS))
            if team:
                data["team"] = team
            if agent:
                data["assignee"] = agent
            out.append(("ticket.created", number, data, t, actor))
            continue
        kind = draw(st.sampled_from(["status", "status", "team", "assignee", "priority", "in", "out", "out",
                                     "failed", "tag"]))
        if kind in ("status", "team", "assignee", "priority"):
            change = {"status": st.sampled_from(STATUSES), "team": st.sampled_from(TEAMS),
                      "assignee": st.sampled_from(AGENTS), "priority": st.sampled_from(["low", "high"])}
            keys = {kind, *draw(st.lists(st.sampled_from(["status", "team", "assignee"]), max_size=2))}
            data = {"set": {k: draw(change[k]) for k in keys}, "old": {}}
            out.append(("ticket.updated", number, data, t, actor))
        elif kind == "in":
            out.append(("message.received", number, {"channel": "email", "text": "halo \"auto\":true",
                                                      "auto": draw(st.booleans())}, t, "channel:email"))
        elif kind == "out":
            oid = f"o{len(outboxes)}"
            outboxes.append((number, oid))
            out.append(("message.sent", number, {"outbox": oid, "state": "queued", "channel": "email",
                                                 "auto": draw(st.booleans())}, t, actor))
        elif kind == "failed" and outboxes:
            owner, oid = draw(st.sampled_from(outboxes))
            key = draw(st.sampled_from(["outbox", "id"]))  # older stores wrote `id`
            out.append(("outbox.failed", owner, {key: oid, "attempt": 1, "permanent": draw(st.booleans())}, t,
                        "system"))
        elif kind == "tag":
            out.append(("ticket.tagged", number, {"add": ["vip"]}, t, actor))
    return out


def write(store: Store, events) -> None:
    with store.writing(actor="system", via="test") as batch:
        for kind, number, data, t, actor in events:
            batch.emit(kind, ticket=number, data=data, ts=_iso(t), actor=actor)


# -- the definition, read plainly --------------------------------------------------------------
def reference(store: Store) -> list[dict]:
    import orjson

    rows, state = [], {}
    for ev, _pos in store.log.read():
        n, kind, d = ev.get("ticket"), ev["type"], ev.get("data") or {}
        if n is None:
            continue
        k = {"ticket.created": "created", "ticket.updated": "updated", "message.received": "in",
             "message.sent": "out", "outbox.failed": "failed"}.get(kind)
        if k is None or (k == "updated" and not {"status", "team", "assignee"} & set(d.get("set") or {})):
            continue
        if k == "failed" and not d.get("permanent"):
            continue
        s = state.get(n)
        before = dict(s) if s else None
        s = state[n] = dict(s) if s else {"status": None, "team": None, "assignee": None, "episode": 0,
                                           "episode_start": None, "resolved_by": None, "replies": 0}
        ts = datetime.fromisoformat(ev["ts"].replace("Z", "+00:00")).replace(tzinfo=None)
        if k == "created":
            s.update(status=d.get("status") or "new", team=d.get("team"), assignee=d.get("assignee"))
        elif k == "updated":
            for key in ("status", "team", "assignee"):
                if key in d["set"]:
                    s[key] = d["set"][key]
        prev = before["status"] if before else None
        event = None
        if k in ("created", "updated") and s["status"] in DONE and (prev is None or prev in OPEN):
            event, s["resolved_by"] = "resolution", ev["actor"]
        if k == "updated" and s["status"] in OPEN and prev in DONE:
            event, s["episode"] = "reopen", s["episode"] + 1
        if k == "updated" and event is None:
            for key in ("team", "status", "assignee"):  # what it changed, in this order
                if s[key] != before[key]:
                    event = key
                    break
        if k == "created" or event == "reopen":
            s["episode_start"] = ts
        auto = bool(d.get("auto")) if k in ("in", "out") else False
        if k == "out" and not auto:
            s["replies"] += 1
        rows.append({
            "seq": ev["seq"], "ts": ts, "ticket": n, "kind": k, "event": event, "actor": ev["actor"],
            "status": s["status"] or "new", "team": s["team"], "assignee": s["assignee"],
            "prev_status": prev, "prev_team": before["team"] if before else None,
            "prev_assignee": before["assignee"] if before else None,
            "is_open": (s["status"] or "new") in OPEN, "was_open": prev in OPEN,
            "episode": s["episode"], "episode_start": s["episode_start"], "resolved_by": s["resolved_by"],
            "replies": s["replies"], "reply_no": s["replies"] if k == "out" and not auto else None,
            "auto": auto, "outbox": (d.get("outbox") or d.get("id")) if k in ("out", "failed") else None})
    del orjson
    return rows


def cached_rows(con) -> list[dict]:
    cur = con.execute(f"SELECT {', '.join(history.COLUMNS)} FROM history ORDER BY seq")
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def fresh(tmp_path, name="s") -> Store:
    return Store.init(tmp_path / name)


# -- one fold, three ways ------------------------------------------------------------------------
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=event_lists(), cut=st.floats(0, 1))
def test_cold_build_catch_up_and_memory_tail_give_the_reference_rows(tmp_path_factory, events, cut):
    tmp = tmp_path_factory.mktemp("h")
    k = int(len(events) * cut)
    expected = None
    for how in ("cold", "catch_up", "memory"):
        store = fresh(tmp, how)
        write(store, events[:k])
        if how != "cold":
            History(store).build()  # the first part of the log: cached
        write(store, events[k:])
        if how == "catch_up":
            History(store).catch_up()
        if how == "cold":
            History(store).build()
        con = store.connect()
        history.register(con, store)  # "memory": the rest is folded in memory on top of the cache
        got = cached_rows(con)
        expected = expected or reference(store)
        assert got == expected, how
        # the last state of each ticket is the ticket fold's (the backlog relies on it)
        last = con.execute("SELECT ticket, arg_max_null(status, seq), arg_max_null(team, seq), "
                           "arg_max_null(assignee, seq) "
                           "FROM history WHERE kind IN ('created', 'updated') GROUP BY 1 ORDER BY 1").fetchall()
        now = con.execute("SELECT number, status, team, assignee FROM tickets "
                          "WHERE number IN (SELECT ticket FROM history WHERE kind = 'created') ORDER BY 1").fetchall()
        assert last == now
        # replies: a reply given up is `failed`; `first` is the first non-automatic one not given up
        failed = {(r["ticket"], r["outbox"]) for r in expected if r["kind"] == "failed"}
        want, seen = [], set()
        for r in expected:
            if r["kind"] == "out":
                f = (r["ticket"], r["outbox"]) in failed
                first = not r["auto"] and not f and r["ticket"] not in seen
                if first:
                    seen.add(r["ticket"])
                want.append((r["seq"], f, first))
        assert con.execute("SELECT seq, failed, first FROM replies ORDER BY seq").fetchall() == want
        # backlog_changes, read from each part's companion file of just those rows: the same rows
        assert con.execute("SELECT * FROM backlog_changes ORDER BY seq").fetchall() == con.execute(
            f"SELECT {history.CHANGES_COLUMNS} FROM history WHERE {history.CHANGES_WHERE} ORDER BY seq").fetchall()


def test_a_reader_far_behind_the_cache_writes_what_it_folded(tmp_path, monkeypatch):
    store = fresh(tmp_path)
    write(store, [("ticket.created", 1, {"status": "new"}, T0, "system")])
    h = History(store)
    h.build()
    monkeypatch.setattr(history, "WRITE_AT", 3)
    write(store, [("ticket.updated", 1, {"set": {"status": "open"}}, T0 + timedelta(hours=i), "user:ani")
                  for i in range(1, 5)])
    before = h.meta()["parts"]
    con = store.connect()
    history.register(con, store)
    assert len(h.meta()["parts"]) == len(before) + 1  # the 4 new rows became a part
    assert con.execute("SELECT count(*) FROM history").fetchall() == [(5,)]


def test_a_rewritten_log_rebuilds_the_cache(tmp_path):
    """An erasure rewrites the log under the lock: the saved position no longer follows its seq."""
    store = fresh(tmp_path)
    write(store, [("ticket.created", 1, {"status": "new"}, T0, "system"),
                  ("message.received", 1, {"text": "a long message " * 20}, T0, "channel:email")])
    h = History(store)
    h.build()
    seg = store.log.dir / store.log.segments()[0]
    seg.write_bytes(seg.read_bytes().replace(b"a long message " * 20, b"[erased]"))
    assert h.meta() is None  # stale: rebuilt on the next read
    con = store.connect()
    history.register(con, store)
    assert con.execute("SELECT count(*) FROM history").fetchall() == [(2,)]
    assert h.meta() is not None


def test_writers_keep_an_existing_cache_up_to_date(tmp_path):
    store = fresh(tmp_path)
    cfg = store.path("tix.yaml")
    cfg.write_text(cfg.read_text().replace("snapshot_every: 20000", "snapshot_every: 3"))
    store.reload_config()
    write(store, [("ticket.created", 1, {"status": "new"}, T0, "system")])
    History(store).build()
    write(store, [("ticket.updated", 1, {"set": {"status": "open"}}, T0 + timedelta(hours=i), "user:ani")
                  for i in range(1, 5)])  # a snapshot refresh: the cache follows
    meta = History(store).meta()
    assert meta["seq"] == store.log.last_event()["seq"]
    fresh_store = fresh(tmp_path, "other")
    write(fresh_store, [("ticket.created", 1, {"status": "new"}, T0, "system")] * 1)
    history.catch_up(fresh_store)  # no cache yet: a writer does not build one
    assert History(fresh_store).meta() is None


def test_a_store_this_user_may_only_read_folds_in_memory(tmp_path, monkeypatch):
    store = fresh(tmp_path)
    events = [("ticket.created", 1, {"status": "new"}, T0, "system"),
              ("ticket.updated", 1, {"set": {"status": "resolved"}}, T0 + timedelta(hours=2), "user:ani")]
    write(store, events)

    def refuse(self, *a, **kw):
        raise PermissionError(13, "Permission denied", str(self.dir))

    monkeypatch.setattr(History, "build", refuse)
    con = store.connect()
    history.register(con, store)
    assert cached_rows(con) == reference(store)
    assert History(store).meta() is None


def test_tix_sql_sees_the_history_views(tmp_path):
    from tix.store.views import run_sql

    store = fresh(tmp_path)
    write(store, [("ticket.created", 1, {"status": "new"}, T0, "system"),
                  ("ticket.updated", 1, {"set": {"status": "resolved"}}, T0 + timedelta(hours=2), "user:ani"),
                  ("ticket.updated", 1, {"set": {"status": "open"}}, T0 + timedelta(hours=5), "system")])
    rows = run_sql(store, "SELECT ticket, hours, agent FROM resolutions")
    assert rows == [{"ticket": 1, "hours": 2.0, "agent": "ani"}]
    rows = run_sql(store, "SELECT status, since, until FROM ticket_periods ORDER BY since")
    assert [r["status"] for r in rows] == ["new", "resolved", "open"] and rows[-1]["until"] is None


# -- built-in reports a store holds as copies ------------------------------------------------------
def test_unedited_copies_of_builtin_reports_do_not_shadow_them(store):
    from tix.reports.run import builtin_copies, builtin_dir, list_reports

    for path in builtin_dir().glob("*.sql"):  # every built-in as it is now is a known copy
        assert hashlib.sha256(path.read_bytes()).hexdigest() in builtin_copies(), path.name
    copy = store.path("reports", "weekly.sql")
    assert copy.read_bytes() == (builtin_dir() / "weekly.sql").read_bytes()  # what `tix init` made
    old = hashlib.sha256(copy.read_bytes()).hexdigest()
    assert next(r for r in list_reports(store, "en") if r["name"] == "weekly")["source"] == "built-in"
    copy.write_text(copy.read_text().replace("-- title: Weekly report", "-- title: Our weekly"))
    assert next(r for r in list_reports(store, "en") if r["name"] == "weekly")["title"] == "Our weekly"  # edited
    assert hashlib.sha256(copy.read_bytes()).hexdigest() != old


def test_an_old_unedited_copy_runs_the_current_builtin(store, monkeypatch):
    """A copy whose bytes are those of an earlier built-in (listed in builtin-copies.txt) is
    an example nobody edited: the current built-in runs instead."""
    from tix.reports import run
    from tix.reports.run import list_reports

    old = b"-- title: Weekly report (an earlier release)\nSELECT 1 AS one;\n"
    store.path("reports", "weekly.sql").write_bytes(old)
    assert next(r for r in list_reports(store, "en") if r["name"] == "weekly")["source"] != "built-in"
    known = run.builtin_copies() | {hashlib.sha256(old).hexdigest()}
    monkeypatch.setattr(run, "builtin_copies", lambda: known)
    entry = next(r for r in list_reports(store, "en") if r["name"] == "weekly")
    assert entry["source"] == "built-in" and entry["title"] == "Weekly report"


def test_report_exclude_tags_setting(store):
    from tix.config import load
    from tix.errors import ConfigError

    cfg = store.path("tix.yaml")
    cfg.write_text(cfg.read_text() + "\nreports:\n  exclude_tags: [spam, internal]\n")
    store.reload_config()
    assert history.exclude_tags(store.config) == ["internal", "spam"]
    cfg.write_text(cfg.read_text() + "  exclude: [x]\n")
    with pytest.raises(ConfigError, match="exclude"):
        load(cfg, validate_sections=True)


def test_catch_up_skips_a_stretch_that_makes_no_rows_unread(tmp_path):
    """A bulk change of priorities or tags makes no history rows: the cache moves past it
    without a new part (the stretch is checked in blocks, not decoded line by line)."""
    store = fresh(tmp_path)
    write(store, [("ticket.created", n, {"status": "new", "team": "support"}, T0, "system") for n in (1, 2)])
    h = History(store)
    h.build()
    parts = h.meta()["parts"]
    write(store, [("ticket.updated", n, {"set": {"priority": "high"}, "old": {"priority": "normal"}},
                   T0 + timedelta(hours=1), "user:ani") for n in (1, 2)]
          + [("ticket.tagged", 2, {"add": ["vip"]}, T0 + timedelta(hours=2), "user:ani")])
    meta = h.catch_up()
    assert meta["parts"] == parts and meta["seq"] == store.log.last_event()["seq"] == 5
    write(store, [("ticket.updated", 1, {"set": {"status": "resolved"}}, T0 + timedelta(hours=3), "user:ani"),
                  ("ticket.updated", 2, {"set": {"priority": "low"}}, T0 + timedelta(hours=4), "user:ani")])
    meta = h.catch_up()
    assert len(meta["parts"]) == len(parts) + 1 and meta["seq"] == 7
    con = store.connect()
    history.register(con, store)
    assert cached_rows(con) == reference(store)
    assert [r["event"] for r in cached_rows(con)] == [None, None, "resolution"]


def test_each_part_has_a_companion_of_its_backlog_changes_made_again_with_the_part(tmp_path, monkeypatch):
    """Issue 16: the backlog's trend reads the history's `backlog_changes` rows from a companion
    file per part (a fifth of the rows). A part made again under the same name (a rewritten
    log) gets a new companion; companions of dropped parts go with them; a store this user may
    not write reads the rows from the history itself."""
    store = fresh(tmp_path)
    events = [("ticket.created", 1, {"status": "new", "team": "support"}, T0, "system"),
              ("ticket.created", 2, {"status": "new"}, T0, "system"),
              ("message.received", 1, {"text": "a long message " * 20}, T0, "channel:email"),
              ("ticket.updated", 1, {"set": {"team": "billing"}}, T0 + timedelta(hours=1), "user:ani"),
              ("ticket.updated", 2, {"set": {"status": "resolved"}}, T0 + timedelta(hours=2), "user:ani")]
    write(store, events)
    h = History(store)
    h.build()

    def changes(con) -> list[tuple]:
        return con.execute("SELECT ticket, seq, is_open, was_open, team, prev_team FROM backlog_changes "
                           "ORDER BY seq").fetchall()

    con = store.connect()
    history.register(con, store)
    want = changes(con)
    assert [(r[0], r[2], r[3]) for r in want] == [(1, True, False), (2, True, False), (1, True, True),
                                                 (2, False, True)]
    [comp] = h.dir.glob("changes-*.parquet")
    assert comp.name == history.changes_name(h.dir / h.meta()["parts"][0])
    seg = store.log.dir / store.log.segments()[0]
    text = seg.read_bytes().replace(b"a long message " * 20, b"[erased]")
    seg.write_bytes(text.replace(b'"team": "billing"', b'"team": "support"').replace(b'"team":"billing"',
                                                                                      b'"team":"support"'))
    assert h.meta() is None  # the log was rewritten: the cache is built again, its part has the same name
    con = store.connect()
    history.register(con, store)
    assert [(r[0], r[4], r[5]) for r in changes(con)] == [(1, "support", None), (2, None, None), (2, None, None)]
    assert not comp.exists() and len(list(h.dir.glob("changes-*.parquet"))) == 1

    def refuse(*a, **kw):
        raise PermissionError(13, "Permission denied")

    for p in h.dir.glob("changes-*.parquet"):
        p.unlink()
    monkeypatch.setattr(history, "commit_temp", refuse)
    con = store.connect()
    history.register(con, store)
    assert len(changes(con)) == 3 and not list(h.dir.glob("changes-*.parquet"))
