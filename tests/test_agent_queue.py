"""Issue 13 item 9: `tix mine` (my open tickets, the one due first at the top) and `tix next`
(the oldest unassigned ticket of my teams, assigned to me under the write lock: two agents
never get the same one, tested with concurrent processes)."""
from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from tests.agentday import via, T0, events, make_desk, run
from tests.plugins.email import add_config

SLA = ("calendars:\n  always:\n    timezone: Asia/Jakarta\n    hours: 24/7\n    holidays: false\n"
       "sla:\n  policies:\n    - name: urgent\n      when: {priority: urgent}\n      calendar: always\n"
       "      targets: {first_response: 1h}\n    - name: normal\n      calendar: always\n"
       "      targets: {first_response: 8h}\n")


@pytest.fixture
def desk(store, tmp_path, tix):
    return make_desk(store, tmp_path, tix)


def mine(tix, who="ani", **kw):
    return [r["number"] for r in orjson.loads(run(tix, "mine", "-f", "json", "--as", who, **kw).stdout)]


def test_mine_lists_my_open_tickets_due_first(desk, tix):
    add_config(desk, SLA)
    run(tix, "assign", "1", "ani")  # normal: due T0 + 8h
    run(tix, "new", "Rusak", "-a", "ani", "-p", "urgent", at="2026-11-20T03:30:00Z")  # #2: due 04:30
    run(tix, "new", "Punya Budi", "-a", "budi")  # #3
    run(tix, "new", "Sudah selesai", "-a", "ani")  # #4, closed below
    run(tix, "close", "4")
    run(tix, "new", "Nanti", "-a", "ani", at="2026-11-20T04:00:00Z")  # #5: due 12:00
    assert mine(tix) == [1, 2, 5]  # before any escalate run: no due times, oldest first
    run(tix, "escalate", "--now", "2026-11-20T11:10", at="2026-11-20T04:10:00Z")
    assert mine(tix) == [2, 1, 5]
    rows = orjson.loads(run(tix, "mine", "-f", "json", "--as", "ani").stdout)
    assert rows[0]["due_at"].startswith("2026-11-20T04:30")
    table = run(tix, "mine", "--as", "ani").stdout
    assert table.splitlines()[0].split() == ["number", "status", "priority", "team", "channel", "subject", "due",
                                             "created"]
    assert "2026-11-20 11:30" in table  # due, in the site's time zone
    assert mine(tix, "budi") == [3]
    proc = run(tix, "mine", "--as", "tamu", check=2)
    assert proc.stderr.startswith("Error: 'tamu' is not an agent in tix.yaml; run as one with --as NAME")


def test_next_takes_the_oldest_unassigned_ticket_of_my_teams(desk, tix):
    run(tix, "new", "Tagihan", "--team", "billing")  # #2: not ani's team
    run(tix, "new", "Kedua", "--team", "support", at="2026-11-20T03:01:00Z")  # #3
    run(tix, "new", "Menunggu", "--team", "support")  # #4, pending: waits on the customer
    run(tix, "set", "4", "status=pending")
    assert run(tix, "next", "--as", "ani").stdout == "#1  Paket belum sampai\n"
    t = desk.read().ticket(1)
    assert (t["assignee"], t["status"]) == ("ani", "open")
    (ev,) = [e for e in events(desk, "ticket.updated") if e["data"]["set"].get("assignee")]
    assert (ev["actor"], via(ev)) == ("user:ani", "tix next")
    assert run(tix, "next", "--as", "ani").stdout == "#3  Kedua\n"
    before = len(events(desk))
    proc = run(tix, "next", "--as", "ani", check=1)
    assert proc.stderr == "Error: no unassigned ticket in your teams (support)\n" and len(events(desk)) == before
    out = run(tix, "next", "--show", "--as", "budi").stdout  # taken, shown, and recorded as seen
    assert out.startswith("#2  Tagihan\n") and "assignee: budi" in out
    assert (desk.root / "state" / "seen" / "budi.json").exists()
    assert run(tix, "next", "--as", "tamu", check=2).stderr.startswith("Error: 'tamu' is not an agent")


def test_two_agents_never_get_the_same_ticket(desk, tix):
    for i in range(5):
        run(tix, "new", f"Antrian {i}", "--team", "support")  # #2..#6, with #1: six to take
    env = {**os.environ, "TIX_STORE": str(desk.root), "TIX_NOW": T0, "TIX_LOCK_TIMEOUT": "60"}
    procs = [subprocess.Popen([sys.executable, "-m", "tix", "next", "--as", who], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for who in ("ani", "dewa", "citra", "ani", "dewa", "citra", "ani")]
    outs = [(p.communicate(timeout=120), p.returncode) for p in procs]
    taken = sorted(int(out.split()[0][1:]) for (out, _err), rc in outs if rc == 0)
    assert taken == [1, 2, 3, 4, 5, 6]
    assert sorted(rc for _o, rc in outs) == [0, 0, 0, 0, 0, 0, 1]
    assigned = [e["ticket"] for e in events(desk, "ticket.updated") if e["data"]["set"].get("assignee")]
    assert sorted(assigned) == [1, 2, 3, 4, 5, 6]
