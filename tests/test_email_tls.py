"""IMAP and SMTP over TLS against real servers: Dovecot with IMAPS and STARTTLS, aiosmtpd
with STARTTLS (login required, and only over TLS) and with implicit TLS. The servers'
certificates come from a throwaway CA (tests/certs.py): tix trusts it only through
`ca_file:`, and without it refuses the connection with one line and stores nothing."""
from __future__ import annotations

import email
import json
import itertools

import pytest

from tests.certs import TestCA
from tests.dovecot import PASSWORD, Dovecot
from tests.plugins.email import SmtpServer, add_config, make_mail


_users = itertools.count(1)
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(scope="module")
def tls_dovecot():
    server = Dovecot(users=20, tls=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tls_user(tls_dovecot, monkeypatch):
    monkeypatch.setenv("TIX_TEST_IMAP_PASSWORD", PASSWORD)
    user = f"user{next(_users)}"  # a mailbox of its own per test (20 users exist)
    tls_dovecot.maildir(user)
    return user


def imap_yaml(dc: Dovecot, user: str, security: str, ca: bool = True) -> str:
    port = dc.tls_port if security == "ssl" else dc.port
    text = (f"channels:\n  - name: support\n    type: imap\n    host: 127.0.0.1\n    port: {port}\n"
            f"    security: {security}\n    user: {user}\n    password_env: TIX_TEST_IMAP_PASSWORD\n"
            "    address: support@toko.example\n")
    return text + (f"    ca_file: {dc.certs.ca}\n" if ca else "")


def seen_flags(dc: Dovecot, user: str) -> list[bool]:
    from imapclient import IMAPClient

    c = IMAPClient("127.0.0.1", port=dc.port, ssl=False, timeout=30)
    try:
        c.login(user, PASSWORD)
        c.select_folder("INBOX")
        got = c.fetch(c.search(["ALL"]), ["FLAGS"])
        return [b"\\Seen" in got[uid][b"FLAGS"] for uid in sorted(got)]
    finally:
        c.logout()


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_fetch_over_tls_with_the_private_ca(store, tls_dovecot, tls_user, tix, security):
    add_config(store, imap_yaml(tls_dovecot, tls_user, security))
    for i in range(3):
        tls_dovecot.deliver(tls_user, make_mail(subject=f"Lewat TLS {i}", msgid=f"<tls{security}{i}@x>"))
    proc = tix("fetch")
    assert proc.returncode == 0, proc.stderr
    assert [store.ticket(n)["subject"] for n in (1, 2, 3)] == [f"Lewat TLS {i}" for i in range(3)]
    assert seen_flags(tls_dovecot, tls_user) == [True, True, True]
    # the login really went over TLS: Dovecot logs the session as TLS-secured
    assert "secured" in (tls_dovecot.dir / "dovecot.log").read_text(errors="replace")


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_untrusted_certificate_is_one_line_and_nothing_is_touched(store, tls_dovecot, tls_user, tix, security):
    add_config(store, imap_yaml(tls_dovecot, tls_user, security, ca=False))
    tls_dovecot.deliver(tls_user, make_mail(msgid=f"<untrusted{security}@x>"))
    proc = tix("fetch")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    port = tls_dovecot.tls_port if security == "ssl" else tls_dovecot.port
    assert line.startswith(f"Error: source support: TLS certificate of 127.0.0.1:{port} not trusted:")
    assert "ca_file" in line and PASSWORD not in proc.stderr
    assert store.read().max_ticket == 0 and seen_flags(tls_dovecot, tls_user) == [False]


def test_missing_ca_file_is_named(store, tls_dovecot, tls_user, tix, tmp_path):
    add_config(store, imap_yaml(tls_dovecot, tls_user, "ssl", ca=False) + f"    ca_file: {tmp_path}/nope.pem\n")
    proc = tix("fetch")
    assert proc.returncode == 1
    assert f"ca_file {tmp_path}/nope.pem does not exist" in proc.stderr


# -- SMTP -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def tls_smtp(request, certs, monkeypatch):
    monkeypatch.setenv("TIX_TEST_SMTP_PASSWORD", "s3cret-smtp")
    srv = SmtpServer(tls=request.param, certs=certs, login=("support@toko.example", "s3cret-smtp")).start()
    try:
        yield srv
    finally:
        srv.stop()


def _ticket(store):
    from tix.tickets import create_contact, create_ticket

    with store.writing(actor="user:ani") as b:
        cid = create_contact(b, "Sari", emails=["sari@pelanggan.example"])
        create_ticket(b, "Paket belum sampai", channel="email", contact=cid, inbox="support@toko.example")


@pytest.mark.parametrize("tls_smtp", ["starttls", "ssl"], indirect=True)
def test_reply_over_tls_with_login(store, tls_smtp, certs, tix):
    add_config(store, tls_smtp.outbound_yaml(ca_file=certs.ca))
    _ticket(store)
    proc = tix("--as", "budi", "reply", "1", "-m", "Paket sudah dikirim ulang.")
    assert proc.returncode == 0, proc.stderr
    (got,) = tls_smtp.messages
    assert got["tls"] is True and got["login"] == "support@toko.example"
    assert email.message_from_bytes(got["data"])["Subject"] == "Re: Paket belum sampai [#1]"


@pytest.mark.parametrize("tls_smtp", ["starttls"], indirect=True)
def test_untrusted_smtp_certificate_keeps_the_reply_queued_until_fixed(store, tls_smtp, certs, tix):
    add_config(store, tls_smtp.outbound_yaml())
    _ticket(store)
    proc = tix("--as", "budi", "reply", "1", "-m", "Paket sudah dikirim ulang.")
    assert proc.returncode == 1
    assert f"TLS certificate of 127.0.0.1:{tls_smtp.port} not trusted" in proc.stderr
    assert "s3cret-smtp" not in proc.stderr and tls_smtp.messages == []
    (queued,) = json.loads(tix("outbox", "list", "--format", "json").stdout)
    assert queued["ticket"] == 1 and queued["attempts"] == 1 and "not trusted" in queued["error"]
    # the admin names the CA; the next flush sends the same reply, once
    add_config(store, f"  ca_file: {certs.ca}\n")
    proc = tix("outbox", "flush", "--force")
    assert proc.returncode == 0, proc.stderr
    assert len(tls_smtp.messages) == 1 and tls_smtp.messages[0]["tls"] is True
