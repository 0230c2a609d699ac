"""Notifications through the outbox: a real SMTP server (aiosmtpd) and a real HTTP server on loopback."""
from __future__ import annotations

from tests.plugins.sla import SmtpSink, free_port, jkt, use_smtp
from tix import outbox
from tix.outbox import index as outbox_index
from tix.sla.escalate import escalate


def english(store) -> None:
    """These tests read the English notification texts: the site's locale is `en` (issue 15: they follow it)."""
    path = store.path("tix.yaml")
    path.write_text(path.read_text().replace("  locale: id ", "  locale: en ", 1))
    store.reload_config()


def events(store, type_):
    return [ev for ev, _p in store.log.read() if ev["type"] == type_]


def test_warning_email_is_sent_by_smtp_once(sla_store, timeline, smtp_sink):
    english(sla_store)
    use_smtp(sla_store, smtp_sink.port)
    n = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent", subject="Pembayaran gagal <INV-7>")
    report = escalate(sla_store, now=jkt(2026, 11, 23, 9, 50))  # 50 of 60 minutes: warning
    assert report.ok and report.notify.sent == 1
    assert len(smtp_sink.messages) == 1
    rcpt, msg = smtp_sink.messages[0]
    assert rcpt == ["lead@example.co.id"]
    assert msg["Subject"] == f"[#{n}] SLA warning: first response due 2026-11-23 10:00 WIB"
    assert msg["From"] == "Toko Support <tix@toko.example>"
    assert msg["Message-ID"].endswith("@toko.example>")
    assert msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_payload()
    assert "Pembayaran gagal <INV-7>" in body and "Used so far: 50m; left: 10m" in body
    queued, sent = events(sla_store, "outbox.queued"), events(sla_store, "outbox.sent")
    assert len(queued) == 1 and [s["data"]["outbox"] for s in sent] == [queued[0]["data"]["outbox"]]
    assert queued[0]["seq"] < sent[0]["seq"]  # written before sending, marked after
    escalate(sla_store, now=jkt(2026, 11, 23, 9, 55))
    assert len(smtp_sink.messages) == 1  # the step is not repeated
    assert outbox.items(sla_store, dead=True) == []


def test_unreachable_smtp_exits_1_keeps_it_and_a_later_run_sends_it(sla_store, timeline, tix):
    english(sla_store)
    port = free_port()
    use_smtp(sla_store, port)  # nothing listens there yet
    n = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")
    proc = tix("escalate", "--now", "2026-11-23T09:50:00+07:00")
    assert proc.returncode == 1
    assert "Error: notification n" in proc.stderr and "unreachable" in proc.stderr
    assert "will retry after 2026-11-23T02:51:00" in proc.stderr  # 1 minute backoff
    listing = tix("notify", "list", "-f", "json", check=0).stdout
    assert f"[#{n}] SLA warning" in listing and '"attempts": 1' in listing
    failed = events(sla_store, "outbox.failed")
    assert failed[0]["data"]["permanent"] is False
    # before the backoff has passed, the next run does not try again (and is not a failure)
    assert tix("notify", "flush", "--now", "2026-11-23T09:50:30+07:00").returncode == 0
    assert len(events(sla_store, "outbox.failed")) == 1
    sink = SmtpSink(port).start()
    try:
        proc = tix("escalate", "--now", "2026-11-23T09:53:00+07:00")
        assert proc.returncode == 0, proc.stderr
        assert len(sink.messages) == 1 and f"[#{n}]" in sink.messages[0][1]["Subject"]
    finally:
        sink.stop()
    assert tix("notify", "list", check=0).stdout == ""
    assert len(events(sla_store, "outbox.sent")) == 1


def test_backoff_doubles_up_to_an_hour():
    assert [outbox.backoff(a) for a in (1, 2, 3, 4, 7, 8, 20)] == [60, 120, 240, 480, 3600, 3600, 3600]


def _use_webhook(store, url: str, slack: bool) -> None:
    path = store.path("tix.yaml")
    text = path.read_text().replace(
        "- {name: breach, on: breached, tag: sla-breached, team: billing}",
        "- {name: breach, on: breached, tag: sla-breached, "
        f"notify: {{webhook: '{url}', slack: {str(slack).lower()}}}}}")
    path.write_text(text)


def test_breach_webhook_slack_body(sla_store, timeline, hook_server):
    english(sla_store)
    _use_webhook(sla_store, hook_server.url, slack=True)
    n = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")
    timeline.reply(n, jkt(2026, 11, 23, 9, 10))
    report = escalate(sla_store, now=jkt(2026, 11, 23, 17, 30))  # resolution (8 h) breached
    assert report.ok
    assert len(hook_server.requests) == 1
    path, body = hook_server.requests[0]
    assert path == "/hooks/T0/B0"
    assert list(body) == ["text"]
    assert body["text"].startswith(f"[#{n}] SLA breached: resolution was due 2026-11-23 17:00 WIB")


