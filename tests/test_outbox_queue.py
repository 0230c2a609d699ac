"""Queueing keeps its per-batch state in `batch.cache`, and what `Batch.rollback` takes back
no longer counts: a notification key or an auto-reply dropped with its events is queued again."""
from __future__ import annotations

from tests.plugins.email import add_config
from tix import outbox
from tix.tickets import create_contact, create_ticket


def queued(store, type_):
    return [ev for ev, _p in store.log.read() if ev["type"] == type_]


def _one_ticket(store, smtp_server) -> None:
    """Ticket 1, from Sari's email address, on a store that sends mail (auto_reply_cap: 2)."""
    add_config(store, smtp_server.outbound_yaml())
    with store.writing(actor="user:ani") as b:
        cid = create_contact(b, "Sari", emails=["sari@pelanggan.example"])
        create_ticket(b, "Paket belum sampai", channel="email", contact=cid)


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
    _one_ticket(store, smtp_server)
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


def test_what_a_long_run_wrote_and_let_go_still_counts_and_what_was_taken_back_does_not(store, smtp_server):
    """Issue 16: a long run (the first route over an imported history, a bulk update, the
    intake) writes in chunks and lets go of what it wrote (`Batch.forget_written`), so that
    its memory stays flat. A notification key or an auto-reply queued before that still
    counts: not queued twice, still within the cap. One taken back by a rollback, even one
    whose seq a later event reuses, does not count."""
    _one_ticket(store, smtp_server)
    with store.writing() as batch:
        row = dict(batch.reader.ticket(1))
        mark = batch.savepoint()
        taken = outbox.queue(batch, row, "email", "Terima kasih", auto=True)
        assert taken["state"] == "queued"
        dropped = outbox.notify(batch, "email", "lead@toko.example", "s", "b", key="k2")
        batch.rollback(mark)  # their events' seqs are handed out again below
        first = outbox.notify(batch, "email", "lead@toko.example", "s", "b", key="k")
        assert outbox.queue(batch, row, "email", "Terima kasih", auto=True)["state"] == "queued"
        batch.flush()
        batch.forget_written()
        assert batch.written == [] and batch.pending == []
        assert outbox.notify(batch, "email", "lead@toko.example", "s", "b", key="k") == first  # still once
        assert outbox.notify(batch, "email", "lead@toko.example", "s", "b", key="k2") == dropped  # queued anew
        states = [outbox.queue(batch, row, "email", "Terima kasih", auto=True)["state"] for _ in range(2)]
    assert states == ["queued", "capped"]  # the one let go counts, the one taken back does not
    assert sorted(ev["data"]["key"] for ev in queued(store, "outbox.queued")) == ["k", "k2"]
    assert len(queued(store, "message.sent")) == 2
