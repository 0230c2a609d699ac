"""Issue 17: importing a year of history mails nobody; side effects only on what is recent.

A shop imports a year of its shared inbox, then cron runs `tix route` and `tix escalate`
with the example rules (auto-replies on every email ticket) and an SLA policy that mails
the lead on every breach. Nothing may be queued for the history; a message that arrived
minutes ago still gets its auto-reply.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

NOW = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)  # Mon 10:00 WIB

SLA = """
sla:
  policies:
    - name: all
      targets: {first_response: 4h, resolution: 24h}
      steps:
        - {name: tell-lead, on: breached, notify: {email: lead@example.co.id}}
        - {name: tell-lead-early, on: warning, notify: {email: lead@example.co.id}}
"""


def _mail(n: int, when: datetime, frm: str, to: str, subject: str, body: str, reply_to: str | None = None) -> str:
    head = [f"From {frm} {when.strftime('%a %b %d %H:%M:%S %Y')}", "X-Gmail-Labels: Inbox,Opened",
            f"From: {frm}", f"To: {to}", f"Subject: {subject}", f"Date: {format_datetime(when)}",
            f"Message-ID: <m{n}@{frm.split('@')[1]}>", "Content-Type: text/plain; charset=utf-8"]
    if reply_to:
        head += [f"In-Reply-To: <{reply_to}>", f"References: <{reply_to}>"]
    return "\n".join(head) + "\n\n" + body + "\n"


def year_of_history(path, tickets: int = 60) -> None:
    """An mbox of `tickets` threads over the year before NOW: two in three answered."""
    out, start = [], NOW - timedelta(days=365)
    for i in range(tickets):
        t = start + timedelta(days=i * 360 / tickets, hours=2)
        customer = f"c{i}@mail.example"
        subject = f"Pesanan INV-{1000 + i}"
        out.append(_mail(2 * i, t, customer, "support@toko.example", subject, "Halo kak, mohon dicek."))
        if i % 3:
            out.append(_mail(2 * i + 1, t + timedelta(hours=1), "support@toko.example", customer,
                             f"Re: {subject}", "Sudah kami cek ya kak.", reply_to=f"m{2 * i}@mail.example"))
    path.write_text("\n".join(out), encoding="utf-8")


def _json(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_year_of_history_mails_nobody(store, tix, tmp_path, monkeypatch):
    with open(store.root / "tix.yaml", "a", encoding="utf-8") as fh:
        fh.write(SLA)
    monkeypatch.setenv("TIX_NOW", NOW.strftime("%Y-%m-%dT%H:%M:%SZ"))
    box = tmp_path / "history.mbox"
    year_of_history(box)
    tix("import", "mbox", str(box), "--address", "support@toko.example", "--resolve-answered", check=0)
    tickets = _json(tix("list", "--all", "-f", "json"))
    assert len(tickets) == 60
    assert sum(t["status"] == "resolved" for t in tickets) == 40
    routed = tix("-v", "route", check=0)
    assert "not sent (history: older than act_within, or resolved/closed): 60 auto-replies" in routed.stdout
    assert "rule.failed" not in routed.stdout + routed.stderr
    escalated = tix("-v", "escalate", check=0)
    assert _json(tix("outbox", "list", "-f", "json")) == []
    assert _json(tix("notify", "list", "-f", "json")) == []
    events = [json.loads(line) for seg in sorted((store.root / "events").glob("*.jsonl"))
              for line in seg.read_text().splitlines()]
    kinds = [e["type"] for e in events]
    assert "rule.auto_reply" not in kinds and "outbox.queued" not in kinds and "rule.failed" not in kinds
    assert not any(e["type"] == "message.sent" and not e["data"].get("imported") for e in events)
    # the 20 unanswered tickets breached long before SLA watched the store (its first escalate):
    # not acted on, no event per ticket: one `sla.started` counts them; the `sla` view shows them
    assert not [e for e in events if e["type"] in ("sla.step", "sla.breached")]
    (started,) = [e for e in events if e["type"] == "sla.started"]
    assert sum(p["breaches"] for p in started["data"]["before_start"].values()) >= 20
    assert started["data"]["start"] == NOW.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    breached = tix("sql", "SELECT count(DISTINCT ticket) FROM sla WHERE breached", "-f", "csv").stdout
    assert int(breached.split()[-1]) >= 20
    assert "not notified (history: breached before act_within)" not in escalated.stdout  # silent (cron) but -v
    # a message that arrived ten minutes ago is live: it gets its auto-reply
    fresh = tmp_path / "fresh.mbox"
    fresh.write_text(_mail(999, NOW - timedelta(minutes=10), "new@mail.example", "support@toko.example",
                           "Barang rusak", "Halo, barang saya rusak."), encoding="utf-8")
    tix("import", "mbox", str(fresh), check=0)
    tix("route", check=0)
    queued = _json(tix("outbox", "list", "-f", "json"))
    assert [(q["what"], q["to"]) for q in queued] == [("auto_reply", "new@mail.example")]


NOTIFY_RULES = """
- name: vip
  if: {channel: email}
  then:
    - notify: {email: ani, subject: "VIP {{ ticket.ref }}"}
    - tag: [vip]
"""


def test_rules_notify_only_recent_and_open(rk, store, monkeypatch):
    from tix import rules

    rk.rules(NOTIFY_RULES)
    old = rk.message(subject="Lama", at=NOW - timedelta(hours=5))
    closed = rk.message(subject="Selesai", at=NOW - timedelta(minutes=5), ticket_fields={"status": "closed"})
    fresh = rk.message(subject="Baru", at=NOW - timedelta(minutes=5))
    monkeypatch.setenv("TIX_NOW", NOW.strftime("%Y-%m-%dT%H:%M:%SZ"))
    res = rules.route(store)
    assert res.errors == [] and res.skipped == {"notification": 2}
    assert res.skipped_line() == "not sent (history: older than act_within, or resolved/closed): 2 notifications"
    assert [e["data"]["ticket"] for e in rk.events("outbox.queued")] == [fresh]
    assert {n: "vip" in rk.ticket(n)["tags"] for n in (old, closed, fresh)} == {old: True, closed: True, fresh: True}


def test_act_within_is_a_setting_in_the_duration_grammar(store, tix, rk, monkeypatch):
    from tix import rules

    text = (store.root / "tix.yaml").read_text(encoding="utf-8")
    (store.root / "tix.yaml").write_text(text.replace("act_within: 4h", "act_within: soon"), encoding="utf-8")
    proc = tix("config", "check", check=2)
    assert "setting 'act_within' must be a duration (e.g. 30m, 4h, 1d), got 'soon'" in proc.stdout + proc.stderr
    (store.root / "tix.yaml").write_text(text.replace("act_within: 4h", "act_within: 1d"), encoding="utf-8")
    store.reload_config()
    rk.rules(NOTIFY_RULES)
    rk.message(subject="Kemarin sore", at=NOW - timedelta(hours=20))
    monkeypatch.setenv("TIX_NOW", NOW.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert rules.route(store).skipped == {}  # within a day: notified
    assert len(rk.events("outbox.queued")) == 1
