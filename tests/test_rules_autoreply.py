"""Auto-replies from rules: through the outbox, once per ticket and rule, never to robots, rate-limited."""
from __future__ import annotations

from tix import rules
from tix.store import Store

ACK = """
- name: ack
  when: any
  if: {channel: email}
  then:
    - auto_reply: auto_reply_received.txt.j2
"""


def _sent(rk, ticket=None):
    return [e for e in rk.events("message.sent", ticket=ticket) if e["data"].get("auto")]


def test_auto_reply_is_queued_in_the_outbox_by_the_rule(rk, tix):
    rk.rules(ACK)
    n = rk.message(sender="rina@example.com", name="Rina", subject="Pesanan saya")
    tix("route", check=0)
    sent = _sent(rk, n)
    assert len(sent) == 1
    ev = sent[0]
    assert ev["actor"] == "rule:ack"
    assert ev["data"]["to"] == ["rina@example.com"]
    assert ev["data"]["template"] == "auto_reply_received.txt.j2"
    assert f"nomor tiket #{n}" in ev["data"]["text"] and ev["data"]["text"].startswith("Halo Rina,")
    assert (rk.store.root / ev["data"]["raw"]).is_file()
    record = rk.events("rule.auto_reply", ticket=n)
    assert [(e["actor"], e["data"]["to"], e["data"]["queued"]) for e in record] == [
        ("rule:ack", "rina@example.com", True)]
    t = rk.ticket(n)
    assert t["first_response_at"] is None  # an auto-reply is not a response by a person


def test_at_most_once_per_ticket_per_rule(rk, tix):
    rk.rules(ACK)
    n = rk.message(subject="satu")
    tix("route", check=0)
    rk.message(n, subject="Re: satu", text="tambahan")
    tix("route", check=0)
    tix("route", "--reroute", str(n), check=0)
    assert len(_sent(rk, n)) == 1


def test_auto_submitted_sender_never_gets_an_auto_reply(rk, tix):
    rk.rules(ACK)
    n = rk.message(sender="vacation@example.org", subject="Out of office", auto=True,
                   auto_reason="Auto-Submitted: auto-replied")
    proc = tix("-v", "route", check=0)
    assert _sent(rk, n) == [] and rk.events("rule.auto_reply") == []
    assert f"#{n} ack: no auto-reply: message is auto-generated (Auto-Submitted: auto-replied)" in proc.stdout


def test_no_reply_and_bulk_senders_never_get_an_auto_reply(rk):
    rk.rules(ACK)
    numbers = [rk.message(sender=s) for s in ("noreply@bank.co.id", "no-reply@shop.example", "MAILER-DAEMON@mx.example",
                                               "list-bounces@lists.example", "ani@example.co.id")]
    res = rules.route(rk.store)
    assert _sent(rk) == []
    assert [ln.text for ln in res.lines] == [
        "no auto-reply: sender noreply@bank.co.id is a no-reply or bulk address",
        "no auto-reply: sender no-reply@shop.example is a no-reply or bulk address",
        "no auto-reply: sender mailer-daemon@mx.example is a no-reply or bulk address",
        "no auto-reply: sender list-bounces@lists.example is a no-reply or bulk address",
        "no auto-reply: sender ani@example.co.id is one of our own addresses",
    ]
    assert len(numbers) == res.routed


def test_rate_limited_per_sender_across_runs(rk):
    rk.rules("""
        - name: ack
          then:
            - auto_reply: {template: auto_reply_received.txt.j2, max_per_sender: 2, per_hours: 24}
        """)
    first = [rk.message(sender="spammy@example.com", subject=f"t{i}") for i in range(3)]
    rules.route(rk.store)
    later = rk.message(sender="spammy@example.com", subject="t4")
    other = rk.message(sender="calm@example.com", subject="t5")
    res = rules.route(Store(rk.store.root))
    replied = {e["ticket"] for e in _sent(rk)}
    assert replied == {first[0], first[1], other}
    assert "no auto-reply: rate limit: 2 auto-replies to spammy@example.com in 24h" in [ln.text for ln in res.lines]
    assert later not in replied


