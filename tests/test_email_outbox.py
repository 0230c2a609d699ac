"""The durable outbox against a real aiosmtpd: queue, send, retry with backoff, give up, caps."""
from __future__ import annotations

import email
from datetime import datetime, timedelta, timezone

import pytest

from tests.plugins.email import SmtpServer, add_config, make_mail
from tix import outbox
from tix.errors import UsageError
from tix.tickets import create_contact, create_ticket


@pytest.fixture
def ostore(store, smtp_server):
    add_config(store, smtp_server.outbound_yaml())
    store.smtp = smtp_server
    with store.writing(actor="user:ani") as b:
        cid = create_contact(b, "Sari", emails=["sari@pelanggan.example"])
        create_ticket(b, "Paket belum sampai", channel="email", contact=cid, inbox="support@toko.example")
        create_ticket(b, "Tanpa kontak", channel="email")
    return store


def log(store, kind):
    return [ev for ev, _ in store.log.read() if ev["type"] == kind]


def queue_one(store, text="Sedang kami cek.", auto=False, number=1):
    with store.writing(actor="user:ani", via="test") as b:
        return outbox.queue(b, dict(b.reader.ticket(number)), "email", text, auto=auto)


def test_queue_writes_first_then_flush_sends_and_marks_sent(ostore):
    item = queue_one(ostore)
    (ev,) = log(ostore, "message.sent")
    assert ev["data"]["state"] == "queued" and ev["data"]["outbox"] == item["outbox"] and ev["ticket"] == 1
    raw = (ostore.root / item["raw"]).read_bytes()
    assert ostore.smtp.messages == []  # written, not yet sent
    rep = outbox.flush(ostore)
    assert (rep.sent, rep.failed, rep.pending, rep.errors) == (1, 0, 0, [])
    assert ostore.smtp.messages[0]["data"].replace(b"\r\n", b"\n").rstrip() == raw.replace(b"\r\n", b"\n").rstrip()
    (done,) = log(ostore, "outbox.sent")
    assert done["ticket"] == 1 and done["data"]["outbox"] == item["outbox"]
    assert outbox.flush(ostore).sent == 0  # sent once, never again
    t = ostore.ticket(1)
    assert t["first_response_at"] == ev["ts"] or t["first_response_at"] is not None


def test_temporary_failure_stays_queued_with_backoff_then_succeeds(ostore, tix):
    ostore.smtp.reply_code = "451 4.3.0 try again later"
    item = queue_one(ostore)
    from tix.store.log import iso

    now = datetime.now(timezone.utc).replace(microsecond=0)
    rep = outbox.flush(ostore, now=now)
    assert (rep.sent, rep.failed, rep.pending) == (0, 1, 1) and "451" in rep.errors[0]
    (f,) = log(ostore, "outbox.failed")
    assert f["data"]["attempt"] == 1 and f["data"]["permanent"] is False
    assert f["data"]["next_try"] == iso(now + timedelta(seconds=60)) and f["ticket"] == 1
    # before the retry time nothing is tried; after it, attempt 2 waits twice as long
    assert outbox.flush(ostore, now=now + timedelta(seconds=30)).pending == 1
    outbox.flush(ostore, now=now + timedelta(seconds=61))
    assert log(ostore, "outbox.failed")[-1]["data"]["next_try"] == iso(now + timedelta(seconds=61 + 120))
    listing = tix("outbox", "list", "--format", "json", check=0)
    assert item["outbox"] in listing.stdout and '"attempts": 2' in listing.stdout
    ostore.smtp.reply_code = None
    assert tix("outbox", "flush").returncode == 0  # not yet due
    assert ostore.smtp.messages == []
    assert tix("outbox", "flush", "--force").returncode == 0
    assert len(ostore.smtp.messages) == 1 and outbox.items(ostore) == []


def test_server_down_is_temporary(store, tix):
    from tests.dovecot import free_port

    add_config(store, f"outbound:\n  host: 127.0.0.1\n  port: {free_port()}\n  security: plain\n"
                      "  from: support@toko.example\n")
    with store.writing() as b:
        cid = create_contact(b, "Sari", emails=["sari@pelanggan.example"])
        create_ticket(b, "x", channel="email", contact=cid)
    proc = tix("reply", "1", "-m", "Halo")
    assert proc.returncode == 1
    assert "unreachable: Connection refused" in proc.stderr and "stays queued" in proc.stderr
    assert len(outbox.items(store)) == 1


def test_permanent_failure_gives_up_with_a_note(ostore):
    ostore.smtp.reply_code = "550 5.1.1 no such user"
    queue_one(ostore)
    rep = outbox.flush(ostore)
    assert (rep.sent, rep.failed, rep.pending) == (0, 1, 0)
    assert log(ostore, "outbox.failed")[0]["data"]["permanent"] is True
    (note,) = log(ostore, "ticket.note")
    assert note["data"]["kind"] == "send_failed" and "550" in note["data"]["body"]
    assert outbox.items(ostore) == []


def test_auto_replies_are_marked_capped_and_not_a_first_response(ostore):
    items = [queue_one(ostore, "Terima kasih, pesan Anda kami terima.", auto=True) for _ in range(3)]
    assert [i["state"] for i in items] == ["queued", "queued", "capped"]  # cap is 2 in the fixture
    outbox.flush(ostore)
    msg = email.message_from_bytes(ostore.smtp.messages[0]["data"])
    assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Loop"] == "support@toko.example"
    t = ostore.ticket(1)
    assert t["first_response_at"] is None and t["messages_out"] == 2
    assert all(e["data"]["auto"] for e in log(ostore, "message.sent"))


def test_composer_refuses_a_ticket_without_an_address(ostore, tix):
    with pytest.raises(UsageError, match="no contact email"):
        queue_one(ostore, number=2)
    proc = tix("reply", "2", "-m", "x")
    assert proc.returncode == 2 and proc.stderr == "Error: ticket #2 has no contact email address to reply to\n"
    assert log(ostore, "message.sent") == []


def test_reply_with_a_macro(ostore, tix):
    (ostore.root / "templates" / "macros").mkdir(parents=True, exist_ok=True)
    (ostore.root / "templates" / "macros" / "thanks.txt").write_text(
        "Halo {{ contact.name }},\n\ntiket #{{ ticket.number }} ({{ ticket.subject }}) sudah kami terima.\n")
    tix("reply", "1", "--macro", "thanks", check=0)
    body = (email.message_from_bytes(ostore.smtp.messages[0]["data"]).get_payload(decode=True).decode()
            .replace("\r\n", "\n"))
    assert body == "Halo Sari,\n\ntiket #1 (Paket belum sampai) sudah kami terima.\n"
    assert tix("reply", "1", "--macro", "nope").returncode == 2


def test_fetch_retries_the_outbox(ostore, tix, tmp_path):
    md = tmp_path / "md"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    add_config(ostore, f"channels:\n  - name: inbox\n    type: maildir\n    path: {md}\n")
    ostore.smtp.reply_code = "421 busy"
    queue_one(ostore)
    outbox.flush(ostore, now=datetime(2020, 1, 1, tzinfo=timezone.utc))  # failed long ago: due now
    ostore.smtp.reply_code = None
    (md / "new" / "1.x").write_bytes(make_mail())
    assert tix("fetch").returncode == 0
    assert len(ostore.smtp.messages) == 1


def test_smtp_server_class_is_reusable():
    srv = SmtpServer().start()
    srv.stop()
