"""One SMTP error mapping and one backoff policy for every kind of item: a reply, a
notification and a report mail fail with the same line and retry on the same schedule.
Real aiosmtpd (STARTTLS with login from a throwaway CA)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.certs import TestCA
from tests.plugins.email import SmtpServer, add_config
from tix import outbox
from tix.errors import SendTemporary
from tix.reports import mail
from tix.store.log import parse_ts
from tix.tickets import create_contact, create_ticket

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)


def failures(store) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for ev, _p in store.log.read():
        if ev["type"] == "outbox.failed":
            out.setdefault(ev["data"]["outbox"], []).append(ev["data"])
    return out


def one_of_each(store) -> tuple[str, str]:
    """A reply and a notification, queued; their ids."""
    with store.writing(actor="user:ani") as b:
        cid = create_contact(b, "Sari", emails=["sari@pelanggan.example"])
        create_ticket(b, "Paket belum sampai", channel="email", contact=cid, inbox="support@toko.example")
    with store.writing(actor="user:ani") as b:
        reply = outbox.queue(b, dict(b.reader.ticket(1)), "email", "Sedang kami cek.")["outbox"]
        note = outbox.notify(b, "email", "lead@toko.example", "SLA", "isi", key="k", ticket=1)
    return reply, note


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("ca"))


class RefusingSmtpServer(SmtpServer):
    """The test SMTP server, answering a wrong login with 535 (aiosmtpd's AuthResult would
    otherwise leave the failure "handled" and answer nothing)."""

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        ok = (auth_data.login.decode(), auth_data.password.decode()) == self.login
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)


@pytest.fixture
def login_smtp(certs, monkeypatch):
    monkeypatch.setenv("TIX_TEST_SMTP_PASSWORD", "wrong-s3cret")  # the server wants another one
    srv = RefusingSmtpServer(tls="starttls", certs=certs, login=("support@toko.example", "right-s3cret")).start()
    yield srv
    srv.stop()


def test_a_refused_login_is_one_line_alike_for_reply_notification_and_report(store, login_smtp, certs):
    add_config(store, login_smtp.outbound_yaml(ca_file=certs.ca))
    reply, note = one_of_each(store)
    # a refused login stops the channel: one item per flush gets the attempt, the others wait
    first = outbox.flush(store, only={reply})
    second = outbox.flush(store, only={note})
    with pytest.raises(SendTemporary) as report_err:
        mail.send(store, ["owner@toko.example"], "Laporan", "teks", "<p>html</p>")
    expected = f"SMTP 127.0.0.1:{login_smtp.port}: login refused (535)"
    got = failures(store)
    (report_id,) = set(got) - {reply, note}
    assert [got[i][0]["error"] for i in (reply, note, report_id)] == [expected] * 3
    assert all(got[i][0]["permanent"] is False for i in (reply, note, report_id))
    assert first.errors == [f"reply {reply} (#1) failed, attempt 1: {expected}; "
                            f"will retry after {got[reply][0]['next_try']}"]
    assert second.errors[0].startswith(f"notification {note} (email to lead@toko.example) failed, attempt 1: "
                                       f"{expected}; ")
    assert str(report_err.value).startswith(f"cannot send by SMTP: {expected} (the report mail {report_id} stays")
    text = "\n".join([*first.errors, *second.errors, str(report_err.value)])
    assert "s3cret" not in text and len(str(report_err.value).splitlines()) == 1
    assert login_smtp.messages == []
    # once the password is right, the next flush sends all three (the report mail too)
    login_smtp.login = ("support@toko.example", "wrong-s3cret")
    rep = outbox.flush(store, force=True)
    assert rep.sent == 3 and len(login_smtp.messages) == 3


def test_one_backoff_schedule_for_replies_and_notifications(store, smtp_server):
    add_config(store, smtp_server.outbound_yaml())
    smtp_server.reply_code = "451 4.3.0 try again later"
    reply, note = one_of_each(store)
    for hour in range(9):
        rep = outbox.flush(store, now=T0 + timedelta(hours=hour))
        assert rep.failed == 2 and rep.pending == 2
    got = failures(store)
    waits = {oid: [(parse_ts(f["next_try"]) - (T0 + timedelta(hours=i))).total_seconds() for i, f in enumerate(fs)]
             for oid, fs in got.items()}
    schedule = [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert waits == {reply: schedule, note: schedule}
    assert [outbox.backoff(a) for a in range(1, 10)] == schedule
    assert all(set(f) == {"outbox", "channel", "attempt", "error", "permanent", "next_try"}
               for fs in got.values() for f in fs)


def test_given_up_after_max_attempts_alike(store, smtp_server):
    add_config(store, smtp_server.outbound_yaml())
    smtp_server.reply_code = "451 4.3.0 try again later"
    reply, note = one_of_each(store)
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        outbox.flush(store, now=T0 + timedelta(hours=attempt))
    got = failures(store)
    assert [len(got[reply]), len(got[note])] == [outbox.MAX_ATTEMPTS] * 2
    assert got[reply][-1]["permanent"] is got[note][-1]["permanent"] is True
    assert {it["id"]: it["status"] for it in outbox.items(store, dead=True)} == {reply: "dead", note: "dead"}
