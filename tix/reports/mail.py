"""Sending a report by email: HTML with a plain-text alternative, through the outbox.

The `outbound:` section of tix.yaml (shared with the email channel) gives `host`, `port`,
`security` (`starttls`, `ssl` or `plain`), `user`, `password_env` or `password_file`, and
`from`. The mail is queued in the outbox (`purpose: report`) and that item is sent at once,
by the outbox's one SMTP sender, so the command still says whether it went out; one that
could not be sent stays queued and goes with a later `tix fetch` / `tix outbox flush`.
"""
from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from tix.channels.mail.smtp import header_text
from tix.errors import SendPermanent, SendTemporary, UsageError
from tix.store.log import utcnow

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
    msg["Subject"] = header_text(subject)
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or None)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to a report
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def send(store, to: list[str], subject: str, text: str, html: str) -> str:
    """Queue the report mail and send it now; return its Message-ID.

    Raises UsageError (nothing queued) without usable `outbound:` settings, and
    SendTemporary / SendPermanent ("cannot send by SMTP: …", one line) when it was not sent.
    """
    from tix import outbox

    s = outbound_settings(store.config)
    msg = build_message(s["from"], to, subject, text, html)
    with store.writing(actor="system", via="tix report --mail-to") as batch:
        oid = outbox.queue_mail(batch, list(to), msg["Subject"], msg.as_bytes(policy=SMTP), msg["Message-ID"])
    rep = outbox.flush(store, only={oid}, wait=float(store.config.setting("lock_timeout")),
                       via="tix report --mail-to")
    if rep.sent:
        return msg["Message-ID"]
    if rep.busy:
        raise SendTemporary("cannot send by SMTP now: another tix is sending the outbox; "
                            f"the report mail {oid} is queued and goes with the next tix fetch / tix outbox flush")
    item = (rep.failed_items or rep.waiting_items or [{}])[0]
    error = item.get("error") or "; ".join(rep.errors) or "not sent"
    if item.get("status") == "dead":
        raise SendPermanent(f"cannot send by SMTP: {error}")
    raise SendTemporary(f"cannot send by SMTP: {error} (the report mail {oid} stays queued and is "
                        "retried by the next tix fetch / tix outbox flush)")
