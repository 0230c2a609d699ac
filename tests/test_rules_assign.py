"""Assignment by rules: a named agent, round robin across runs, least loaded, skill, away agents."""
from __future__ import annotations

import orjson

from tix import rules
from tix.store import Store
from tix.tickets import create_ticket

RR = """
- name: billing-rr
  if: {subject: {keywords: [bayar]}}
  then:
    - assign: {team: billing, strategy: round_robin}
"""


def test_round_robin_position_persists_across_runs(rk, tix):
    rk.rules(RR)
    got = []
    for i in range(5):
        n = rk.message(subject=f"Sudah bayar {i}")
        tix("route", check=0)
        got.append(rk.ticket(n)["assignee"])
    assert got == ["budi", "dewa", "budi", "dewa", "budi"]  # team billing: budi, dewa
    assert all(rk.ticket(n)["team"] == "billing" for n in range(1, 6))
    assert orjson.loads(rk.store.path("state", "rules_round_robin.json").read_bytes()) == {"billing": "budi"}


def test_round_robin_within_one_run_and_dry_run_does_not_move_it(rk, tix):
    rk.rules(RR)
    a, b, c = (rk.message(subject="bayar") for _ in range(3))
    tix("route", "--dry-run", check=0)
    assert not rk.store.path("state", "rules_round_robin.json").exists()
    tix("route", check=0)
    assert [rk.ticket(n)["assignee"] for n in (a, b, c)] == ["budi", "dewa", "budi"]


def test_away_agents_are_skipped(rk, tix):
    cfg = rk.store.path("tix.yaml")
    cfg.write_text(cfg.read_text().replace("    away: false ", "    away: true  "))
    rk.rules(RR)
    for _ in range(3):
        rk.message(subject="bayar")
    tix("route", check=0)
    assert [rk.ticket(n)["assignee"] for n in (1, 2, 3)] == ["budi", "budi", "budi"]


def _open_tickets(store, **counts):
    with store.writing(via="test") as batch:
        for agent, (n_open, n_closed) in counts.items():
            for _ in range(n_open):
                create_ticket(batch, "old", assignee=agent, status="open")
            for _ in range(n_closed):
                create_ticket(batch, "old", assignee=agent, status="closed")
        # these were entered by agents, not by a customer: mark them routed
        for number in [ev["ticket"] for ev in batch.pending if ev["type"] == "ticket.created"]:
            batch.emit("ticket.routed", ticket=number, data={"upto": 10**9})


def test_least_loaded_counts_open_tickets_only(rk):
    _open_tickets(rk.store, ani=(2, 0), citra=(1, 5), dewa=(0, 0))
    rk.rules("""
        - name: support
          then:
            - assign: {team: support, strategy: least_loaded}
        """)
    a = rk.message(subject="satu")
    b = rk.message(subject="dua")
    c = rk.message(subject="tiga")
    res = rules.route(Store(rk.store.root))
    assert res.routed == 3
    # open: ani 2, citra 1, dewa 0 -> dewa; then citra 1 / dewa 1 -> citra (login order); then dewa
    assert [rk.ticket(n)["assignee"] for n in (a, b, c)] == ["dewa", "citra", "dewa"]


def test_skill_matches_category_and_language(rk):
    rk.rules("""
        - name: classify
          if: {text: {keywords: [paket]}}
          then: [{category: shipping}]
        - name: support
          then:
            - assign: {team: support, strategy: skill}
        """)
    shipping_en = rk.message(subject="paket", language="en")  # citra: shipping + en
    payment_en = rk.message(subject="payment", language="en")  # ani, citra, dewa all speak en: least loaded
    indonesian = rk.message(subject="halo", language="id")  # ani and citra speak id
    rules.route(rk.store)
    assert rk.ticket(shipping_en)["assignee"] == "citra"
    assert rk.ticket(payment_en)["assignee"] == "ani"
    assert rk.ticket(indonesian)["assignee"] == "ani"  # ani 1 open, citra 1 open: login order


def test_assigned_tickets_keep_their_agent_unless_reassign(rk):
    rk.rules("""
        - name: keep
          when: any
          then:
            - assign: {team: billing, strategy: round_robin}
        """)
    n = rk.message(subject="halo")
    rules.route(rk.store)
    assert rk.ticket(n)["assignee"] == "budi"
    rk.message(n, subject="Re: halo")
    res = rules.route(Store(rk.store.root))
    assert rk.ticket(n)["assignee"] == "budi"
    assert [ln.text for ln in res.lines] == ["kept assignee budi (reassign: false)"]


def test_assign_to_a_named_agent(rk):
    rk.rules("""
        - name: vip
          then:
            - assign: citra
        """)
    n = rk.message(subject="halo")
    rules.route(rk.store)
    ev = [e for e in rk.events("ticket.updated", ticket=n)][-1]
    assert (ev["actor"], ev["data"]["set"]) == ("rule:vip", {"assignee": "citra"})
