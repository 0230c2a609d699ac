"""Issue 15, item 10: `tix route --explain N` names the agent the ticket was actually assigned.

The reproduction: the explanation ran the assignment again, and round robin (or least
loaded) had moved on since: it named the agent the *next* ticket would get.
"""
from __future__ import annotations

ASSIGN = """
- name: billing
  then:
    - assign: {team: billing, strategy: round_robin}
"""


def test_explain_names_the_agent_actually_assigned(rk, tix):
    rk.rules(ASSIGN)
    numbers = [rk.message(sender=f"c{i}@example.com", subject=f"tagihan {i}") for i in range(3)]
    tix("route", check=0)
    assigned = {n: rk.ticket(n)["assignee"] for n in numbers}
    assert assigned[numbers[0]] == assigned[numbers[2]] != assigned[numbers[1]]  # round robin over budi, dewa
    for n in numbers:
        out = tix("route", "--explain", str(n), check=0).stdout
        assert f"  -> assigned to {assigned[n]} (round robin)" in out.splitlines(), out


def test_explain_of_a_ticket_not_routed_yet_shows_the_next_pick(rk, tix):
    rk.rules(ASSIGN)
    first = rk.message(sender="a@example.com")
    tix("route", check=0)
    second = rk.message(sender="b@example.com")
    out = tix("route", "--explain", str(second), check=0).stdout
    other = ({"budi", "dewa"} - {rk.ticket(first)["assignee"]}).pop()
    assert f"  -> assigned to {other} (round robin)" in out.splitlines()
