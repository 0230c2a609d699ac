"""Issue 13 item 1: statuses follow the conversation (the state machine of tix.tickets.status),
every edge through the CLI."""
from __future__ import annotations

import orjson
import pytest

from tests.agentday import via, customer_writes, events, make_desk, run, status


@pytest.fixture
def desk(store, tmp_path, tix):
    return make_desk(store, tmp_path, tix)


LATER = "2026-12-20T03:00:00Z"  # 30 days on: past the reopen window (reopen_days: 14)


def test_first_reply_opens_a_new_ticket(desk, tix):
    assert status(desk) == "new"
    run(tix, "reply", "1", "-m", "Sedang kami cek.", "--no-send", "--as", "ani")
    assert status(desk) == "open"
    (ev,) = [e for e in events(desk, "ticket.updated") if e["data"]["set"].get("status")]
    assert (ev["actor"], via(ev), ev["data"]["old"], ev["why"]) == (
        "user:ani", "tix reply", {"status": "new"}, "first agent reply")
    run(tix, "reply", "1", "-m", "Masih kami cek.", "--no-send", "--as", "ani")
    assert status(desk) == "open" and len(events(desk, "ticket.updated")) == 1  # an open ticket stays open


def test_reply_pending_pauses_the_sla_and_a_customer_message_reopens_it(desk, tix):
    run(tix, "reply", "1", "-m", "Mohon kirim foto paketnya.", "--pending", "--no-send")
    assert status(desk) == "pending"
    run(tix, "reply", "1", "-m", "Kami tunggu ya.", "--no-send")
    assert status(desk) == "pending"  # a plain reply leaves a pending ticket pending
    customer_writes(desk, tix)
    assert status(desk) == "open"
    (ev,) = [e for e in events(desk, "ticket.updated") if e["data"]["old"].get("status") == "pending"]
    assert ev["actor"] == "channel:inbox" and ev["why"].startswith("the customer wrote")


def test_sla_clock_is_paused_while_pending(desk, tix):
    from tests.plugins.email import add_config
    from tests.plugins.sla import SLA_YAML

    add_config(desk, SLA_YAML)
    run(tix, "reply", "1", "-m", "Mohon kirim foto paketnya.", "--pending", "--no-send")
    out = orjson.loads(run(tix, "sla", "1", "-f", "json", at="2026-11-20T05:00:00Z").stdout)
    assert out["clocks"] and {c["state"] for c in out["clocks"] if c["target"] == "resolution"} == {"paused"}


def test_reply_resolve_then_customer_reopens_within_the_window(desk, tix):
    run(tix, "reply", "1", "-m", "Dana sudah kembali.", "--resolve", "--no-send")
    assert status(desk) == "resolved"
    run(tix, "reply", "1", "-m", "Satu lagi: resinya terlampir.", "--no-send")
    assert status(desk) == "resolved"  # a plain reply leaves a resolved ticket resolved
    customer_writes(desk, tix, at="2026-11-25T03:00:00Z")
    assert status(desk) == "open" and desk.read().ticket(1)["reopened"] == 1


def test_customer_after_the_window_gets_a_new_linked_ticket(desk, tix):
    run(tix, "reply", "1", "-m", "Dana sudah kembali.", "--resolve", "--no-send")
    customer_writes(desk, tix, at=LATER)
    assert status(desk, 1) == "resolved" and status(desk, 2) == "new"
    assert orjson.loads(desk.read().ticket(2)["fields"]) == {"linked": 1}


def test_close_reopen_and_assign_edges(desk, tix):
    run(tix, "assign", "1", "ani")
    assert status(desk) == "open"
    run(tix, "close", "1", "--resolved")
    assert status(desk) == "resolved"
    run(tix, "close", "1")
    assert status(desk) == "closed"
    customer_writes(desk, tix, at="2026-11-21T03:00:00Z")  # closed, within the window: reopened
    assert status(desk) == "open"
    run(tix, "close", "1")
    run(tix, "reopen", "1")
    assert status(desk) == "open"


def test_reply_outcome_refusals_write_nothing(desk, tix):
    before = events(desk)
    proc = run(tix, "reply", "1", "-m", "x", "--pending", "--resolve", check=2)
    assert proc.stderr == "Error: give either --pending or --resolve, not both\n"
    run(tix, "close", "1")
    proc = run(tix, "reply", "1", "-m", "x", "--pending", "--no-send", check=2)
    assert proc.stderr == "Error: #1 is closed: reopen it before setting it pending\n"
    proc = run(tix, "reply", "1", "-m", "x", "--resolve", "--no-send", check=2)
    assert proc.stderr == "Error: #1 is closed: reopen it before resolving it\n"
    assert len(events(desk)) == len(before) + 1  # only the close
    assert not list((desk.root / "messages").rglob("*.eml"))
    proc = run(tix, "reply", "99", "-m", "x", check=1)
    assert proc.stderr == "Error: ticket #99 not found\n"
