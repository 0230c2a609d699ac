"""Outbound email over SMTP (stdlib smtplib): compose, render, send.

Config (`outbound:` in tix.yaml)::

    outbound:
      host: smtp.example.co.id
      port: 587
      security: starttls          # starttls | ssl | plain (plain only for loopback relays)
      user: support@example.co.id
      password_env: TIX_SMTP_PASSWORD
      from: "Toko Contoh Support <support@example.co.id>"
      auto_reply_cap: 3           # automatic replies per recipient per 24 h (tix.outbox)
      attachment_limit_mb: 25     # `tix reply --attach`: the files of one reply together (tix.outbox.attachments)

A reply goes out from the address the ticket came in on (its `inbox`), with our own
Message-ID, In-Reply-To / References naming the customer's last messages and the
subject tag `[#N]`, so it threads in the customer's mail client and back into tix.
Auto-replies carry `Auto-Submitted: auto-replied` and `X-Loop` (RFC 3834).

Sending, and what an SMTP failure means for the message, is the outbox's one SMTP sender
(`tix.outbox.smtp`), for replies, notifications and report mail alike.
"""
from __future__ import annotations

import re
import secrets
import smtplib
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, parseaddr

from tix import tls
from tix.errors import Problem, UsageError
from tix.store.log import utcnow

KEYS = {"host": str, "port": int, "security": str, "user": str, "password_env": str, "password_file": str,
        "from": str, "auto_reply_cap": int, "timeout": (int, float), "x_loop": str, "ca_file": str,
        "allow_plaintext": bool, "attachment_limit_mb": (int, float)}
SECURITY = ("starttls", "ssl", "plain")


def validate(node, fname: str) -> list[Problem]:
    """Validate the `outbound:` section; one Problem per mistake, with its line."""
    from tix.config import check_keys

    if not isinstance(node, dict):
        return [Problem(fname, getattr(node, "line", None),
                        "outbound must be a mapping (host, port, security, from, …)")]
    out = check_keys(node, KEYS, fname, "outbound", types=True)

    def at(key):
        return node.line_of(key) if hasattr(node, "line_of") else None

    if not node.get("host"):
        out.append(Problem(fname, getattr(node, "line", None), "outbound: host is required"))
    if node.get("security") is not None and node.get("security") not in SECURITY:
        out.append(Problem(fname, at("security"), f"outbound: security must be one of {', '.join(SECURITY)}"))
    refused = tls.plaintext_refused(node, "outbound")
    if refused:
        out.append(Problem(fname, at("security"), refused))
    frm = node.get("from")
    if not frm or "@" not in parseaddr(str(frm))[1]:
        out.append(Problem(fname, at("from") or getattr(node, "line", None),
                           "outbound: from must be an address, e.g. \"Support <support@example.co.id>\""))
    if node.get("user") and not (node.get("password_env") or node.get("password_file")):
        out.append(Problem(fname, at("user"),
                           "outbound: with user, name the password by password_env or password_file"))
    return out


def settings(store) -> dict:
    return dict(store.config.section("outbound", {}) or {})


# -- composing ------------------------------------------------------------------------------
_RE = re.compile(r"^\s*((re|aw|sv|fw|fwd|balas|bls)\s*(\[\d+\])?\s*:\s*)+", re.I)


def reply_subject(subject: str, number: int, prefix: str = "#") -> str:
    """`Re: SUBJECT [#N]`: the ticket's own tag once, and no other ticket's tag (a customer who
    typed `[#1]` in a new message's subject must not get `Re: … [#1] [#9]`)."""
    base = _RE.sub("", subject or "").strip()
    tag = f"[{prefix}{number}]"
    base = " ".join(re.sub(rf"\[{re.escape(prefix)}\d+\]", " ", base).split()) or "(no subject)"
    return f"Re: {base} {tag}"


