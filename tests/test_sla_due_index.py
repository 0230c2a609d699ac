"""Issue 16, target 6: `tix escalate` from cron computes only the tickets new events name and the
rows whose clocks fall due (the due-time index of tix.sla.state), and shows what computing
every ticket would show."""
from __future__ import annotations

import shutil

import orjson
import pytest

from tests.plugins.sla import jkt
from tix.sla.escalate import escalate
from tix.store import Store


def view(store) -> list[dict]:
    """The `sla` view's rows, but for what is as of `computed_at` (tix.sla.views): the business
    time used by a clock still running, and a paused clock's due time."""
    cur = store.connect().execute("SELECT * EXCLUDE (computed_at) FROM sla ORDER BY ticket, target")
    names = [d[0] for d in cur.description]
    out = []
    for r in cur.fetchall():
        row = dict(zip(names, r, strict=True))
        if row["state"] in ("ok", "warning", "breached", "paused"):
            row["business_seconds_used"] = None
        if row["state"] == "paused":
            row["due_at"] = None
        out.append(row)
    return out


def rebuilt(store, now, tmp_path):
    """The view of a copy of the store after `tix escalate --rebuild` at `now`, and its report."""
    copy = tmp_path / f"copy-{int(now.timestamp())}"
    shutil.copytree(store.root, copy)
    other = Store(copy)
    again = escalate(other, now=now, rebuild=True, flush_outbox=False)
    assert again.cold and again.events_written == 0  # the incremental run took every step due
    return view(other), again


def events(store, type_):
    return [ev for ev, _p in store.log.read() if ev["type"] == type_]


