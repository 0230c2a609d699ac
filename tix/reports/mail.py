"""Sending a report by email: HTML with a plain-text alternative, over the `outbound:` SMTP server.

The `outbound:` section of tix.yaml (shared with the email channel) gives `host`, `port`,
`security` (`starttls`, `ssl` or `plain`), `user`, `password_env` or `password_file`, and
`from`. The password is read with `tix.config.read_secret` and never shown.
"""
from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from tix.config import read_secret
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
    port = int(spec.get("port") or (465 if security == "ssl" else 587 if security == "starttls" else 25))
    return {"host": str(spec["host"]), "port": port, "security": security, "user": spec.get("user"),
            "password": read_secret(spec, "password") if spec.get("user") else None, "from": str(sender)}


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
    try:
        if s["security"] == "ssl":
            smtp = smtplib.SMTP_SSL(s["host"], s["port"], timeout=timeout, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(s["host"], s["port"], timeout=timeout)
        with smtp:
            if s["security"] == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if s["user"]:
                smtp.login(str(s["user"]), s["password"] or "")
            refused = smtp.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        raise SendPermanent(f"cannot send by SMTP ({s['host']} port {s['port']}): login refused ({exc.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise SendPermanent(f"cannot send by SMTP ({s['host']} port {s['port']}): recipients refused: {', '.join(exc.recipients)}") from None
    except smtplib.SMTPResponseException as exc:
        err = SendPermanent if 500 <= exc.smtp_code < 600 else SendTemporary
        raise err(f"cannot send by SMTP ({s['host']} port {s['port']}): {exc.smtp_code} {_text(exc.smtp_error)}") from None
    except (smtplib.SMTPException, OSError, socket.timeout) as exc:
        raise SendTemporary(f"cannot send by SMTP ({s['host']} port {s['port']}): {exc.__class__.__name__}: {exc}") from None
    if refused:
        raise SendPermanent(f"cannot send by SMTP ({s['host']} port {s['port']}): recipients refused: {', '.join(refused)}")
    return msg["Message-ID"]


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
