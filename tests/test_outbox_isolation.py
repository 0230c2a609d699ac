"""One bad item never stops the outbox: a template that raises, an address the server cannot
take, a subject with line separators, a bug in a sender; each fails (or is repaired) alone,
is listed with its reason, and every other item is sent. Real aiosmtpd, real CLI."""
from __future__ import annotations

import json

import pytest

from tests.plugins.email import SmtpServer, add_config
from tests.plugins.sla import jkt, use_smtp
from tix import outbox
from tix.outbox import sending
from tix.outbox.smtp import SmtpSender
from tix.sla.escalate import escalate
from tix.tickets import create_contact, create_ticket


def events(store, type_):
    return [ev for ev, _p in store.log.read() if ev["type"] == type_]


def test_bad_notifications_fail_alone_and_the_rest_is_sent(sla_store, timeline, smtp_sink, tix):
    use_smtp(sla_store, smtp_sink.port)
    # the site's SLA warning template raises for every ticket
    sla_store.path("templates", "sla_warning.j2").write_text("Subject: [#{{ number }}] warning\n{{ number / 0 }}\n")
    with sla_store.writing() as batch:
        first = outbox.notify(batch, "email", "a@example.co.id", "pertama", "isi", key="first")
        wide = outbox.notify(batch, "email", "pé@example.co.id", "alamat", "isi", key="wide")
        lines = outbox.notify(batch, "email", "c@example.co.id", "tiga\u2028baris\x0bdi sini", "isi", key="lines")
    n = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")
    report = escalate(sla_store, now=jkt(2026, 11, 23, 9, 50))  # warning: its template raises
    assert not report.ok
    assert report.errors == [f"ticket #{n}, SLA step {n}:first_response:0:warn: cannot make the notification: "
                             "template sla_warning.j2: ZeroDivisionError: division by zero"]
    got = {msg["Subject"]: rcpt for rcpt, msg in smtp_sink.messages}
    assert got == {"pertama": ["a@example.co.id"], "alamat": ["pé@example.co.id"],  # by SMTPUTF8
                   "tiga baris di sini": ["c@example.co.id"]}  # line separators in a subject become spaces
    assert {it["id"] for it in report.notify.sent_items} == {first, wide, lines}
    assert report.notify.errors == []
    (warn,) = json.loads(tix("notify", "list", "-f", "json", check=0).stdout)
    assert warn["target"] == "lead@example.co.id"
    assert warn["status"] == "dead" and warn["attempts"] == 0
    assert warn["error"] == "cannot make the notification: template sla_warning.j2: ZeroDivisionError: division by zero"
    # the CLI says so on stderr and exits 1; a later run neither re-queues nor re-sends anything
    proc = tix("escalate", "--now", "2026-11-23T09:55:00+07:00")
    assert proc.returncode == 0, proc.stderr
    assert len(smtp_sink.messages) == 3 and len(events(sla_store, "outbox.queued")) == 4


class AsciiSmtpServer(SmtpServer):
    """The test SMTP server without SMTPUTF8 (as many servers still are)."""

    def start(self):
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=False)
        self.controller.start()
        return self


@pytest.fixture
def ascii_smtp():
    srv = AsciiSmtpServer().start()
    yield srv
    srv.stop()


def test_a_customer_address_or_subject_never_stops_other_replies(store, ascii_smtp, tix):
    smtp_server = ascii_smtp
    add_config(store, smtp_server.outbound_yaml())
    with store.writing(actor="user:ani") as b:
        wide = create_contact(b, "Pé", emails=["pé@pelanggan.example"])
        sari = create_contact(b, "Sari", emails=["sari@pelanggan.example"])
        create_ticket(b, "Pesanan", channel="email", contact=wide)
        create_ticket(b, "Paket\x0bbelum\u2028sampai", channel="email", contact=sari)
    assert tix("reply", "1", "-m", "Halo", "--no-send").returncode == 0
    assert tix("reply", "2", "-m", "Halo", "--no-send").returncode == 0
    proc = tix("outbox", "flush")
    assert proc.returncode == 1
    assert "SMTPUTF8" in proc.stderr and len(proc.stderr.splitlines()) == 1
    (got,) = smtp_server.messages
    assert got["to"] == ["sari@pelanggan.example"]
    assert b"Subject: Re: Paket belum sampai [#2]" in got["data"]
    (dead,) = json.loads(tix("outbox", "list", "-f", "json").stdout)
    assert (dead["ticket"], dead["what"], dead["status"]) == (1, "reply", "dead") and "SMTPUTF8" in dead["error"]
    (note,) = events(store, "ticket.note")
    assert note["ticket"] == 1 and note["data"]["kind"] == "send_failed"