@pytest.mark.parametrize("merge_every_run", [False, True])
def test_runs_compute_only_named_and_due_tickets_and_show_what_a_rebuild_shows(
        sla_store, timeline, tmp_path, monkeypatch, merge_every_run):
    """Runs with the clock moved across warnings and breaches, a calendar's closing hour and
    two holidays; after each, the view equals a rebuild's on a copy, and the run computed just
    the tickets named by new events and those whose clocks changed state."""
    from tix.sla import state

    if merge_every_run:  # the delta part merged into the live part by every run
        monkeypatch.setattr(state, "DELTA_MIN", 0)
        monkeypatch.setattr(state, "DELTA_SHARE", 10**9)
    a = timeline.create(jkt(2026, 11, 23, 9, 0))  # normal, office: warns at 6 h (Mon 16:00), breaches Tue 09:00
    b = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")  # always: warns 09:45, breaches 10:00
    c = timeline.create(jkt(2026, 11, 23, 9, 0))
    timeline.status(c, jkt(2026, 11, 23, 9, 30), "pending")  # paused: nothing changes until an event
    d = timeline.create(jkt(2026, 11, 23, 9, 0))
    timeline.reply(d, jkt(2026, 11, 23, 9, 10))  # met; resolution (40 h) runs: warns after 30 h
    quiet = [timeline.create(jkt(2026, 11, 23, 9, 0)) for _ in range(3)]
    for n in quiet:
        timeline.reply(n, jkt(2026, 11, 23, 9, 5))
        timeline.status(n, jkt(2026, 11, 23, 9, 6), "resolved")

    def run(now, expect):
        report = escalate(sla_store, now=now, flush_outbox=False)
        rows, again = rebuilt(sla_store, now, tmp_path)
        assert view(sla_store) == rows, now
        assert (report.open_tickets, report.states) == (again.open_tickets, again.states), now
        if expect is not None:
            assert report.computed == expect, now
        return report

    run(jkt(2026, 11, 23, 9, 20), None)  # cold: every ticket
    assert run(jkt(2026, 11, 23, 9, 40), 0).planned == []  # nothing due, no event
    rep = run(jkt(2026, 11, 23, 9, 50), 1)  # b warns (the urgent policy notifies on warning)
    assert [p.key for p in rep.planned] == [f"{b}:first_response:0:warn"]
    rep = run(jkt(2026, 11, 23, 10, 5), 1)  # b breaches
    assert {p.key for p in rep.planned} == {f"{b}:first_response:0:breached", f"{b}:first_response:0:breach"}
    run(jkt(2026, 11, 23, 14, 59), 0)
    rep = run(jkt(2026, 11, 23, 15, 1), 1)  # b's resolution (8 h) warns
    assert [p.key for p in rep.planned] == [f"{b}:resolution:0:warn"]
    run(jkt(2026, 11, 23, 15, 59), 0)  # a: 5 h 59 m used
    run(jkt(2026, 11, 23, 16, 1), 1)  # a warns (no step on warning)
    run(jkt(2026, 11, 23, 16, 59), 0)
    run(jkt(2026, 11, 23, 17, 30), 1)  # b's resolution breached at 17:00; the office closed: a stands still
    run(jkt(2026, 11, 24, 8, 59), 0)  # 7 h 59 m used
    rep = run(jkt(2026, 11, 24, 9, 1), 1)  # a breaches: its step runs
    assert {p.key for p in rep.planned} == {f"{a}:first_response:0:breached", f"{a}:first_response:0:breach"}
    timeline.customer(c, jkt(2026, 11, 24, 9, 30))  # c's clock runs again
    timeline.emit("ticket.note", d, jkt(2026, 11, 24, 9, 31), {"text": "internal"})  # names d: computed again
    run(jkt(2026, 11, 24, 9, 35), 2)
    # holidays: Thu 24 and Fri 25 Dec (Christmas, cuti bersama); Sat 09:00-13:00 is open
    h = timeline.create(jkt(2026, 12, 23, 13, 0))  # 4 h on Wed 23 Dec; warns Sat 11:00, breaches Sat 13:00
    first = run(jkt(2026, 12, 23, 18, 0), None)  # h is new; rows of the others that changed since Nov too
    assert h in {r["ticket"] for r in view(sla_store)} and first.computed >= 1
    run(jkt(2026, 12, 24, 12, 0), 0)  # a holiday: h's clock stands still
    run(jkt(2026, 12, 26, 10, 59), 0)
    run(jkt(2026, 12, 26, 11, 1), 1)  # h warns
    rep = run(jkt(2026, 12, 26, 13, 1), 1)  # and breaches
    assert {p.key for p in rep.planned} == {f"{h}:first_response:0:breached", f"{h}:first_response:0:breach"}
    assert run(jkt(2026, 12, 26, 13, 30), 0).events_written == 0


def test_an_action_due_with_no_new_event_runs_exactly_once_and_the_idle_stamp_waits_for_it(sla_store, timeline, tix):
    n = timeline.create(jkt(2026, 11, 23, 9, 0))  # normal: breaches Tue 09:00 (8 h of office time)
    first = escalate(sla_store, now=jkt(2026, 11, 23, 10, 0))
    assert first.next_due == "2026-11-23T08:59:59.000000Z"  # its warning, Mon 16:00 WIB, a second early
    before = len(events(sla_store, "sla.step"))
    proc = tix("-v", "escalate", "--now", "2026-11-24T09:30:00+07:00")
    assert proc.returncode == 0, proc.stderr
    assert "1 tickets' clocks computed" in proc.stderr + proc.stdout
    steps = events(sla_store, "sla.step")[before:]
    assert [s["data"]["key"] for s in steps] == [f"{n}:first_response:0:breach"]
    assert [e["data"]["key"] for e in events(sla_store, "sla.breached")] == [f"{n}:first_response:0:breached"]
    for later in ("2026-11-24T09:35:00+07:00", "2026-11-24T15:00:00+07:00"):
        out = tix("-v", "escalate", "--now", later)
        assert "0 actions, 0 events written" in out.stderr + out.stdout
        assert "0 tickets' clocks computed" in out.stderr + out.stdout
    assert len(events(sla_store, "sla.step")) == before + 1
    assert sla_store.ticket(n)["priority"] == "high"  # raised once


