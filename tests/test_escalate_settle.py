"""Issue 15, item 9: `tix escalate` settles in one run.

The reproduction: a breach step that raises the priority moves the ticket to another policy,
whose clocks breach on the *next* run at the same moment (on the demo store three days on:
47 steps in the first run, 31 more in a second at the same --now, none in a third). Now one
run applies steps until nothing changes, so a second run at the same time changes nothing;
policies that would keep moving tickets for ever stop at a bound with a clear error.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from tix.errors import TixError
from tix.sla.escalate import escalate
from tix.store import Store

from .plugins.sla import jkt

CHAIN = """
calendars:
  always: {timezone: Asia/Jakarta, hours: 24/7, holidays: false}
sla:
  policies:
    - name: urgent
      when: {priority: urgent}
      calendar: always
      targets: {first_response: 1h}
      steps:
        - {name: page, on: breached, tag: paged}
    - name: high
      when: {priority: high}
      calendar: always
      targets: {first_response: 2h}
      steps:
        - {name: raise-high, on: breached, raise_priority: true}
    - name: normal
      calendar: always
      targets: {first_response: 4h}
      steps:
        - {name: raise-normal, on: breached, raise_priority: true}
"""


def _store_with(store, yaml: str) -> Store:
    path = store.path("tix.yaml")
    path.write_text(path.read_text() + yaml)
    store.reload_config()
    return store


def _steps(store) -> list[tuple[str, str]]:
    return [(ev["actor"], ev["data"]["step"]) for ev, _ in store.log.read() if ev["type"] == "sla.step"]


def test_one_run_takes_every_step_a_change_of_policy_makes_due(store, timeline):
    _store_with(store, CHAIN)
    n = timeline.create(jkt(2026, 11, 24, 8, 0), priority="normal")
    now = jkt(2026, 11, 24, 13, 0)  # 5 h: every policy's first response is breached
    report = escalate(Store(store.root), now=now)
    assert _steps(store) == [("sla:normal", "raise-normal"), ("sla:high", "raise-high"), ("sla:urgent", "page")]
    t = Store(store.root).read().ticket(n)
    assert (t["priority"], list(t["tags"])) == ("urgent", ["paged"])
    assert report.events_written == len([ev for ev, _ in store.log.read() if ev.get("via") == "tix escalate"])
    assert report.rounds == 4  # three that changed something, and one that found nothing more to do
    end = store.log.end()
    again = escalate(Store(store.root), now=now)
    assert (again.events_written, again.planned, store.log.end()) == (0, [], end)


def test_the_demo_store_settles_in_one_run(tmp_path):
    """The issue's own reproduction: the demo store, three days on."""
    from tix.demo import run_demo
    from tix.store.log import parse_ts

    start = parse_ts("2026-11-23T03:00:00Z")
    demo = run_demo(tmp_path / "demo", now=start).store
    later = start + timedelta(days=3)
    first = escalate(Store(demo.root), now=later)
    assert first.events_written > 0
    end = demo.log.end()
    second = escalate(Store(demo.root), now=later)
    assert (second.events_written, [p.key for p in second.planned]) == (0, [])
    assert demo.log.end() == end


LOOP = """
calendars:
  always: {timezone: Asia/Jakarta, hours: 24/7, holidays: false}
sla:
  policies:
    - name: p-high
      when: {priority: high}
      calendar: always
      targets: {first_response: 1h}
      steps:
        - {name: down, on: breached, priority: normal}
    - name: p-normal
      calendar: always
      targets: {first_response: 1h}
      steps:
        - {name: up, on: breached, priority: high}
"""


def test_policies_moving_tickets_back_and_forth_settle(store, timeline):
    """Each step runs once per ticket, target and cycle, so even a ping-pong ends."""
    _store_with(store, LOOP)
    timeline.create(jkt(2026, 11, 24, 8, 0), priority="normal")
    escalate(Store(store.root), now=jkt(2026, 11, 24, 12, 0))
    assert _steps(store) == [("sla:p-normal", "up"), ("sla:p-high", "down")]
    assert escalate(Store(store.root), now=jkt(2026, 11, 24, 12, 0)).events_written == 0


def test_a_run_that_would_not_settle_stops_at_the_bound_with_a_clear_error(store, timeline, monkeypatch):
    from tix.sla import escalate as mod

    _store_with(store, CHAIN)
    n = timeline.create(jkt(2026, 11, 24, 8, 0), priority="normal")
    monkeypatch.setattr(mod, "max_rounds", lambda policies: 2)
    with pytest.raises(TixError) as info:
        escalate(Store(store.root), now=jkt(2026, 11, 24, 13, 0))
    assert str(info.value) == (
        "tix escalate did not settle after 2 rounds: its steps keep moving tickets between SLA policies "
        f"(#{n}: normal -> high -> urgent); check the steps that set priority, team or assignee")
    assert _steps(store) == [("sla:normal", "raise-normal"), ("sla:high", "raise-high")]  # recorded, not lost


def test_later_rounds_start_from_the_saved_rows_and_agree_with_a_fresh_computation(store, timeline, monkeypatch):
    """Issue 16: a round after the first computes again only the tickets the round before wrote
    to (tix.sla.escalate._recompute). Its picture of the clocks, and the rows it saves, are
    the ones a run loading the saved state and computing every ticket gives (a round holds
    only the rows its run computes: the due-time index leaves the others as saved)."""
    from tix.sla import escalate as mod
    from tix.sla.state import SlaState

    _store_with(store, CHAIN)
    moving = timeline.create(jkt(2026, 11, 24, 8, 0), priority="normal")  # breaches: normal -> high -> urgent
    timeline.create(jkt(2026, 11, 24, 12, 30), priority="normal")  # running, untouched by the steps
    quiet = timeline.create(jkt(2026, 11, 24, 12, 0), priority="high")
    timeline.reply(quiet, jkt(2026, 11, 24, 12, 10))  # met
    closed = timeline.create(jkt(2026, 11, 24, 9, 0))
    timeline.status(closed, jkt(2026, 11, 24, 9, 5), "closed")
    now = jkt(2026, 11, 24, 13, 0)
    escalate(Store(store.root), now=jkt(2026, 11, 24, 8, 30))  # a saved state first: the next run is warm
    seen = []
    original = mod._recompute

    def both(st_store, prev, written, settings, t, rnd):
        ctx = original(st_store, prev, written, settings, t, rnd)
        fresh = mod.EscalateReport(rnd.now)
        full = mod._compute(st_store, SlaState.load(st_store), settings, t, fresh)
        rows = {r["ticket"]: r for r in full["table"].to_pylist()}
        assert [rows[r["ticket"]] for r in ctx["table"].to_pylist()] == ctx["table"].to_pylist()
        assert (rnd.open_tickets, rnd.clocks, rnd.states) == (fresh.open_tickets, fresh.clocks, fresh.states)
        pols = dict(zip(full["numbers"].tolist(), full["pol"].tolist(), strict=True))
        assert [pols[n] for n in ctx["numbers"].tolist()] == ctx["pol"].tolist()
        seen.append(sorted({ev["ticket"] for ev in written}))
        return ctx

    monkeypatch.setattr(mod, "_recompute", both)
    report = escalate(Store(store.root), now=now)
    assert report.rounds == 4 and seen == [[moving], [moving], [moving]]
    monkeypatch.setattr(mod, "_recompute", original)
    assert escalate(Store(store.root), now=now).events_written == 0
