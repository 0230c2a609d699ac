"""pytest fixtures for the email tests: a real Dovecot, a real aiosmtpd, sample mail.

- `dovecot` (session): one Dovecot on a free loopback port (tests/dovecot.py). It fails
  loudly, never skips, when /usr/sbin/dovecot is missing.
- `imap_user`: a fresh IMAP user (own mailbox) on that server.
- `smtp_server`: an aiosmtpd server on loopback; `.messages` holds what it received,
  `.reply_code` makes it answer e.g. "451 …" or "550 …" to DATA.
- `mail_store`: the test store with `channels:` (the IMAP user) and `outbound:` (the
  SMTP server) appended to its tix.yaml.
- `make_mail(...)`: a realistic raw message as bytes.
"""
from __future__ import annotations

import itertools
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import pytest

from tests.dovecot import PASSWORD, Dovecot, free_port

_users = itertools.count(1)


@pytest.fixture(scope="session")
def dovecot():
    server = Dovecot().start()  # raises DovecotMissing (a failure, not a skip) without the package
    try:
        yield server
    finally:
        server.stop()


class ImapUser:
    def __init__(self, server: Dovecot, name: str):
        self.server = server
        self.name = name
        self.password = PASSWORD
        self.maildir = server.add_user(name)

    @property
    def port(self) -> int:
        return self.server.port

    def deliver(self, raw: bytes, folder: str = "INBOX"):
        return self.server.deliver(self.name, raw, folder)

    def client(self):
        from imapclient import IMAPClient

        c = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        c.login(self.name, self.password)
        return c

    def source_yaml(self, name: str = "support", **extra) -> str:
        lines = [f"  - name: {name}", "    type: imap", "    host: 127.0.0.1", f"    port: {self.port}",
                 "    security: plain", f"    user: {self.name}", "    password_env: TIX_TEST_IMAP_PASSWORD",
                 "    address: support@toko.example"]
        for k, v in extra.items():
            lines.append(f"    {k}: {v}")
        return "\n".join(lines) + "\n"


@pytest.fixture
def imap_user(dovecot, monkeypatch):
    monkeypatch.setenv("TIX_TEST_IMAP_PASSWORD", PASSWORD)
    return ImapUser(dovecot, f"user{next(_users)}")


class SmtpServer:
    """aiosmtpd on loopback. `tls="starttls"` offers (and requires) STARTTLS, `tls="ssl"`
    is implicit TLS; `login=(user, password)` requires AUTH (only ever over TLS). Each
    received message records whether its session was encrypted and who logged in."""

    def __init__(self, tls: str | None = None, certs=None, login: tuple[str, str] | None = None):
        self.messages: list[dict] = []
        self.reply_code: str | None = None
        self.port = free_port()
        self.controller = None
        self.tls, self.certs, self.login = tls, certs, login

    async def handle_DATA(self, server, session, envelope):
        if self.reply_code:
            return self.reply_code
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "data": bytes(envelope.original_content or envelope.content),
                              "tls": server.transport.get_extra_info("ssl_object") is not None,
                              "login": session.auth_data})
        return "250 Message accepted for delivery"

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        ok = self.login is not None and (auth_data.login.decode(), auth_data.password.decode()) == self.login
        return AuthResult(success=ok, auth_data=auth_data.login.decode() if ok else None)

    def start(self):
        from aiosmtpd.controller import Controller

        kw = {}
        if self.tls == "starttls":
            kw.update(tls_context=self.certs.context(), require_starttls=True)
        elif self.tls == "ssl":
            kw.update(ssl_context=self.certs.context())
        if self.login:
            # aiosmtpd only knows of STARTTLS; an implicit-TLS session is encrypted anyway
            kw.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=self.tls != "ssl")
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kw)
        self.controller.start()
        return self

    def stop(self):
        if self.controller is not None:
            self.controller.stop()

    def outbound_yaml(self, **extra) -> str:
        security = self.tls or "plain"
        text = ("outbound:\n  host: 127.0.0.1\n  port: %d\n  security: %s\n"
                "  from: \"Toko Support <support@toko.example>\"\n  auto_reply_cap: 2\n" % (self.port, security))
        if self.login:
            text += f"  user: {self.login[0]}\n  password_env: TIX_TEST_SMTP_PASSWORD\n"
        return text + "".join(f"  {k}: {v}\n" for k, v in extra.items())


@pytest.fixture
def smtp_server():
    srv = SmtpServer().start()
    try:
        yield srv
    finally:
        srv.stop()


def add_config(store, text: str) -> None:
    """Append YAML sections to the store's tix.yaml (and drop the cached config)."""
    with open(store.root / "tix.yaml", "a", encoding="utf-8") as fh:
        fh.write("\n" + text)
    store.reload_config()


def maildir_source(store, root, extra: str = ""):
    """A maildir at `root`, the store's source `inbox` (after: seen, to support@toko.example);
    `extra`: more YAML, first the source's own keys (indented four spaces). `drop` puts mail in it."""
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True)
    add_config(store, f"channels:\n  - name: inbox\n    type: maildir\n    path: {root}\n    after: seen\n"
                      f"    address: support@toko.example\n" + extra)
    store.md, store.n = root, 0
    return root


def drop(store, raw: bytes, name: str | None = None) -> None:
    """A message into the maildir source's new/, as a mail server delivers it."""
    store.n += 1
    (store.md / "new" / (name or f"{store.n:05d}.test")).write_bytes(raw)


@pytest.fixture
def md_store(store, tmp_path):
    """The test store with a maildir source for team support (`drop` delivers to it)."""
    maildir_source(store, tmp_path / "maildir", "    team: support\n")
    return store


@pytest.fixture
def mail_store(store, imap_user, smtp_server):
    add_config(store, "channels:\n" + imap_user.source_yaml() + smtp_server.outbound_yaml())
    store.imap = imap_user
    store.smtp = smtp_server
    return store


def make_mail(subject="Pesanan belum sampai", body="Halo, pesanan saya INV-1001 belum sampai.",
              frm="Sari Wulandari <sari@pelanggan.example>", to="support@toko.example", msgid=None,
              in_reply_to=None, references=None, headers=None, date=None, attachments=()) -> bytes:
    from datetime import datetime, timezone

    msg = EmailMessage()
    msg["From"] = frm
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime(2026, 11, 20, 3, 0, tzinfo=timezone.utc))
    msg["Message-ID"] = msgid or make_msgid(domain="pelanggan.example")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    for name, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return bytes(msg)


@pytest.fixture
def mail():
    return make_mail
