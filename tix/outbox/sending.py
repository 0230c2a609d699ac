"""Sending the outbox: `flush(store)`, the one backoff policy and the one `FlushReport`.

A flush holds `state/outbox.lock` (never two at once; the store lock is taken only to record
each outcome, so writers are not blocked by a slow server), loads the index and goes through
the items oldest first. Each item due is made (`Sender.render`) and sent (`Sender.send`),
and its outcome (`outbox.sent`, or `outbox.failed`) is appended and fsynced before the next
item is sent. What a sender raises decides the outcome:

    SendTemporary          failed; tried again after backoff(attempt) (or the wait it asks for)
    SendPermanent          failed for good (status dead, listed until someone looks)
    ChannelStopped         failed like SendTemporary, and the channel's other items wait for the next run
    any other Exception    while making the message: failed for good ("cannot make the message: …");
                           while sending it: failed, tried again ("unexpected error while sending: …")

After `MAX_ATTEMPTS` a failing item is given up; a customer message given up gets a
`ticket.note` (kind `send_failed`) on its ticket.

Senders (`SENDERS`, one instance per flush and channel): `Sender(store)` with
`render(item) -> made` (pure: the bytes or body to send), `send(item, made) -> dict` (what
the channel answered, recorded in `outbox.sent`) and `close()`. The item given to them is
the data of the event that queued it plus `id`, `ticket`, `attempts`, `purpose`, `channel`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from tix.errors import ChannelStopped, SendPermanent, SendTemporary, StoreLocked
from tix.outbox.index import CUSTOMER, OutboxIndex
from tix.store.log import iso, utcnow

SENDERS = {"email": "tix.outbox.smtp:SmtpSender", "webhook": "tix.outbox.webhook:WebhookSender",
           "whatsapp": "tix.channels.whatsapp.send:Sender"}
BACKOFF_FIRST = 60  # seconds after the first failed attempt; doubled per attempt
BACKOFF_MAX = 3600  # never more than an hour between attempts
MAX_ATTEMPTS = 30  # 6 attempts in the first hour, then hourly: given up after about a day


def backoff(attempt: int, hint: float | None = None) -> int:
    """Seconds to wait after failed attempt number `attempt` (1-based): 1 min, 2, 4 … at most 1 h.

    `hint`: a wait the channel asked for (e.g. a WhatsApp rate limit), honoured up to the cap.
    """
    wait = min(BACKOFF_FIRST * 2 ** max(attempt - 1, 0), BACKOFF_MAX)
    if hint:
        wait = max(wait, min(int(hint), BACKOFF_MAX))
    return wait


@dataclass
class FlushReport:
    """What one flush did. Items are listing rows (`row`); `errors` has one line per failure."""

    sent_items: list[dict] = field(default_factory=list)
    failed_items: list[dict] = field(default_factory=list)  # failed in this run: status pending (retried) or dead
    waiting_items: list[dict] = field(default_factory=list)  # not tried: not due yet, or their channel stopped
    dead_items: list[dict] = field(default_factory=list)  # given up before this run: listed, not tried
    errors: list[str] = field(default_factory=list)
    busy: bool = False  # another flush was running: this one did nothing

    @property
    def sent(self) -> int:
        return len(self.sent_items)

    @property
    def failed(self) -> int:
        return len(self.failed_items)

    @property
    def pending(self) -> int:
        """Items still to send after this run (failed but retried later, or waiting)."""
        return sum(it["status"] != "dead" for it in self.failed_items) + len(self.waiting_items)

    @property
    def dead(self) -> int:
        return len(self.dead_items)

    @property
    def ok(self) -> bool:
        return not self.errors


def flush(store, now: datetime | None = None, force: bool = False, only=None, purposes=None,
          wait: float = 0.0, via: str = "tix outbox flush") -> FlushReport:
    """Send every item that is due; record each outcome before sending the next.

    Args:
        now: the time to judge backoff by (default: now).
        force: also try items whose backoff has not run out (never those given up).
        only: ids of the items to send (others are left alone and not reported).
        purposes: only items of these purposes (`reply`, `auto_reply`, `notification`, `report`).
        wait: seconds to wait for another flush to finish; then `busy` and nothing done.
    """
    from tix.store.lock import WriteLock

    now = (now or utcnow()).astimezone(timezone.utc)
    report = FlushReport()
    lock = WriteLock(store.path("state", "outbox.lock"), wait)
    try:
        lock.acquire()
    except StoreLocked:
        report.busy = True
        return report
    try:
        box = OutboxIndex.load(store)
        run = _Run(store, box, now, report, force, via)
        try:
            for item in box.ordered():
                if (only is None or item["id"] in only) and (purposes is None or item["purpose"] in purposes):
                    run.one(item)
        finally:
            run.close()
            box.advance()
            box.save()
    finally:
        lock.release()
    return report


class _Run:
    """One flush: the senders opened so far and the channels stopped."""

    def __init__(self, store, box: OutboxIndex, now: datetime, report: FlushReport, force: bool, via: str):
        self.store, self.box, self.now, self.report, self.force, self.via = store, box, now, report, force, via
        self.senders: dict = {}
        self.stopped: dict[str, str] = {}

    def sender(self, channel: str):
        if channel not in self.senders:
            try:
                module, name = SENDERS[channel].split(":")
                self.senders[channel] = getattr(importlib.import_module(module), name)(self.store)
            except Exception as exc:  # noqa: BLE001 - an unknown channel or a sender that cannot start
                self.senders[channel] = None
                self.stopped[channel] = f"outbox: cannot send on channel {channel!r}: {_one_line(exc)}"
                self.report.errors.append(self.stopped[channel])
        return self.senders[channel]

    def one(self, item: dict) -> None:
        channel = item["channel"]
        if item["status"] == "dead":
            self.report.dead_items.append(row(item))
            return
        due = not item["next_try"] or item["next_try"] <= iso(self.now) or self.force
        if not due or channel in self.stopped or self.sender(channel) is None:
            self.report.waiting_items.append(row(item))
            return
        self._attempt(item, self.senders[channel])

    def _attempt(self, item: dict, sender) -> None:
        attempt = item["attempts"] + 1
        full = {**item["data"], "id": item["id"], "ticket": item["ticket"], "attempts": item["attempts"],
                "purpose": item["purpose"], "channel": item["channel"]}
        stage = "make"
        try:
            made = sender.render(full)
            stage = "send"
            result = sender.send(full, made) or {}
        except ChannelStopped as exc:
            self.stopped[item["channel"]] = str(exc)
            self.failed(item, attempt, str(exc), permanent=False)
        except SendPermanent as exc:
            self.failed(item, attempt, str(exc), permanent=True)
        except SendTemporary as exc:
            self.failed(item, attempt, str(exc), permanent=False, hint=getattr(exc, "retry_after", None))
        except Exception as exc:  # noqa: BLE001 - one item must never stop the others (a bug, bad data)
            if stage == "make":
                self.failed(item, attempt, f"cannot make the message: {_one_line(exc)}", permanent=True)
            else:
                self.failed(item, attempt, f"unexpected error while sending: {_one_line(exc)}", permanent=False)
        else:
            self.sent(item, attempt, result)

    def sent(self, item: dict, attempt: int, result: dict) -> None:
        kept = {k: v for k, v in result.items() if isinstance(v, (str, int, float, list, type(None)))}
        self.record("outbox.sent", item, {**kept, "outbox": item["id"], "channel": item["channel"], "attempt": attempt})
        self.report.sent_items.append(row(item))

    def failed(self, item: dict, attempt: int, error: str, permanent: bool, hint=None) -> None:
        error = " ".join(str(error).split())[:500]
        give_up = permanent or attempt >= MAX_ATTEMPTS
        data = {"outbox": item["id"], "channel": item["channel"], "attempt": attempt, "error": error,
                "permanent": give_up}
        if not give_up:
            data["next_try"] = iso(self.now + timedelta(seconds=backoff(attempt, hint)))
        note = None
        if give_up and item["purpose"] in CUSTOMER and item["ticket"] is not None:
            note = {"kind": "send_failed", "outbox": item["id"],
                    "body": f"Could not send the reply {item['id']} after {attempt} attempt(s): {error}"}
        self.record("outbox.failed", item, data, note)
        self.report.failed_items.append(row(item))
        then = "gave up" if give_up else f"will retry after {data['next_try']}"
        self.report.errors.append(f"{describe(item)} failed, attempt {attempt}: {error}; {then}")

    def record(self, kind: str, item: dict, data: dict, note: dict | None = None) -> None:
        """Append and fsync the outcome now: it is durable before the next item is sent."""
        ticket = item["ticket"] if item["purpose"] in CUSTOMER else None
        with self.store.writing(actor="system", via=self.via) as batch:
            ev = batch.emit(kind, ticket=ticket, data=data)
            if note is not None:
                batch.emit("ticket.note", ticket=ticket, data=note)
        self.box.apply(ev)

    def close(self) -> None:
        for sender in self.senders.values():
            if sender is not None:
                try:
                    sender.close()
                except Exception:  # noqa: BLE001 - closing a connection that may be gone
                    pass


# -- listing -------------------------------------------------------------------------------------
def items(store, dead: bool = False, purposes=None) -> list[dict]:
    """The items not sent yet, oldest first, as listing rows (`dead`: also those given up)."""
    box = OutboxIndex.load(store)
    return [row(it) for it in box.ordered()
            if (dead or it["status"] != "dead") and (purposes is None or it["purpose"] in purposes)]


def row(item: dict) -> dict:
    """One item as `tix outbox list` shows it (a webhook URL only by its host)."""
    return {"id": item["id"], "what": item["purpose"], "ticket": item["ticket"], "channel": item["channel"],
            "to": shown_target(item), "subject": item["data"].get("subject"), "status": item["status"],
            "attempts": item["attempts"], "next_try": item["next_try"], "error": item["error"],
            "queued_at": item["queued_at"]}


def shown_target(item: dict) -> str:
    d = item["data"]
    if item["purpose"] in CUSTOMER:
        to = d.get("to") or []
        return ", ".join(to) if isinstance(to, list) else str(to)
    target = str(d.get("target") or "")
    if item["channel"] == "webhook" and not target.startswith("env:"):
        from tix.outbox.webhook import redact

        return redact(target)
    return target


def describe(item: dict) -> str:
    """How an error line names the item."""
    purpose, oid = item["purpose"], item["id"]
    if purpose == "notification":
        return f"notification {oid} ({item['channel']} to {shown_target(item)})"
    if purpose == "report":
        return f"report mail {oid} (to {shown_target(item)})"
    return f"{'auto-reply' if purpose == 'auto_reply' else 'reply'} {oid} (#{item['ticket']})"


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
