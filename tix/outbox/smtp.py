"""The one SMTP sender: replies, notifications and report mail all leave tix here, and every
SMTP failure is turned into an outbox error here (`connect_error`, `send_error`).

The connection comes from `tix.channels.mail.smtp.connect` (the `outbound:` settings, TLS
verified, logged in); one connection serves a whole flush. Errors, each one line that
never holds a password (a refused login shows the server's code, not its text)::

    connecting (socket, TLS, STARTTLS, EHLO, login, settings)       ChannelStopped
        SMTP HOST:PORT unreachable: Connection refused
        TLS certificate of HOST:PORT not trusted: … (for a private CA, set ca_file: …)
        SMTP HOST:PORT: login refused (535)
        SMTP HOST:PORT: refused the connection: 421 …
        SMTP HOST:PORT: outbound: ca_file … does not exist   (and other setting problems)
    sending one message
        every recipient refused with 5xx                             SendPermanent  recipients refused: …
        a recipient deferred with 4xx                                SendTemporary  recipients deferred: …
        an address not ASCII, the server without SMTPUTF8            SendPermanent  … does not offer SMTPUTF8 …
        MAIL FROM or DATA answered 5xx                               SendPermanent  rejected by the SMTP server: …
        … answered 4xx                                               SendTemporary  deferred by the SMTP server: …
        connection lost, network error                               SendTemporary  SMTP HOST:PORT: connection lost: …
"""
from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr

from tix import tls
from tix.channels.mail.smtp import DEFAULT_PORTS, connect, header_text, settings
from tix.errors import ChannelStopped, SendPermanent, SendTemporary, TixError, UsageError
from tix.outbox.index import CUSTOMER
from tix.store.log import utcnow


def where(spec: dict) -> tuple[str, int]:
    security = str(spec.get("security") or "starttls").lower()
    return str(spec.get("host")), int(spec.get("port") or DEFAULT_PORTS.get(security, 587))


def connect_error(exc: BaseException, spec: dict) -> ChannelStopped:
    """The error for a failed connection: the server cannot be used now, whatever the message."""
    host, port = where(spec)
    server = f"SMTP {host}:{port}"
    known = tls.describe(exc, host, port)
    if known:
        text = known
    elif isinstance(exc, UsageError):
        text = f"{server}: {exc}"
    elif isinstance(exc, smtplib.SMTPAuthenticationError):
        text = f"{server}: login refused ({exc.smtp_code})"  # the server's text may echo what we sent
    elif isinstance(exc, smtplib.SMTPResponseException):
        text = f"{server}: refused the connection: {exc.smtp_code} {_text(exc.smtp_error)}"
    elif isinstance(exc, smtplib.SMTPServerDisconnected):
        text = f"{server}: the server closed the connection"
    elif isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException):
        text = f"{server} unreachable: {exc.strerror or str(exc) or type(exc).__name__}"
    else:
        text = f"{server}: {type(exc).__name__}: {exc}"
    return ChannelStopped(_one_line(text))


