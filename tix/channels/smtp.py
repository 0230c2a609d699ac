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

A reply goes out from the address the ticket came in on (its `inbox`), with our own
Message-ID, In-Reply-To / References naming the customer's last messages and the
subject tag `[#N]`, so it threads in the customer's mail client and back into tix.
Auto-replies carry `Auto-Submitted: auto-replied` and `X-Loop` (RFC 3834).

`send_item` maps SMTP failures onto the outbox's error types: 4xx and network errors
are `SendTemporary` (retried with backoff), 5xx `SendPermanent`, authentication or a
missing configuration `ChannelStopped`.
"""
from __future__ import annotations

import re
import secrets
import smtplib
import socket
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, parseaddr

from tix import tls
from tix.errors import ChannelStopped, Problem, SendPermanent, SendTemporary, UsageError

KEYS = {"host": str, "port": int, "security": str, "user": str, "password_env": str, "password_file": str,
        "from": str, "auto_reply_cap": int, "timeout": (int, float), "x_loop": str, "ca_file": str}
SECURITY = ("starttls", "ssl", "plain")


def validate(node, fname: str) -> list[Problem]:
    """Validate the `outbound:` section; one Problem per mistake, with its line."""
    from tix.config import suggest

    if not isinstance(node, dict):
        return [Problem(fname, getattr(node, "line", None), "outbound must be a mapping (host, port, security, from, …)")]
    out = []

    def at(key):
        return node.line_of(key) if hasattr(node, "line_of") else None

    for key, value in node.items():
        if key not in KEYS:
            out.append(Problem(fname, at(key), f"outbound: unknown key {key!r}{suggest(key, KEYS)}"))
        elif value is not None and (not isinstance(value, KEYS[key]) or isinstance(value, bool)):
            out.append(Problem(fname, at(key), f"outbound: {key} has the wrong type: {value!r}"))
    if not node.get("host"):
        out.append(Problem(fname, getattr(node, "line", None), "outbound: host is required"))
    if node.get("security") is not None and node.get("security") not in SECURITY:
        out.append(Problem(fname, at("security"), f"outbound: security must be one of {', '.join(SECURITY)}"))
    frm = node.get("from")
    if not frm or "@" not in parseaddr(str(frm))[1]:
        out.append(Problem(fname, at("from") or getattr(node, "line", None),
                           "outbound: from must be an address, e.g. \"Support <support@example.co.id>\""))
    if node.get("user") and not (node.get("password_env") or node.get("password_file")):
        out.append(Problem(fname, at("user"), "outbound: with user, name the password by password_env or password_file"))
    return out


def settings(store) -> dict:
    return dict(store.config.section("outbound", {}) or {})


# -- composing ------------------------------------------------------------------------------
_RE = re.compile(r"^\s*((re|aw|sv|fw|fwd|balas|bls)\s*(\[\d+\])?\s*:\s*)+", re.I)


def reply_subject(subject: str, number: int, prefix: str = "#") -> str:
    base = _RE.sub("", subject or "").strip() or "(no subject)"
    tag = f"[{prefix}{number}]"
    if tag not in base:
        base = f"{base} {tag}"
    return f"Re: {base}"


def compose(store, reader, ticket_row: dict, text: str, template=None) -> dict:
    """The email payload of a reply on `ticket_row`: addresses, subject, thread headers."""
    from tix.channels.index import MailIndex

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


def _index(store):
    from tix.channels.index import MailIndex

    idx = getattr(store, "_tix_mail_index", None)
    if idx is None:
        idx = MailIndex.load(store)
        store._tix_mail_index = idx
    else:
        idx.catch_up(store)
    return idx


def render(payload: dict, auto: bool, outbox_id: str, ticket: int | None = None, x_loop: str | None = None,
           now=None) -> bytes:
    """The RFC 5322 bytes of a composed payload (what is stored and what is sent)."""
    from datetime import datetime, timezone

    msg = EmailMessage()
    msg["From"] = payload["from"]
    msg["To"] = ", ".join(payload["to"])
    if payload.get("cc"):
        msg["Cc"] = ", ".join(payload["cc"])
    msg["Subject"] = payload["subject"]
    msg["Date"] = format_datetime(now or datetime.now(timezone.utc))
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
    # CRLF line ends: bare LFs are refused by strict servers (and are what smtplib sends as is)
    return msg.as_bytes(policy=SMTP)


# -- sending --------------------------------------------------------------------------------
_CONN: dict = {}


def send_item(store, item: dict) -> dict:
    """Send one queued item (its raw file) and return {"provider_id": Message-ID, …}."""
    out = settings(store)
    if not out.get("host"):
        raise ChannelStopped("no outbound: section in tix.yaml: cannot send email")
    raw = store.root.joinpath(item["raw"]).read_bytes()
    rcpts = list(item.get("to") or []) + list(item.get("cc") or [])
    envelope = parseaddr(str(item.get("from") or out.get("from")))[1]
    try:
        conn = _connection(out)
        refused = conn.sendmail(envelope, rcpts, raw)
    except smtplib.SMTPAuthenticationError as exc:
        _drop()
        raise ChannelStopped(f"SMTP authentication failed ({exc.smtp_code})") from None
    except UsageError as exc:  # configuration: a missing password variable or ca_file
        raise ChannelStopped(str(exc)) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [c for c, _ in exc.recipients.values()]
        if codes and all(c >= 500 for c in codes):
            raise SendPermanent(f"recipients refused: {_refusals(exc.recipients)}") from None
        raise SendTemporary(f"recipients deferred: {_refusals(exc.recipients)}") from None
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        _drop()
        if exc.smtp_code >= 500:
            raise SendPermanent(f"rejected by the SMTP server: {exc.smtp_code} {_text(exc.smtp_error)}") from None
        raise SendTemporary(f"deferred by the SMTP server: {exc.smtp_code} {_text(exc.smtp_error)}") from None
    except (smtplib.SMTPException, OSError, socket.timeout) as exc:
        _drop()
        raise SendTemporary(describe_error(exc, out)) from None
    if refused and len(refused) == len(rcpts):
        raise SendPermanent(f"recipients refused: {_refusals(refused)}")
    return {"provider_id": item.get("message_id"), "refused": sorted(refused) if refused else []}


def _connection(out: dict):
    key = tuple(str(out.get(k)) for k in ("host", "port", "security", "user", "ca_file"))
    if _CONN.get("key") != key:  # another store's server (a long-running process, the tests)
        _drop()
    conn = _CONN.get("conn")
    if conn is not None:
        try:
            if conn.noop()[0] == 250:
                return conn
        except smtplib.SMTPException:
            pass
        _drop()
    conn = connect(out)
    _CONN.update(conn=conn, key=key)
    return conn


DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "plain": 25}


def connect(out: dict, timeout: float | None = None) -> smtplib.SMTP:
    """An SMTP connection by the `outbound:` settings: TLS verified (`tix.tls`), logged in.

    The one way tix connects to its SMTP server (replies, SLA notifications, reports).
    Raises smtplib/OSError exceptions for the caller to classify; a TLS failure is an
    `ssl.SSLError` whose one-line description is `tix.tls.describe`.
    """
    from tix.config import read_secret

    security = str(out.get("security") or "starttls").lower()
    host = str(out["host"])
    port = int(out.get("port") or DEFAULT_PORTS.get(security, 587))
    timeout = float(timeout or out.get("timeout") or 30)
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


def describe_error(exc: BaseException, out: dict) -> str:
    """One line for a failed connection (TLS reason spelled out; never a secret)."""
    security = str(out.get("security") or "starttls").lower()
    host, port = out.get("host"), int(out.get("port") or DEFAULT_PORTS.get(security, 587))
    known = tls.describe(exc, str(host), port)
    if known:
        return known
    if isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException):
        return f"SMTP {host}:{port} unreachable: {exc.strerror or exc}"
    return f"SMTP {host}:{port}: {type(exc).__name__}: {exc}"


def _drop() -> None:
    conn = _CONN.pop("conn", None)
    if conn is not None:
        try:
            conn.quit()
        except Exception:  # noqa: BLE001
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass


def finish() -> None:
    """Close the cached connection (called by the outbox after a flush)."""
    _drop()


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _refusals(recipients: dict) -> str:
    return "; ".join(f"{addr} {code} {_text(msg)}" for addr, (code, msg) in sorted(recipients.items()))[:500]
