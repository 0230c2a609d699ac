"""SLA is not retroactive: a policy acts from the moment `tix escalate` first watches the store.

The first run records one `sla.started` event (its time, and per policy how many breaches and
steps were already overdue and left alone); no step due before it is ever taken: no field
change, no notification, no event per ticket. Its time is read from the log, so it survives the
loss of `snapshot/sla/` and `--rebuild`. A store SLA ran on before the event existed starts at
its first `sla.step` / `sla.breached` event: nothing changes for it.
"""
from __future__ import annotations

import shutil

import orjson

from tests.plugins.sla import Timeline, jkt, use_smtp
from tix.sla.escalate import escalate
from tix.store import Store
from tix.store.log import iso

NOW = jkt(2026, 11, 24, 10, 0)  # a Tuesday


def events(store, *types):
    return [ev for ev, _p in store.log.read() if not types or ev["type"] in types]


def fields(store, n):
    t = Store(store.root).read().ticket(n)
    return t["priority"], t["team"], t["assignee"], sorted(t["tags"] or [])


def overdue_store(store) -> tuple[Timeline, dict]:
    """Tickets whose clocks came due before NOW (and one whose warning did)."""
    tl = Timeline(store)
    t = {"urgent_breached": tl.create(jkt(2026, 11, 24, 7, 0), priority="urgent"),  # first response due 08:00
         "urgent_warning": tl.create(jkt(2026, 11, 24, 9, 10), priority="urgent"),  # warned 09:55, due 10:10
         "normal_breached": tl.create(jkt(2026, 11, 23, 8, 0))}  # office hours: due Monday 17:00
    return tl, t


def test_first_escalate_acts_on_nothing_overdue_and_records_one_start(unwatched_sla_store, smtp_sink, tix):
    store = unwatched_sla_store
    use_smtp(store, smtp_sink.port)
    _tl, t = overdue_store(store)
    before = {n: fields(store, n) for n in t.values()}
    end = store.log.end()
    dry = tix("escalate", "--dry-run", "--now", iso(NOW))
    assert dry.stdout == "" and "SLA would start watching this store at 2026-11-24T03:00:00Z" in dry.stderr
    assert store.log.end() == end  # a dry run records no start

    proc = tix("-v", "escalate", "--now", iso(NOW))
    assert proc.returncode == 0, proc.stderr
    assert "SLA starts watching this store at 2026-11-24T03:00:00" in proc.stdout
    assert "2 breaches and 3 steps were already overdue: not acted on" in proc.stdout
    (started,) = events(store, "sla.started")
    assert started["data"] == {"start": "2026-11-24T03:00:00.000000Z", "before_start": {
        "urgent": {"breaches": 1, "steps": {"breach": 1, "warn": 1}},
        "normal": {"breaches": 1, "steps": {"breach": 1}}}}
    assert started["actor"] == "system" and started["via"] == "tix escalate"
    assert [ev["type"] for ev in events(store) if ev.get("via") == "tix escalate"] == ["sla.started"]
    assert {n: fields(store, n) for n in t.values()} == before  # no priority raised, no tag, no team
    assert smtp_sink.messages == [] and tix("notify", "list", "-f", "json").stdout.strip() == "[]"
    # the sla view still shows the breaches, from the clocks
    rows = dict(store.connect().execute("SELECT ticket, state FROM sla WHERE target = 'first_response'").fetchall())
    assert rows == {t["urgent_breached"]: "breached", t["urgent_warning"]: "warning", t["normal_breached"]: "breached"}
    shown = tix("sla", str(t["urgent_breached"]), "--now", iso(NOW)).stdout
    assert "breached before tix escalate watched this store (since Tue 2026-11-24 10:00): not acted on" in shown
    assert "not acted on" not in tix("sla", str(t["urgent_warning"]), "--now", iso(NOW)).stdout
    meta = orjson.loads(store.path("snapshot", "sla", "sla-meta.json").read_bytes())
    assert meta["start"] == NOW.timestamp()
    # idempotent: again at the same time, and later, while nothing new comes due
    end = store.log.end()
    for minutes in (0, 5):
        later = escalate(Store(store.root), now=jkt(2026, 11, 24, 10, minutes))
        assert (later.planned, later.events_written, later.started) == ([], 0, False)
    assert store.log.end() == end and smtp_sink.messages == []


