"""Queueing keeps its per-batch state in `batch.cache`, and what `Batch.rollback` takes back
no longer counts: a notification key or an auto-reply dropped with its events is queued again."""
from __future__ import annotations

from tests.plugins.email import add_config
from tix import outbox
from tix.tickets import create_contact, create_ticket


def queued(store, type_):
    return [ev for ev, _p in store.log.read() if ev["type"] == type_]


def test_a_rolled_back_notification_key_is_queued_again(store):
    with store.writing() as batch:
        mark = batch.savepoint()
        first = outbox.notify(batch, "email", "lead@toko.example", "s", "b", key="k")
        assert outbox.notify(batch, "email", "lead@toko.example", "s", "b", key="k") == first  # once per key
        batch.rollback(mark)  # e.g. the item that queued it failed
        again = outbox.notify(batch, "email", "lead@toko.example", "s", "b", key="k")
        assert "outbox" in batch.cache
    (ev,) = queued(store, "outbox.queued")
    assert ev["data"]["outbox"] == again == first and ev["data"]["key"] == "k"


def test_a_rolled_back_auto_reply_does_not_count_towards_the_cap(store, smtp_server):
    add_config(store, smtp_server.outbound_yaml())  # auto_reply_cap: 2
    with store.writing(actor="user:ani") as b:
        cid = create_contact(b, "Sari", emails=["sari@pelanggan.example"])
        create_ticket(b, "Paket belum sampai", channel="email", contact=cid)
    with store.writing() as batch:
        row = dict(batch.reader.ticket(1))
        mark = batch.savepoint()
        for _ in range(2):
            assert outbox.queue(batch, row, "email", "Terima kasih", auto=True)["state"] == "queued"
        assert outbox.queue(batch, row, "email", "Terima kasih", auto=True)["state"] == "capped"
        batch.rollback(mark)
        states = [outbox.queue(batch, row, "email", "Terima kasih", auto=True)["state"] for _ in range(3)]
    assert states == ["queued", "queued", "capped"]
    assert len(queued(store, "message.sent")) == 2