def send_error(exc: BaseException, spec: dict) -> TixError:
    """The error for a failed send of one message on an open connection."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        if codes and all(c >= 500 for c in codes):
            return SendPermanent(f"recipients refused: {_refusals(exc.recipients)}")
        return SendTemporary(f"recipients deferred: {_refusals(exc.recipients)}")
    if isinstance(exc, smtplib.SMTPResponseException):
        if 500 <= exc.smtp_code < 600:
            return SendPermanent(_one_line(f"rejected by the SMTP server: {exc.smtp_code} {_text(exc.smtp_error)}"))
        return SendTemporary(_one_line(f"deferred by the SMTP server: {exc.smtp_code} {_text(exc.smtp_error)}"))
    host, port = where(spec)
    return SendTemporary(tls.describe(exc, host, port)
                         or _one_line(f"SMTP {host}:{port}: connection lost: {type(exc).__name__}: {exc}"))


class SmtpSender:
    """Sends outbox items of channel `email` (one connection per flush, opened on first use)."""

    def __init__(self, store):
        self.store = store
        self.spec = settings(store)
        self.conn: smtplib.SMTP | None = None

    def render(self, item: dict) -> tuple[str, list[str], bytes, str | None]:
        """(envelope sender, recipients, message bytes, Message-ID) of an item."""
        if not self.spec.get("host"):
            raise ChannelStopped("no SMTP server configured (outbound: host in tix.yaml): cannot send email")
        if not item.get("raw"):
            return notification_message(item, self.spec)
        data = self.store.root.joinpath(item["raw"]).read_bytes()
        if item["purpose"] in CUSTOMER:
            rcpts = [*(item.get("to") or []), *(item.get("cc") or [])]
            envelope = parseaddr(str(item.get("from") or self.spec.get("from") or ""))[1]
        else:
            rcpts = _addresses(item.get("target"))
            envelope = parseaddr(str(self.spec.get("from") or ""))[1]
        return envelope, rcpts, data, item.get("message_id")

    def send(self, item: dict, made) -> dict:
        envelope, rcpts, data, message_id = made
        conn = self._connection()
        try:
            refused = conn.sendmail(envelope, rcpts, data, mail_options=_utf8_options(conn, envelope, rcpts))
        except TixError:
            raise
        except (smtplib.SMTPException, OSError) as exc:
            if not isinstance(exc, smtplib.SMTPRecipientsRefused):  # after a refused RCPT the session is fine
                self.close()
            raise send_error(exc, self.spec) from None
        except BaseException:
            self.close()  # the session is in an unknown state
            raise
        if refused and len(refused) == len(rcpts):
            raise SendPermanent(f"recipients refused: {_refusals(refused)}")
        return {"provider_id": message_id, "refused": sorted(refused) if refused else []}

    def _connection(self) -> smtplib.SMTP:
        if self.conn is not None:
            try:
                if self.conn.noop()[0] == 250:
                    return self.conn
            except (smtplib.SMTPException, OSError):
                pass
            self.close()
        try:
            self.conn = connect(self.spec)
        except (UsageError, smtplib.SMTPException, OSError) as exc:
            raise connect_error(exc, self.spec) from None
        return self.conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()


def _utf8_options(conn: smtplib.SMTP, envelope: str, rcpts: list[str]) -> list[str]:
    """SMTPUTF8 for an address that is not ASCII (RFC 6531), when the server offers it."""
    wide = [a for a in (envelope, *rcpts) if not a.isascii()]
    if not wide:
        return []
    conn.ehlo_or_helo_if_needed()
    if conn.has_extn("smtputf8"):
        return ["SMTPUTF8"]
    raise SendPermanent(f"the SMTP server does not offer SMTPUTF8, so it cannot send to or from {wide[0]}")


def notification_message(item: dict, spec: dict) -> tuple[str, list[str], bytes, str]:
    """A notification as an email: plain text from its subject and body (and a Reply-To from
    its payload's `reply_to`)."""
    sender = str(spec.get("from") or spec.get("user") or "tix@localhost")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = item["target"]
    msg["Subject"] = header_text(item.get("subject") or "")
    msg["Date"] = format_datetime(utcnow())
    domain = parseaddr(sender)[1].rpartition("@")[2] or None
    msg["Message-ID"] = make_msgid(idstring=item["id"], domain=domain)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: never auto-reply to this
    msg["X-Tix-Notification"] = item["id"]
    reply_to = (item.get("payload") or {}).get("reply_to")
    if reply_to:  # agent mail: the address with the reply token (tix.outbox.agentmail)
        msg["Reply-To"] = str(reply_to)
    msg.set_content(item.get("body") or "")
    return parseaddr(sender)[1], _addresses(item["target"]), msg.as_bytes(policy=SMTP), msg["Message-ID"]


def _addresses(target) -> list[str]:
    rcpts = [addr for _name, addr in getaddresses([str(target or "")]) if addr]
    if not rcpts:
        raise SendPermanent(f"no address to send to in {target!r}")
    return rcpts


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:500]


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _refusals(recipients: dict) -> str:
    return _one_line("; ".join(f"{addr} {code} {_text(msg)}" for addr, (code, msg) in sorted(recipients.items())))