def test_what_comes_due_after_the_start_is_acted_on(unwatched_sla_store, smtp_sink):
    store = unwatched_sla_store
    use_smtp(store, smtp_sink.port)
    tl, t = overdue_store(store)
    escalate(Store(store.root), now=NOW)
    late = tl.create(jkt(2026, 11, 24, 9, 56), priority="urgent")  # warns at 10:41
    report = escalate(Store(store.root), now=jkt(2026, 11, 24, 10, 45))
    # the warned ticket breached at 10:10, after the start: recorded and stepped; its warning
    # (09:55) predates the start: no mail for it; the late one's warning is mailed
    assert sorted((p.ticket, p.target, p.step.name if p.step else "record") for p in report.planned) == sorted([
        (t["urgent_warning"], "first_response", "record"), (t["urgent_warning"], "first_response", "breach"),
        (late, "first_response", "warn")])
    steps = events(store, "sla.step")
    assert {(ev["ticket"], ev["actor"], ev["data"]["step"]) for ev in steps} == {
        (t["urgent_warning"], "sla:urgent", "breach"), (late, "sla:urgent", "warn")}
    assert not any(ev["data"].get("history") for ev in steps)
    assert fields(store, t["urgent_warning"])[1:] == ("billing", None, ["sla-breached"])
    assert fields(store, t["urgent_breached"])[1:] == ("support", None, [])  # before the start: left alone
    assert [rcpt for rcpt, _msg in smtp_sink.messages] == [["lead@example.co.id"]]
    assert f"[#{late}]" in smtp_sink.messages[0][1]["Subject"]
    assert len(events(store, "sla.started")) == 1


def test_losing_the_sla_state_or_rebuilding_keeps_the_start(unwatched_sla_store, tix):
    store = unwatched_sla_store
    tl, t = overdue_store(store)
    escalate(Store(store.root), now=NOW)
    escalate(Store(store.root), now=jkt(2026, 11, 24, 10, 15))  # the warned ticket's breach (10:10)
    between = tl.create(jkt(2026, 11, 24, 9, 30), priority="urgent")  # breaches at 10:30: after the start
    shutil.rmtree(store.path("snapshot", "sla"))
    report = escalate(Store(store.root), now=jkt(2026, 11, 24, 10, 35))
    assert report.cold and not report.started and report.start == "2026-11-24T03:00:00.000000Z"
    assert sorted((p.ticket, p.step.name if p.step else "record") for p in report.planned) == sorted([
        (between, "record"), (between, "breach")])
    end = store.log.end()
    proc = tix("escalate", "--rebuild", "--now", "2026-11-24T10:40:00+07:00")
    assert proc.returncode == 0, proc.stderr
    assert store.log.end() == end  # nothing re-acted, nothing overdue before the start acted on
    keys = {ev["data"]["key"] for ev in events(store, "sla.step", "sla.breached")}
    assert {k.split(":")[0] for k in keys} == {str(t["urgent_warning"]), str(between)}
    assert len(events(store, "sla.started")) == 1


def test_a_store_sla_ran_on_before_the_start_event_existed_keeps_its_behaviour(unwatched_sla_store):
    """Its watch started at its first `sla.step` / `sla.breached` event; no `sla.started` is added."""
    store = unwatched_sla_store
    tl = Timeline(store)
    older = tl.create(jkt(2026, 11, 19, 9, 0), priority="urgent")  # due on the 19th: before SLA ran
    earlier = tl.create(jkt(2026, 11, 20, 8, 0), priority="urgent")
    tl.emit("sla.breached", earlier, jkt(2026, 11, 20, 9, 30), actor="sla:urgent", data={
        "policy": "urgent", "target": "first_response", "cycle": 0, "key": f"{earlier}:first_response:0:breached"})
    tl.emit("sla.step", earlier, jkt(2026, 11, 20, 9, 30), actor="sla:urgent", data={
        "policy": "urgent", "target": "first_response", "state": "breached", "step": "breach",
        "key": f"{earlier}:first_response:0:breach", "cycle": 0})
    n = tl.create(jkt(2026, 11, 24, 7, 0), priority="urgent")
    report = escalate(Store(store.root), now=NOW)
    assert not report.started and report.start == "2026-11-20T02:30:00.000000Z"
    assert sorted((p.ticket, p.target, p.step.name if p.step else "record") for p in report.planned) == sorted([
        (earlier, "resolution", "record"), (earlier, "resolution", "breach"),
        (n, "first_response", "record"), (n, "first_response", "breach")])
    assert events(store, "sla.started") == []
    assert fields(store, n)[1:] == ("billing", None, ["sla-breached"])
    assert fields(store, older)[1:] == ("support", None, [])


