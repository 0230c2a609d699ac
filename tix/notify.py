"""Internal notifications (to agents and leads, not customers) through a durable outbox.

A notification is first written to the event log (`outbox.queued`, under the store lock,
fsynced) and only then sent; after sending, `outbox.sent` is written, or `outbox.failed`
with the error, the attempt number and when to try again (exponential backoff: 1 min,
2 min, 4 min … capped at 1 h). Failed sends are retried by later runs and reported every
time; a permanent failure (address rejected, webhook answering 4xx) stops the retries but
stays listed by `tix notify list`. Nothing is dropped silently.

    outbox.queued  {"id", "key", "kind": "email"|"webhook", "target", "subject", "body", "payload"}
    outbox.sent    {"id", "key", "attempt"}
    outbox.failed  {"id", "key", "attempt", "error", "next_try", "permanent"}

`key` names what the notification is about (e.g. the SLA step `1042:first_response:0:warn`);
a key is queued at most once, ever. Delivery is at least once: a crash between a send and
its `outbox.sent` makes the next run send it again (the only way to never lose one).

Email goes by SMTP with the `outbound:` settings (host, port, security starttls|ssl|plain,
user, password_env or password_file, from). A webhook gets a JSON POST (requests); with
`slack: true` the body is Slack-compatible (`{"text": …}`). A webhook URL is a secret for
most services, so `target` may be `env:NAME` to read it from an environment variable.

`state/outbox.json` indexes the outbox (pending items, every key ever queued, the log
position it has read up to). It is a cache: deleted, it is rebuilt from the log.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson

from tix.errors import SendPermanent, SendTemporary, UsageError
from tix.store.log import Position, iso

CHUNK = 1 << 24  # 16 MiB
BACKOFF_BASE = 60.0
BACKOFF_MAX = 3600.0
KINDS = ("email", "webhook")


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    return min(BACKOFF_BASE * 2 ** max(attempt - 1, 0), BACKOFF_MAX)


# -- the index -------------------------------------------------------------------------------------
class Outbox:
    """The outbox index: items not yet sent (pending or dead) and every key ever queued."""

    def __init__(self, store):
        self.store = store
        self.path = store.path("state", "outbox.json")
        self.items: dict[str, dict] = {}
        self.keys: dict[str, str] = {}
        self.pos = Position("", 0)
        self.seq = 0

    @classmethod
    def load(cls, store) -> "Outbox":
        box = cls(store)
        try:
            data = orjson.loads(box.path.read_bytes())
            box.items, box.keys = data["items"], data["keys"]
            box.pos, box.seq = Position(data["segment"], data["offset"]), data["seq"]
            if not box._position_ok():
                box = cls(store)
        except (FileNotFoundError, KeyError, ValueError):
            box = cls(store)
        box.advance()
        return box

    def _position_ok(self) -> bool:
        """The log may have been rewritten (erasure); then our position means nothing."""
        if not self.pos.segment:
            return True
        path = self.store.log.dir / self.pos.segment
        if not path.exists() or path.stat().st_size < self.pos.offset:
            return False
        return seq_before(path, self.pos.offset) == self.seq

    def advance(self) -> None:
        """Fold outbox events written since the index was saved.

        Reads the segments in large chunks and parses only the lines holding `"type":"outbox.`
        (a C-speed `bytes.find`), so rebuilding the index over 10M events takes seconds.
        """
        marker = b'"type":"outbox.'
        for name in self.store.log.segments():
            if self.pos.segment and name < self.pos.segment:
                continue
            offset = self.pos.offset if name == self.pos.segment else 0
            with open(self.store.log.dir / name, "rb") as fh:
                fh.seek(offset)
                carry = b""
                while True:
                    chunk = fh.read(CHUNK)
                    if not chunk:
                        break
                    data = carry + chunk
                    cut = data.rfind(b"\n") + 1  # whole lines only; the rest waits for the next chunk
                    whole, carry = data[:cut], data[cut:]
                    if not whole:
                        continue
                    i = whole.find(marker)
                    while i >= 0:
                        start = whole.rfind(b"\n", 0, i) + 1
                        end = whole.find(b"\n", i)
                        self.apply(orjson.loads(whole[start:end]))
                        i = whole.find(marker, end)
                    last = whole[whole.rfind(b"\n", 0, cut - 1) + 1:cut - 1]
                    self.seq = _seq_of(last, self.seq)
                    offset += cut
                    self.pos = Position(name, offset)

    def apply(self, ev: dict) -> None:
        self.seq = ev.get("seq", self.seq)
        kind, d = ev["type"], ev.get("data") or {}
        oid = d.get("id")
        if kind == "outbox.queued":
            self.keys[d["key"]] = oid
            self.items[oid] = {**d, "queued_at": ev["ts"], "status": "pending", "attempts": 0,
                               "next_try": None, "error": None}
        elif kind == "outbox.sent":
            self.items.pop(oid, None)
        elif kind == "outbox.failed" and oid in self.items:
            it = self.items[oid]
            it["attempts"] = d.get("attempt", it["attempts"] + 1)
            it["error"] = d.get("error")
            it["next_try"] = d.get("next_try")
            if d.get("permanent"):
                it["status"] = "dead"

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_bytes(orjson.dumps({"segment": self.pos.segment, "offset": self.pos.offset, "seq": self.seq,
                                      "items": self.items, "keys": self.keys}))
        os.replace(tmp, self.path)


def seq_before(path, offset: int) -> int | None:
    """The seq of the event line ending exactly at byte `offset` of a segment (None if none).

    Saved log positions (`state/outbox.json`, `snapshot/sla-meta.json`) are checked with it:
    if the log was rewritten (an erasure), the position no longer follows that seq.
    """
    if offset <= 0:
        return None
    with open(path, "rb") as fh:
        back = min(offset, 1 << 20)
        fh.seek(offset - back)
        block = fh.read(back)
    if not block.endswith(b"\n"):
        return None
    line = block[:-1].rsplit(b"\n", 1)[-1]
    try:
        return orjson.loads(line).get("seq")
    except ValueError:
        return None


def _seq_of(raw: bytes, default: int) -> int:
    i = raw.find(b'"seq":')
    if i < 0:
        return default
    j = i + 6
    k = j
    while k < len(raw) and raw[k:k + 1].isdigit():
        k += 1
    return int(raw[j:k]) if k > j else default


def _outbox_for(batch) -> Outbox:
    box = getattr(batch, "_tix_outbox", None)
    if box is None:
        box = Outbox.load(batch.store)
        batch._tix_outbox = box
    return box


def notification_id(key: str) -> str:
    return "n" + hashlib.sha256(key.encode()).hexdigest()[:16]


def queue(batch, kind: str = "email", target: str = "", subject: str = "", body: str = "",
          payload: dict | None = None, key: str = "") -> str:
    """Write a notification to the outbox (an `outbox.queued` event in `batch`); return its id.

    Args:
        batch: events being written under the store lock (`Store.writing()`).
        kind: `email` (target: an address) or `webhook` (target: a URL or `env:VARIABLE`;
            payload `{"slack": true}` asks for a Slack-compatible body).
        key: what it is about; a key already queued (ever) is not queued again and its
            existing id is returned.
    """
    if kind not in KINDS:
        raise UsageError(f"unknown notification kind {kind!r}; kinds: {', '.join(KINDS)}")
    if not key:
        raise UsageError("a notification needs a key (what it is about), so that it is queued once")
    box = _outbox_for(batch)
    if key in box.keys:
        return box.keys[key]
    oid = notification_id(key)
    ev = batch.emit("outbox.queued", data={"id": oid, "key": key, "kind": kind, "target": target,
                                            "subject": subject, "body": body, "payload": payload or {}})
    box.keys[key] = oid
    box.items[oid] = {**ev["data"], "queued_at": ev["ts"], "status": "pending", "attempts": 0,
                      "next_try": None, "error": None}
    return oid


# -- sending ---------------------------------------------------------------------------------------
@dataclass
class FlushReport:
    sent: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # failed in this run (will be retried unless dead)
    deferred: list[dict] = field(default_factory=list)  # waiting for their backoff
    dead: list[dict] = field(default_factory=list)  # permanently failed, kept for a person to see
    busy: bool = False  # another flush was running

    @property
    def ok(self) -> bool:
        return not self.failed


def pending(store) -> list[dict]:
    """Notifications not sent yet (pending and dead), oldest first."""
    return sorted(Outbox.load(store).items.values(), key=lambda it: it["queued_at"])


def flush(store, now: datetime | None = None, senders: dict | None = None) -> FlushReport:
    """Send every queued notification that is due; record the outcome as events.

    Holds `state/outbox.lock` (not the store lock) while sending, so that two runs never send
    the same notification and writers are not blocked by a slow SMTP server.
    """
    now = now or datetime.now(timezone.utc)
    report = FlushReport()
    lock_path = store.path("state", "outbox.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report.busy = True
            return report
        _flush_locked(store, now, report, senders)
    finally:
        os.close(fd)
    return report


def _flush_locked(store, now, report, senders) -> None:
    box = Outbox.load(store)
    due = []
    for it in sorted(box.items.values(), key=lambda it: it["queued_at"]):
        if it["status"] == "dead":
            report.dead.append(it)
        elif it["next_try"] and it["next_try"] > iso(now):
            report.deferred.append(it)
        else:
            due.append(it)
    if not due:
        box.save()
        return
    outcomes = _send_all(store, due, senders or {})
    with store.writing(actor="system", via="tix notify flush") as batch:
        for it, error, permanent in outcomes:
            attempt = it["attempts"] + 1
            if error is None:
                batch.emit("outbox.sent", data={"id": it["id"], "key": it["key"], "attempt": attempt})
                report.sent.append(it)
            else:
                nxt = iso(datetime.fromtimestamp(now.timestamp() + backoff(attempt), timezone.utc))
                batch.emit("outbox.failed", data={"id": it["id"], "key": it["key"], "attempt": attempt,
                                                  "error": error, "next_try": nxt, "permanent": permanent})
                report.failed.append({**it, "attempts": attempt, "error": error, "next_try": nxt,
                                      "status": "dead" if permanent else "pending"})
    box.advance()
    box.save()


def _send_all(store, items, senders) -> list[tuple[dict, str | None, bool]]:
    out = []
    smtp = senders.get("email") or _SmtpSender(store)
    webhook = senders.get("webhook") or _send_webhook
    try:
        for it in items:
            try:
                if it["kind"] == "email":
                    smtp(it)
                else:
                    webhook(it)
                out.append((it, None, False))
            except SendPermanent as exc:
                out.append((it, str(exc), True))
            except SendTemporary as exc:
                out.append((it, str(exc), False))
    finally:
        close = getattr(smtp, "close", None)
        if close:
            close()
    return out


class _SmtpSender:
    """One SMTP connection for the whole flush, opened on first use."""

    def __init__(self, store):
        self.store = store
        self.conn = None
        self.failed: str | None = None

    def settings(self) -> dict:
        spec = self.store.config.section("outbound") or {}
        if not isinstance(spec, dict) or not spec.get("host"):
            raise SendTemporary("no SMTP server configured (outbound: host in tix.yaml)")
        return spec

    def connect(self):
        import smtplib

        from tix.channels.smtp import DEFAULT_PORTS, connect, describe_error

        spec = self.settings()
        host, security = str(spec["host"]), str(spec.get("security") or "starttls").lower()
        port = int(spec.get("port") or DEFAULT_PORTS.get(security, 587))
        try:
            conn = connect(spec, timeout=float(spec.get("timeout") or 15))
        except smtplib.SMTPAuthenticationError as exc:
            raise SendTemporary(f"SMTP {host}:{port}: login refused ({exc.smtp_code})") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendTemporary(describe_error(exc, spec)) from None
        except UsageError as exc:
            raise SendTemporary(f"SMTP {host}:{port}: {exc}") from None
        return conn

    def __call__(self, it: dict) -> None:
        import smtplib
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid, parseaddr

        if self.failed:  # the server is down: do not wait for the timeout once per message
            raise SendTemporary(self.failed)
        if self.conn is None:
            try:
                self.conn = self.connect()
            except SendTemporary as exc:
                self.failed = str(exc)
                raise
        spec = self.settings()
        sender = str(spec.get("from") or spec.get("user") or "tix@localhost")
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = it["target"]
        msg["Subject"] = it["subject"]
        msg["Date"] = formatdate(localtime=False)
        domain = parseaddr(sender)[1].rpartition("@")[2] or None
        msg["Message-ID"] = make_msgid(idstring=it["id"], domain=domain)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: never auto-reply to this
        msg["X-Tix-Notification"] = it["id"]
        msg.set_content(it["body"] or "")
        try:
            self.conn.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendPermanent(f"SMTP refused {it['target']}: {list(exc.recipients.values())[0]}") from None
        except smtplib.SMTPResponseException as exc:
            cls = SendPermanent if 500 <= exc.smtp_code < 600 else SendTemporary
            raise cls(f"SMTP answered {exc.smtp_code}: {exc.smtp_error!r}") from None
        except (OSError, smtplib.SMTPException) as exc:
            self.conn = None
            raise SendTemporary(f"SMTP send failed: {exc.__class__.__name__}: {exc}") from None

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except Exception:  # noqa: BLE001 - closing a connection that may be gone
                pass
            self.conn = None


def webhook_url(target: str) -> str:
    if target.startswith("env:"):
        url = os.environ.get(target[4:])
        if not url:
            raise SendTemporary(f"webhook: environment variable {target[4:]} is not set")
        return url
    return target


def _send_webhook(it: dict) -> None:
    import requests

    payload = dict(it.get("payload") or {})
    slack = payload.pop("slack", False)
    body = {"text": f"{it['subject']}\n{it['body']}".strip()} if slack else {
        "id": it["id"], "key": it["key"], "subject": it["subject"], "text": it["body"], **payload}
    url = webhook_url(it["target"])
    where = it["target"] if it["target"].startswith("env:") else _redact(url)
    try:
        resp = requests.post(url, json=body, timeout=15, headers={"User-Agent": "tix-notify"})
    except requests.RequestException as exc:
        raise SendTemporary(f"webhook {where} unreachable: {exc.__class__.__name__}") from None
    if resp.status_code >= 500 or resp.status_code in (408, 429):
        raise SendTemporary(f"webhook {where} answered {resp.status_code}")
    if resp.status_code >= 400:
        raise SendPermanent(f"webhook {where} answered {resp.status_code}")


def _redact(url: str) -> str:
    """Webhook URLs often carry their secret in the path: show only scheme and host."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"
