"""One contract every channel passes: the intake rules they share, run against a maildir
source and the WhatsApp spool alike (through `tix.ingest.fetch_all`).

- a re-fetched item is a no-op (its idempotency key: email Message-ID + body hash,
  WhatsApp wamid);
- a message to a recently closed ticket reopens it; to a ticket closed longer than
  `reopen_days` ago it opens a new ticket linked to the old one (custom field `linked`
  and a `linked` note on each);
- a message to a pending ticket sets it open.
"""
from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from tests.plugins.email import add_config, make_mail
from tests.plugins.whatsapp import spool, text_payload
from tix.ingest import fetch_all
from tix.store.log import iso

T0 = datetime(2026, 11, 20, 4, 0, tzinfo=timezone.utc)
REOPEN_DAYS = 7


class Email:
    """A maildir source: a message is a file in new/, a reply threads by In-Reply-To."""

    def __init__(self, store, tmp_path):
        self.store, self.md, self.n = store, tmp_path / "maildir", itertools.count(1)
        for sub in ("new", "cur", "tmp"):
            (self.md / sub).mkdir(parents=True)
        _set_reopen_days(store)
        add_config(store, f"channels:\n  - name: inbox\n    type: maildir\n    path: {self.md}\n    after: keep\n"
                          f"    address: support@toko.example\n")
        self.raw: dict[str, bytes] = {}

    def deliver(self, key: str, text: str, at: datetime, answers: str | None = None) -> None:
        raw = self.raw.get(key) or make_mail(subject="Pesanan INV-1001", body=text, msgid=f"<{key}@pelanggan.example>",
                                             in_reply_to=f"<{answers}@pelanggan.example>" if answers else None,
                                             date=at)
        self.raw[key] = raw
        (self.md / "new" / f"{next(self.n):05d}.test").write_bytes(raw)


class WhatsApp:
    """The webhook spool: a message is a payload, a reply is the next message in the chat."""

    def __init__(self, store, tmp_path):
        self.store = store
        path = store.path("tix.yaml")
        path.write_text(path.read_text() + "\nwhatsapp:\n  numbers:\n    - phone_number_id: \"100000000000001\"\n"
                                           "      number: \"15550001111\"\n")
        store.reload_config()
        _set_reopen_days(store)
        self.raw: dict[str, dict] = {}

    def deliver(self, key: str, text: str, at: datetime, answers: str | None = None) -> None:
        body = self.raw.get(key) or text_payload(f"wamid.{key}", text, ts=int(at.timestamp()),
                                                 context=f"wamid.{answers}" if answers else None)
        self.raw[key] = body
        spool(self.store, body)


def _set_reopen_days(store) -> None:
    path = store.path("tix.yaml")
    text = path.read_text()
    assert "reopen_days: 14" in text
    path.write_text(text.replace("reopen_days: 14", f"reopen_days: {REOPEN_DAYS}", 1))
    store.reload_config()


@pytest.fixture(params=["email", "whatsapp"])
def channel(request, store, tmp_path):
    return {"email": Email, "whatsapp": WhatsApp}[request.param](store, tmp_path)


def events(store, kind):
    return [e for e in (orjson.loads(r) for r, _s, _o in store.log.read_raw()) if e["type"] == kind]


def set_status(store, number: int, status: str, at: datetime) -> None:
    with store.writing(actor="user:ani", via="test") as batch:
        old = batch.reader.ticket(number)["status"]
        batch.emit("ticket.updated", ticket=number, data={"set": {"status": status}, "old": {"status": old}},
                   ts=iso(at))


def test_a_refetched_item_is_a_noop(channel):
    store = channel.store
    channel.deliver("first", "Halo, pesanan saya belum sampai", T0)
    assert fetch_all(store, now=T0, media=False).stored == 1
    channel.deliver("first", "Halo, pesanan saya belum sampai", T0)  # the same item, fetched again
    rep = fetch_all(store, now=T0 + timedelta(minutes=5), media=False)
    assert (rep.stored, rep.duplicates, rep.errors) == (0, 1, [])
    assert len(events(store, "message.received")) == 1 and store.read().max_ticket == 1


def test_reopen_window_then_a_new_linked_ticket(channel):
    store = channel.store
    channel.deliver("q1", "Paket belum sampai", T0)
    fetch_all(store, now=T0, media=False)
    # closed, and the customer writes again two days later: the same ticket, open again
    set_status(store, 1, "closed", T0 + timedelta(hours=1))
    later = T0 + timedelta(days=2)
    channel.deliver("q2", "Masih belum sampai", later, answers="q1")
    rep = fetch_all(store, now=later, media=False)
    assert (rep.stored, rep.tickets_created) == (1, 0)
    t = store.ticket(1)
    assert (t["status"], t["reopened"], t["messages_in"]) == ("open", 1, 2)
    reopened = [e for e in events(store, "ticket.updated") if e["actor"] != "user:ani"]
    assert reopened[-1]["data"]["set"] == {"status": "open"} and f"within {REOPEN_DAYS} days" in reopened[-1]["why"]
    # closed again, and the next message comes a month later: a new ticket, linked to the old
    set_status(store, 1, "closed", later + timedelta(hours=1))
    much_later = later + timedelta(days=30)
    channel.deliver("q3", "Pesanan baru bermasalah", much_later, answers="q2")
    rep = fetch_all(store, now=much_later, media=False)
    assert (rep.stored, rep.tickets_created) == (1, 1)
    old, new = store.ticket(1), store.ticket(2)
    assert old["status"] == "closed" and new["status"] == "new" and new["contact"] == old["contact"]
    assert json.loads(new["fields"])["linked"] == 1
    links = sorted((e["ticket"], e["data"]["linked"]) for e in events(store, "ticket.note")
                   if e["data"].get("kind") == "linked")
    assert links == [(1, 2), (2, 1)]
    assert [e["ticket"] for e in events(store, "message.received")] == [1, 1, 2]


def test_a_message_on_a_pending_ticket_sets_it_open(channel):
    store = channel.store
    channel.deliver("p1", "Mohon dicek", T0)
    fetch_all(store, now=T0, media=False)
    set_status(store, 1, "pending", T0 + timedelta(hours=1))
    channel.deliver("p2", "Sudah saya kirim buktinya", T0 + timedelta(hours=2), answers="p1")
    fetch_all(store, now=T0 + timedelta(hours=2), media=False)
    assert store.ticket(1)["status"] == "open" and store.read().max_ticket == 1
