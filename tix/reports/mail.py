"""Sending a report by email: HTML with a plain-text alternative, over the `outbound:` SMTP server.

The `outbound:` section of tix.yaml (shared with the email channel) gives `host`, `port`,
`security` (`starttls`, `ssl` or `plain`), `user`, `password_env` or `password_file`, and
`from`. The password is read with `tix.config.read_secret` and never shown.
"""
from __future__ import annotations

import smtplib
import socket
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from tix.channels.smtp import DEFAULT_PORTS, connect, describe_error
from tix.errors import SendPermanent, SendTemporary, UsageError

SECURITY = ("starttls", "ssl", "plain")


def outbound_settings(config) -> dict:
    spec = config.section("outbound") or {}
    if not isinstance(spec, dict) or not spec.get("host"):
        raise UsageError(f"{config.path}: --mail-to needs an `outbound:` section with host and from "
                         "(the SMTP server that sends mail)")
    security = str(spec.get("security", "starttls"))
    if security not in SECURITY:
        raise UsageError(f"{config.path}: outbound.security must be one of {', '.join(SECURITY)}, got {security!r}")
    sender = spec.get("from")
    if not sender:
        raise UsageError(f"{config.path}: outbound.from is required to send reports")
    return {**spec, "security": security, "from": str(sender)}


def build_message(sender: str, to: list[str], subject: str, text: str, html: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or None)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to a report
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def send(config, to: list[str], subject: str, text: str, html: str, timeout: float = 30.0) -> str:
    """Send the report; return its Message-ID. SendTemporary/SendPermanent on failure."""
    s = outbound_settings(config)
    msg = build_message(s["from"], to, subject, text, html)
    where = f"cannot send by SMTP ({s['host']} port {s.get('port') or DEFAULT_PORTS[s['security']]})"
    try:
        with connect(s, timeout=timeout) as smtp:
            refused = smtp.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        raise SendPermanent(f"{where}: login refused ({exc.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise SendPermanent(f"{where}: recipients refused: {', '.join(exc.recipients)}") from None
    except smtplib.SMTPResponseException as exc:
        err = SendPermanent if 500 <= exc.smtp_code < 600 else SendTemporary
        raise err(f"{where}: {exc.smtp_code} {_text(exc.smtp_error)}") from None
    except (smtplib.SMTPException, OSError, socket.timeout) as exc:
        raise SendTemporary(f"cannot send by SMTP: {describe_error(exc, s)}") from None
    if refused:
        raise SendPermanent(f"{where}: recipients refused: {', '.join(refused)}")
    return msg["Message-ID"]


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