def test_the_start_is_found_whatever_the_blocks_the_log_is_read_in(unwatched_sla_store):
    """`watch_start` searches the log a block at a time: a line cut across blocks is found too."""
    from tix.sla.state import watch_start

    store = unwatched_sla_store
    tl = Timeline(store)
    for i in range(5):
        tl.create(jkt(2026, 11, 20, 8, i), priority="urgent")
    assert watch_start(store) is None
    escalate(Store(store.root), now=NOW)
    for i in range(3):
        tl.create(jkt(2026, 11, 24, 11, i))
    assert {watch_start(store, block=size) for size in (7, 64, 333, 4096, 8 << 20)} == {NOW.timestamp()}


def test_an_erasure_keeps_the_start(unwatched_sla_store, tix):
    """`tix contact erase` rewrites the events of a person; the start names nobody and stays."""
    from tix.tickets import create_contact

    store = unwatched_sla_store
    with store.writing(actor="user:ani", via="test") as batch:
        cid = create_contact(batch, "Sari", emails=["sari@pelanggan.example"])
    tl = Timeline(store)
    old = tl.create(jkt(2026, 11, 24, 7, 0), priority="urgent", contact=cid)  # breached before the start
    escalate(Store(store.root), now=NOW)
    later = tl.create(jkt(2026, 11, 24, 9, 30), priority="urgent", contact=cid)  # breaches at 10:30
    assert tix("contact", "erase", str(cid), "--why", "request 2026-11-24").returncode == 0
    report = escalate(Store(store.root), now=jkt(2026, 11, 24, 10, 45), rebuild=True)
    assert report.cold  # the whole log folded again, the start read from it as the erasure left it
    assert (report.started, report.start) == (False, "2026-11-24T03:00:00.000000Z")
    assert {p.ticket for p in report.planned} == {later} and old != later
    assert len(events(store, "sla.started")) == 1


def test_a_cold_start_over_the_history_cache_takes_the_start_from_the_fold(unwatched_sla_store, monkeypatch):
    """Issue 16: the cold fold reads every `sla.*` event of the log when the reports' history
    cache is there; the watch start is taken from those, not from a second search of the log
    (1.4 s of CPU at a million tickets). The same start as the search: a damaged marker is
    passed over for the next event that marks one."""
    from tix.sla import state
    from tix.store.history import History

    store = unwatched_sla_store
    tl = Timeline(store)
    earlier = tl.create(jkt(2026, 11, 20, 8, 0), priority="urgent")
    tl.emit("sla.started", None, jkt(2026, 11, 20, 9, 0), actor="system", data={"start": "not a time"})
    tl.emit("sla.breached", earlier, jkt(2026, 11, 20, 9, 30), actor="sla:urgent", data={
        "policy": "urgent", "target": "first_response", "cycle": 0, "key": f"{earlier}:first_response:0:breached"})
    tl.emit("sla.started", None, jkt(2026, 11, 21, 9, 0), actor="system", data={"start": iso(jkt(2026, 11, 21, 9))})
    tl.create(jkt(2026, 11, 24, 7, 0), priority="urgent")
    searched = state.watch_start(store)
    assert searched == jkt(2026, 11, 20, 9, 30).timestamp()
    History(store).build()

    def no_search(*a, **k):
        raise AssertionError("the log was searched again")

    monkeypatch.setattr(state, "watch_start", no_search)
    report = escalate(Store(store.root), now=NOW)
    assert report.cold and not report.started and report.start == iso(jkt(2026, 11, 20, 9, 30))