def test_a_clock_changing_within_the_early_second_leaves_the_idle_stamp_waiting_for_it(sla_store, timeline):
    """A row is due in the index a second (EARLY) before its clock changes. A run within that
    second computed it, found it unchanged, and said the next change was now: at a fixed
    clock (the growth bench's) no run after it was ever idle. The stamp waits for the change."""
    from datetime import timedelta

    n = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")  # 24/7: warns at 09:45 (75% of 1 h)
    now = jkt(2026, 11, 23, 9, 45) - timedelta(milliseconds=500)
    report = escalate(sla_store, now=now)
    assert report.next_due == "2026-11-23T02:45:00.000000Z"  # the warning, not `now`
    again = escalate(sla_store, now=now)
    assert again.computed == 1 and again.next_due == report.next_due and not again.planned
    assert {p.key for p in escalate(sla_store, now=jkt(2026, 11, 23, 9, 45)).planned} == {
        f"{n}:first_response:0:warn"}


def test_a_change_of_the_sla_config_computes_every_open_ticket_again(sla_store, timeline, tmp_path):
    numbers = [timeline.create(jkt(2026, 11, 23, 9, i)) for i in range(4)]
    timeline.status(numbers[0], jkt(2026, 11, 23, 9, 30), "closed")
    escalate(sla_store, now=jkt(2026, 11, 23, 10, 0))
    assert escalate(sla_store, now=jkt(2026, 11, 23, 10, 5)).computed == 0
    path = sla_store.path("tix.yaml")
    path.write_text(path.read_text().replace("targets: {first_response: 8h, next_response: 8h, resolution: 40h}",
                                             "targets: {first_response: 1h, next_response: 8h, resolution: 40h}"))
    now = jkt(2026, 11, 23, 10, 10)
    report = escalate(sla_store, now=now)
    assert report.computed == 3 and report.open_tickets == 3  # every open ticket, none named by an event
    assert {p.ticket for p in report.planned if p.step is not None} == set(numbers[1:])  # breached under 1 h
    rows, _ = rebuilt(sla_store, now, tmp_path)

    def still_open(rows):  # a closed ticket keeps the row it had (a policy change applies from then on)
        return [r for r in rows if r["status"] not in ("resolved", "closed")]

    assert still_open(view(sla_store)) == still_open(rows)
    assert escalate(sla_store, now=jkt(2026, 11, 23, 10, 15)).computed == 0
    # a calendar's dates are part of it too: a company holiday today
    text = path.read_text()
    at = text.rindex('"2026-12-31": ["08:00-12:00"]')  # the sla fixture's calendar (the example's is a comment)
    path.write_text(text[:at] + '"2026-11-23": closed\n      ' + text[at:])
    assert escalate(sla_store, now=jkt(2026, 11, 23, 10, 20)).computed == 3
    rows, _ = rebuilt(sla_store, jkt(2026, 11, 23, 10, 20), tmp_path)
    assert still_open(view(sla_store)) == still_open(rows)
    meta = orjson.loads(sla_store.path("snapshot", "sla", "sla-meta.json").read_bytes())
    assert meta["delta"] is None  # computing everything writes a new live part


def test_a_clock_moved_back_computes_every_open_ticket_again(sla_store, timeline):
    timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")
    escalate(sla_store, now=jkt(2026, 11, 23, 11, 0))  # breached
    report = escalate(sla_store, now=jkt(2026, 11, 23, 9, 30))  # before the last run: as a rebuild would
    assert report.computed == 1
    assert sla_store.connect().execute(
        "SELECT state FROM sla WHERE target = 'first_response'").fetchone() == ("ok",)


