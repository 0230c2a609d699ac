"""Acting on a run's plan (issue 16): the rows read are only the columns a step needs unless it
notifies, a breach's `due_at` is formatted in bulk, a step's text is made once. The events
written are exactly those of taking each planned step one by one on the ticket's whole row."""
from __future__ import annotations

import pytest

from tests.plugins.sla import jkt
from tix.sla import escalate as esc
from tix.store.batch import DryBatch
from tix.store.log import iso

PAGE = "        - {name: page, on: breached, notify: {email: boss@example.co.id}}\n"


def _events_after(store, seq):
    return [ev for ev, _p in store.log.read() if ev["seq"] > seq]


def _one_by_one(store, planned, now):
    """The reference: every planned step taken alone, on the ticket's whole row, nothing shared."""
    settings = esc.load_settings(store)
    con = store.connect()
    rows = esc._ticket_rows(con, sorted({p.ticket for p in planned}))
    renderer = esc._Renderer(store, settings.tz, settings.agents)
    out = []
    by_policy: dict[str, list] = {}
    for p in planned:
        by_policy.setdefault(p.policy, []).append(p)
    for policy, items in by_policy.items():
        batch = DryBatch(store, actor=f"sla:{policy}", via="tix escalate")
        for p in items:
            esc._do(batch, p, rows[p.ticket], renderer)
        out += batch.pending
    return out


@pytest.mark.parametrize("part", [None, 3])
def test_acting_writes_the_events_of_taking_each_step_alone(sla_store, timeline, monkeypatch, part):
    """`part`: a policy's events written in parts of this many (ACT_PART), committed as one."""
    if part:
        monkeypatch.setattr(esc, "ACT_PART", part)
    path = sla_store.path("tix.yaml")
    text = path.read_text(encoding="utf-8")
    anchor = "        - {name: breach, on: breached, tag: sla-breached, team: billing}\n"
    path.write_text(text.replace(anchor, anchor + PAGE), encoding="utf-8")
    sla_store.reload_config()
    for day in (16, 20, 23):  # breaches a week old (history: nobody paged), days old, and fresh
        for h in range(3):
            timeline.create(jkt(2026, 11, day, 9 + h, 7 * h, day, 123457 * h), priority="urgent")
            n = timeline.create(jkt(2026, 11, day, 9 + h, 3 * h, h, 300001 * h))
            if h == 1:
                timeline.reply(n, jkt(2026, 11, day, 11, 0))
                timeline.customer(n, jkt(2026, 11, day, 11, 30))
    timeline.create(jkt(2026, 11, 24, 7, 30, 0, 777), priority="urgent")  # breached 90 min ago: paged
    warned = timeline.create(jkt(2026, 11, 24, 9, 10), priority="urgent")  # 50 of 60 min: warning
    wa = timeline.create(jkt(2026, 11, 23, 14, 0), channel="whatsapp")
    timeline.reply(wa, jkt(2026, 11, 23, 14, 5))
    timeline.customer(wa, jkt(2026, 11, 23, 10 + 3, 30))
    now = jkt(2026, 11, 24, 10, 0)
    monkeypatch.setenv("TIX_NOW", iso(now))  # the events' times

    plan = esc.escalate(sla_store, now=now, dry_run=True).planned
    kinds = {(p.target, p.step.name if p.step else None, p.history) for p in plan}
    assert {("first_response", None, False), ("first_response", "breach", False),
            ("first_response", "page", True), ("first_response", "page", False),
            ("first_response", "warn", False)} <= kinds
    assert any(p.ticket == warned for p in plan)
    expected = _one_by_one(sla_store, plan, now)
    assert {ev["type"] for ev in expected} >= {"sla.breached", "sla.step", "ticket.updated", "ticket.tagged",
                                               "outbox.queued"}

    seq = sla_store.log.last_event()["seq"]
    end = sla_store.log.end()
    report = esc.escalate(sla_store, now=now, flush_outbox=False)
    with open(sla_store.log.dir / end.segment, "rb") as fh:
        fh.seek(end.offset)
        marks = fh.read().count(b'"commit":true}')
    assert marks == len({p.policy for p in plan})  # one commit per policy's batch, parts or not
    assert report.planned == plan  # one round acted; the next found nothing more
    written = _events_after(sla_store, seq)

    def strip(ev):
        ev = dict(ev)
        ev.pop("seq")
        return ev

    assert [strip(ev) for ev in written] == [strip(ev) for ev in expected]
    due = [ev["data"]["due_at"] for ev in written if ev["type"] == "sla.breached"]
    assert due and all(d.endswith("Z") and len(d) == 27 for d in due)


@pytest.mark.parametrize("notify", [False, True])
def test_step_rows_hold_what_a_step_reads(sla_store, timeline, notify):
    """Without a notification only STEP_COLUMNS are read; with one, the whole row."""
    n = timeline.create(jkt(2026, 11, 23, 9, 0))
    con = sla_store.connect()
    rows = esc._ticket_rows(con, [n], None if notify else esc.STEP_COLUMNS)
    whole = esc._ticket_rows(con, [n])[n]
    assert rows[n] == (whole if notify else {c: whole[c] for c in esc.STEP_COLUMNS})