def test_rate_limit_window_read_backwards_ends_at_its_start(rk):
    """Issue 16: the rate limit reads the auto-replies backwards from the log's end and stops
    at the first older than the window (it scanned the month's whole segment): two replies
    at 09:00 block a third at 10:00 and none at 09:30 the next day; events imported since
    with older times do not end the read early."""
    from datetime import datetime, timedelta, timezone

    rk.rules("""
        - name: ack
          then:
            - auto_reply: {template: auto_reply_received.txt.j2, max_per_sender: 2, per_hours: 24}
        """)
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    first = [rk.message(sender="spammy@example.com", subject=f"t{i}", at=t0 + timedelta(minutes=i)) for i in range(2)]
    rules.route(Store(rk.store.root))
    rk.message(sender="old@example.com", subject="imported", at=datetime(2025, 1, 1, tzinfo=timezone.utc))
    rk.mp.setenv("TIX_NOW", "2026-03-02T10:00:00Z")
    blocked = rk.message(sender="spammy@example.com", subject="t2", at=t0 + timedelta(hours=1))
    rules.route(Store(rk.store.root))
    day2 = rk.message(sender="spammy@example.com", subject="t3", at=t0 + timedelta(hours=24, minutes=30))
    rules.route(Store(rk.store.root))
    replied = {e["ticket"] for e in _sent(rk)}
    assert {*first, day2} <= replied and blocked not in replied


def test_rate_limit_read_ends_a_day_before_its_window_but_not_at_an_import(rk, monkeypatch):
    """Issue 16: with no auto-reply just before the window, the backward read went through
    the month's whole segment (0.75 s at 1M tickets). Any event written a day before the
    window now ends it; an imported one (its item's own, older time) does not. Tiny blocks
    make the log many blocks long, as a month is."""
    from datetime import datetime, timedelta, timezone

    from tix.store import log as logmod
    from tix.tickets import create_ticket

    monkeypatch.setattr(logmod, "_BLOCK", 64)
    rk.rules("""
        - name: ack
          then:
            - auto_reply: {template: auto_reply_received.txt.j2, max_per_sender: 2, per_hours: 24}
        """)
    t0 = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)
    old = [rk.message(sender="spammy@example.com", subject=f"o{i}", at=t0 - timedelta(days=3, minutes=i))
           for i in range(2)]
    rules.route(Store(rk.store.root))
    rk.mp.setenv("TIX_NOW", "2026-03-08T08:00:00Z")  # more than a day before the window: no auto-replies
    with rk.store.writing(actor="user:ani", via="tix") as b:
        for i in range(20):
            create_ticket(b, f"phone call {i}", team="support")
    near = [rk.message(sender="spammy@example.com", subject=f"n{i}", at=t0 - timedelta(hours=1, minutes=i))
            for i in range(2)]
    rules.route(Store(rk.store.root))
    rk.mp.setenv("TIX_NOW", "2025-01-01T00:00:00Z")
    with rk.store.writing(actor="system", via="tix import") as b:
        for i in range(8):
            create_ticket(b, f"imported long ago {i}", team="support")
    last = rk.message(sender="spammy@example.com", subject="now", at=t0)
    ends = []
    real = logmod.EventLog._matches_backward

    def spy(self, *args):
        for line, pos in real(self, *args):
            if line is None:
                ends.append(pos)
            yield line, pos

    monkeypatch.setattr(logmod.EventLog, "_matches_backward", spy)
    rules.route(Store(rk.store.root))
    replied = {e["ticket"] for e in _sent(rk)}
    assert {*old, *near} <= replied and last not in replied  # the two of the last 24 h were counted
    assert len(ends) == 1  # ended by an event of March 8, before reaching the replies of March 7


def test_auto_reply_on_a_channel_that_cannot_send_is_skipped(rk):
    rk.rules("""
        - name: ack
          then:
            - auto_reply: auto_reply_received.txt.j2
        """)
    rk.message(channel="phone", sender="62812")
    res = rules.route(rk.store)
    assert [ln.text for ln in res.lines] == ["no auto-reply: channel phone cannot send replies"]
    assert res.errors == []