def test_webhook_json_retried_after_5xx_and_dead_after_4xx(sla_store, timeline, hook_server):
    english(sla_store)
    _use_webhook(sla_store, hook_server.url, slack=False)
    n = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")
    timeline.reply(n, jkt(2026, 11, 23, 9, 10))
    hook_server.status = 503
    first = escalate(sla_store, now=jkt(2026, 11, 23, 17, 30))
    assert not first.ok and "answered 503" in first.notify.failed_items[0]["error"]
    hook_server.status = 200
    later = outbox.flush(sla_store, jkt(2026, 11, 23, 17, 32))
    assert later.ok and later.sent == 1
    _path, body = hook_server.requests[-1]
    assert body["ticket"] == n and body["policy"] == "urgent" and body["target"] == "resolution"
    assert body["state"] == "breached" and body["subject"].startswith(f"[#{n}] SLA breached")

    m = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")
    timeline.reply(m, jkt(2026, 11, 23, 9, 10))
    hook_server.status = 404
    bad = escalate(sla_store, now=jkt(2026, 11, 23, 17, 40))
    assert not bad.ok and bad.notify.failed_items[0]["status"] == "dead"
    dead = [it for it in outbox.items(sla_store, dead=True) if it["status"] == "dead"]
    assert len(dead) == 1 and "answered 404" in dead[0]["error"]
    requests_before = len(hook_server.requests)
    again = outbox.flush(sla_store, jkt(2026, 11, 24, 9, 0))
    assert again.ok and again.dead == 1 and len(hook_server.requests) == requests_before


def test_a_key_is_queued_at_most_once(sla_store):
    with sla_store.writing() as batch:
        a = outbox.notify(batch, "email", "x@example.id", "s", "b", key="k1")
        b = outbox.notify(batch, "email", "x@example.id", "s", "b", key="k1")
    with sla_store.writing() as batch:
        c = outbox.notify(batch, "email", "x@example.id", "s", "b", key="k1")
    assert a == b == c
    assert len(events(sla_store, "outbox.queued")) == 1
    outbox.OutboxIndex.load(sla_store).save()
    assert "k1" in outbox.OutboxIndex.load(sla_store).keys
    sla_store.path("state", "outbox.json").unlink()  # the index is a cache: rebuilt from the log
    with sla_store.writing() as batch:
        assert outbox.notify(batch, "email", "x@example.id", "s", "b", key="k1") == a
    assert len(events(sla_store, "outbox.queued")) == 1


def test_webhook_url_from_environment_is_never_logged(sla_store, timeline, hook_server, monkeypatch):
    monkeypatch.setenv("TIX_TEST_HOOK", hook_server.url)
    _use_webhook(sla_store, "env:TIX_TEST_HOOK", slack=True)
    n = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")
    timeline.reply(n, jkt(2026, 11, 23, 9, 10))
    report = escalate(sla_store, now=jkt(2026, 11, 23, 17, 30))
    assert report.ok and len(hook_server.requests) == 1
    log = b"".join(p.read_bytes() for p in sla_store.path("events").iterdir())
    assert hook_server.url.encode() not in log and b"env:TIX_TEST_HOOK" in log


def test_index_rebuild_reads_in_chunks_across_line_boundaries(sla_store, monkeypatch):
    monkeypatch.setattr(outbox_index, "CHUNK", 97)  # lines straddle every chunk boundary
    ids = []
    for i in range(6):
        with sla_store.writing() as batch:
            batch.emit("ticket.note", ticket=1, data={"body": "x" * (i * 37)})
            ids.append(outbox.notify(batch, "email", "x@example.id", f"s{i}", "b", key=f"chunk-{i}"))
    with sla_store.writing() as batch:  # replies: only one queued in the outbox is an item
        batch.emit("message.sent", ticket=1, data={"text": 'the "outbox": word, outbox.x and "type":"outbox.y'})
        batch.emit("message.sent", ticket=1, data={"text": "x" * 150, "outbox": "reply-1", "channel": "email"})
        batch.emit("ticket.note", ticket=1, data={"body": "outbox"})
    box = outbox.OutboxIndex(sla_store)
    box.advance()
    assert sorted(box.items) == sorted([*ids, "reply-1"]) and box.items["reply-1"]["purpose"] == "reply"
    assert box.pos == sla_store.log.end()
    assert box.seq == sla_store.log.last_event()["seq"]


def test_email_to_the_assignee(sla_store, timeline, smtp_sink):
    use_smtp(sla_store, smtp_sink.port)
    path = sla_store.path("tix.yaml")
    path.write_text(path.read_text().replace("notify: {email: lead@example.co.id}",
                                             "notify: {email: [lead@example.co.id, assignee]}"))
    n = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")
    timeline.emit("ticket.updated", n, jkt(2026, 11, 23, 9, 1), {"set": {"assignee": "ani"}})
    m = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")  # unassigned: only the lead
    assert escalate(sla_store, now=jkt(2026, 11, 23, 9, 50)).ok
    got = sorted((rcpt[0], msg["Subject"].split("]")[0]) for rcpt, msg in smtp_sink.messages)
    assert got == sorted([("ani@example.co.id", f"[#{n}"), ("lead@example.co.id", f"[#{n}"),
                          ("lead@example.co.id", f"[#{m}")])


def test_an_sla_mail_template_reads_custom_fields_as_a_mapping(sla_store, timeline, smtp_sink, tix):
    """Custom fields reached SLA templates as a JSON string: `{{ ticket.fields.order_id }}` failed."""
    english(sla_store)
    use_smtp(sla_store, smtp_sink.port)
    path = sla_store.path("templates", "sla_warning.j2")
    path.write_text("Subject: [#{{ number }}] order {{ ticket.fields.order_id }}\n\n"
                    "Order {{ ticket.fields.order_id }}\n")
    n = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent", subject="Pembayaran gagal")
    assert tix("set", str(n), "fields.order_id=INV-7", env={"TIX_NOW": "2026-11-23T02:05:00Z"}).returncode == 0
    escalate(sla_store, now=jkt(2026, 11, 23, 9, 50))
    (_rcpt, msg), = smtp_sink.messages
    assert msg["Subject"] == f"[#{n}] order INV-7" and "Order INV-7" in msg.get_payload()