class BuggySender(SmtpSender):
    """The real SMTP sender with a bug for one item (registered the normal way, in SENDERS)."""

    def send(self, item, made):
        if item.get("subject") == "bug":
            raise RuntimeError("something nobody expected")
        return super().send(item, made)


def test_any_exception_fails_only_its_item(sla_store, smtp_sink, monkeypatch, tix):
    use_smtp(sla_store, smtp_sink.port)
    monkeypatch.setitem(sending.SENDERS, "email", f"{__name__}:BuggySender")
    with sla_store.writing() as batch:
        bug = outbox.notify(batch, "email", "a@example.co.id", "bug", "isi", key="bug")
        ok1 = outbox.notify(batch, "email", "b@example.co.id", "ok1", "isi", key="ok1")
        # an event no sender can make a message of (a body that is not text: a bug, or a damaged log)
        batch.emit("outbox.queued", data={"outbox": "nbroken", "purpose": "notification", "kind": "email",
                                          "key": "broken", "target": "c@example.co.id", "subject": "broken",
                                          "body": {"not": "text"}})
        ok2 = outbox.notify(batch, "webhook", "http://127.0.0.1:9/", "ok2", "isi", key="ok2")
        ok3 = outbox.notify(batch, "email", "d@example.co.id", "ok3", "isi", key="ok3")
    rep = outbox.flush(sla_store)
    assert [it["id"] for it in rep.sent_items] == [ok1, ok3]
    failed = {it["id"]: it for it in rep.failed_items}
    assert set(failed) == {bug, "nbroken", ok2}
    assert failed[bug]["status"] == "pending"  # a send that raised: tried again later
    assert failed[bug]["error"] == "unexpected error while sending: RuntimeError: something nobody expected"
    assert failed["nbroken"]["status"] == "dead"  # a message that cannot be made: given up
    assert failed["nbroken"]["error"].startswith("cannot make the message: KeyError")
    assert "unreachable" in failed[ok2]["error"]
    assert sorted(msg["Subject"] for _rcpt, msg in smtp_sink.messages) == ["ok1", "ok3"]
    listed = {it["id"]: it for it in json.loads(tix("outbox", "list", "-f", "json", check=0).stdout)}
    assert set(listed) == {bug, "nbroken", ok2}
    assert listed[bug]["error"] == failed[bug]["error"] and listed[bug]["next_try"]


def test_a_template_that_does_not_compile_fails_its_notification_not_the_run(sla_store, timeline, smtp_sink):
    use_smtp(sla_store, smtp_sink.port)
    sla_store.path("templates", "sla_warning.j2").write_text("Subject: x\n{{ number | no_such_filter }}\n")
    n = timeline.create(jkt(2026, 11, 23, 9, 0), priority="urgent")
    report = escalate(sla_store, now=jkt(2026, 11, 23, 9, 50))
    (line,) = report.errors
    assert line.startswith(f"ticket #{n}, SLA step {n}:first_response:0:warn: cannot make the notification: "
                           "templates/sla_warning.j2")
    assert "no_such_filter" in line and smtp_sink.messages == []
    assert [it["status"] for it in outbox.items(sla_store, dead=True)] == ["dead"]
    assert [e["data"]["step"] for e in events(sla_store, "sla.step")] == ["warn"]  # the step itself was taken