def compose(store, reader, ticket_row: dict, text: str, template=None) -> dict:
    """The email payload of a reply on `ticket_row`: addresses, subject, thread headers."""
    if not text or not str(text).strip():
        raise UsageError("a reply needs text (-m TEXT, --file, stdin, $EDITOR or --macro)")
    contact = reader.contact(ticket_row["contact"]) if ticket_row.get("contact") is not None else None
    emails = list((contact or {}).get("emails") or [])
    if not emails:
        raise UsageError(f"ticket #{ticket_row['number']} has no contact email address to reply to")
    out = settings(store)
    name, default_addr = parseaddr(str(out.get("from") or ""))
    sender = (ticket_row.get("inbox") or "") if "@" in str(ticket_row.get("inbox") or "") else default_addr
    if not sender:
        raise UsageError("no address to send from: set outbound.from in tix.yaml")
    index = _index(store)
    chain = index.thread(ticket_row["number"])
    domain = sender.rsplit("@", 1)[-1]
    mid = f"<tix.{ticket_row['number']}.{secrets.token_hex(8)}@{domain}>"
    return {"from": formataddr((name, sender)) if name else sender, "to": [emails[0]], "cc": [],
            "subject": reply_subject(ticket_row.get("subject") or "", ticket_row["number"],
                                     str(store.config.setting("subject_tag"))),
            "message_id": mid, "in_reply_to": chain[-1] if chain else None, "references": chain[-10:],
            "text": str(text)}


def header_text(value) -> str:
    """Text for a header such as Subject, on one line: a line break, vertical tab or U+2028 in
    a customer's subject becomes a space (the email library refuses them in a header, and what
    a customer writes must never stop a message from being made)."""
    return " ".join(str(value or "").split())


def _index(store):
    from tix.ingest.index import MessageIndex as MailIndex

    idx = store.cache.get("mail_index")
    if idx is None:
        idx = store.cache["mail_index"] = MailIndex.load(store)
    else:
        idx.catch_up(store)
    return idx


def render(payload: dict, auto: bool, outbox_id: str, ticket: int | None = None, x_loop: str | None = None,
           now=None, files=()) -> bytes:
    """The RFC 5322 bytes of a composed payload (what is stored and what is sent); `files`
    (tix.outbox.attachments.Outgoing) are attached, as `payload["attachments"]` names them."""
    msg = EmailMessage()
    msg["From"] = payload["from"]
    msg["To"] = ", ".join(payload["to"])
    if payload.get("cc"):
        msg["Cc"] = ", ".join(payload["cc"])
    msg["Subject"] = header_text(payload["subject"])
    msg["Date"] = format_datetime(now or utcnow())
    msg["Message-ID"] = payload["message_id"]
    if payload.get("in_reply_to"):
        msg["In-Reply-To"] = payload["in_reply_to"]
    if payload.get("references"):
        msg["References"] = " ".join(payload["references"])
    if ticket is not None:
        msg["X-Tix-Ticket"] = str(ticket)
    msg["X-Tix-Outbox"] = outbox_id
    if auto:
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Loop"] = x_loop or parseaddr(payload["from"])[1]
        msg["Precedence"] = "auto_reply"
    msg.set_content(payload["text"])
    for f in files:
        maintype, _, subtype = f.type.partition("/")
        msg.add_attachment(f.data, maintype=maintype or "application", subtype=subtype or "octet-stream",
                           filename=f.name)
    # CRLF line ends: bare LFs are refused by strict servers (and are what smtplib sends as is)
    return msg.as_bytes(policy=SMTP)


# -- connecting -------------------------------------------------------------------------------
DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "plain": 25}


def connect(out: dict, timeout: float | None = None) -> smtplib.SMTP:
    """An SMTP connection by the `outbound:` settings: TLS verified (`tix.tls`), logged in.

    The one way tix connects to its SMTP server (replies, notifications, report mail, all
    sent by `tix.outbox.smtp.SmtpSender`). Raises smtplib/OSError exceptions (a TLS failure
    is an `ssl.SSLError`) and UsageError for a setting; `tix.outbox.smtp.connect_error`
    turns each into one line.
    """
    from tix.config import read_secret

    security = str(out.get("security") or "starttls").lower()
    host = str(out["host"])
    port = int(out.get("port") or DEFAULT_PORTS.get(security, 587))
    timeout = float(timeout or out.get("timeout") or 30)
    tls.check_plaintext(out, "outbound")
    context = tls.client_context(out, "outbound") if security != "plain" else None
    if security == "ssl":
        conn = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        conn = smtplib.SMTP(host, port, timeout=timeout)
    try:
        if security == "starttls":
            conn.starttls(context=context)
        if out.get("user"):
            conn.login(str(out["user"]), read_secret(out, "password") or "")
    except BaseException:
        conn.close()
        raise
    return conn