def test_a_tag_or_a_contact_field_moves_a_ticket_to_another_policy_at_the_next_run(sla_store, timeline, tix):
    path = sla_store.path("tix.yaml")
    path.write_text(path.read_text().replace("\n    - name: urgent\n", """
    - name: vip
      when: {tier: gold}
      calendar: always
      targets: {first_response: 30m}
    - name: tagged
      when: {tag: vip}
      calendar: always
      targets: {first_response: 20m}
    - name: urgent
""", 1))
    with sla_store.writing() as batch:
        cid = batch.new_contact_id()
        batch.emit("contact.created", contact=cid, data={"name": "Sari", "emails": ["sari@example.id"],
                                                         "phones": [], "fields": {}})
    by_contact = timeline.create(jkt(2026, 11, 23, 9, 0), contact=cid)
    by_tag = timeline.create(jkt(2026, 11, 23, 9, 0))
    escalate(sla_store, now=jkt(2026, 11, 23, 9, 10))

    def policy(n):
        return sla_store.connect().execute("SELECT policy, state FROM sla WHERE ticket = ? AND "
                                           "target = 'first_response'", [n]).fetchone()

    assert policy(by_contact) == policy(by_tag) == ("normal", "ok")
    assert tix("tag", str(by_tag), "vip").returncode == 0  # a ticket.tagged event: no change of its clocks' events
    assert tix("contact", "set", str(cid), "tier=gold").returncode == 0  # names the contact, not the ticket
    report = escalate(sla_store, now=jkt(2026, 11, 23, 9, 40))
    assert report.computed == 2
    assert policy(by_contact) == ("vip", "breached") and policy(by_tag) == ("tagged", "breached")


def test_a_run_stopped_before_it_settled_leaves_the_tickets_it_wrote_to_due(store, timeline, monkeypatch):
    """A run that stops at max_rounds saved rows whose policy its last round's steps may have
    changed: they are due at once, so the next run computes them (and carries on)."""
    from tests.test_escalate_settle import CHAIN, _steps, _store_with
    from tix.errors import TixError
    from tix.sla import escalate as mod

    _store_with(store, CHAIN)
    n = timeline.create(jkt(2026, 11, 24, 8, 0), priority="normal")
    timeline.create(jkt(2026, 11, 24, 12, 30), priority="normal")  # running, not due
    now = jkt(2026, 11, 24, 13, 0)
    escalate(Store(store.root), now=jkt(2026, 11, 24, 8, 30))
    monkeypatch.setattr(mod, "max_rounds", lambda policies: 2)
    with pytest.raises(TixError):
        escalate(Store(store.root), now=now)
    monkeypatch.undo()
    report = escalate(Store(store.root), now=now)
    assert report.computed == 1 and [p.ticket for p in report.planned] == [n]
    assert _steps(store)[-1] == ("sla:urgent", "page")


def test_the_view_reads_a_state_saved_before_the_index_and_the_next_run_rebuilds_it(sla_store, timeline):
    import pyarrow.parquet as pq

    n = timeline.create(jkt(2026, 11, 23, 9, 0))
    timeline.create(jkt(2026, 11, 23, 9, 0))
    timeline.status(n, jkt(2026, 11, 23, 9, 30), "closed")
    escalate(sla_store, now=jkt(2026, 11, 23, 10, 0))
    d = sla_store.path("snapshot", "sla")
    meta = orjson.loads((d / "sla-meta.json").read_bytes())
    for name in [meta["live"], *meta["done"]]:  # as FORMAT 1 wrote them: no next_change, computed, rev
        table = pq.read_table(d / name)
        pq.write_table(table.drop_columns(["next_change", "computed", "rev"]), d / name)
    (d / "sla-meta.json").write_bytes(orjson.dumps({**meta, "format": 1}))
    before = sla_store.connect().execute("SELECT ticket, target, state, computed_at FROM sla ORDER BY 1, 2").fetchall()
    assert len(before) == 4 and {r[3] for r in before} == {None}
    report = escalate(sla_store, now=jkt(2026, 11, 23, 10, 5))
    assert report.cold
    after = sla_store.connect().execute("SELECT ticket, target, state FROM sla ORDER BY 1, 2").fetchall()
    assert after == [r[:3] for r in before]
