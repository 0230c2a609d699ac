"""The outbox index is folded from the log by a chunked byte scan (issue 16: one reused
buffer, lines found by `outbox`): whatever the chunk size, even smaller than one line, it
holds what folding every event of the log one by one gives."""
from __future__ import annotations

import pytest

from tix import outbox
from tix.outbox import index as outbox_index
from tix.outbox.enqueue import notification_id
from tix.outbox.index import OutboxIndex


def _reference(store) -> OutboxIndex:
    box = OutboxIndex(store)
    for ev, pos in store.log.read():
        box.apply(ev)
        box.pos, box.seq = pos, ev["seq"]
    return box


def _fill(store) -> None:
    for n in range(12):
        with store.writing(actor="user:ani") as batch:
            batch.emit("ticket.note", data={"body": "x" * (40 * n)})  # lines of every length, no marker
            outbox.notify(batch, "email", "lead@toko.example", f"s{n}", "outbox " * n, key=f"k{n}", ticket=n)
            if n % 3 == 0:
                batch.emit("outbox.sent", data={"outbox": notification_id(f"k{n - 3}") if n else "none"})
            if n % 4 == 1:
                batch.emit("outbox.failed", data={"outbox": notification_id(f"k{n}"), "attempt": 1,
                                                  "error": "refused", "next_try": "2026-11-23T00:00:00.000000Z"})


@pytest.mark.parametrize("chunk", [16, 97, 1000, 1 << 24])
def test_the_chunked_scan_equals_folding_every_event(store, monkeypatch, chunk):
    _fill(store)
    monkeypatch.setattr(outbox_index, "CHUNK", chunk)
    box = OutboxIndex.load(store)  # no saved index: built from the whole log
    ref = _reference(store)
    assert (box.items, box.keys, box.pos, box.seq) == (ref.items, ref.keys, ref.pos, ref.seq)
    assert box.items and box.keys
    box.save()
    with store.writing(actor="user:ani") as batch:  # and extended from where it stopped
        outbox.notify(batch, "webhook", "https://hooks.example/x", "s", "b", key="later", ticket=1)
    box, ref = OutboxIndex.load(store), _reference(store)
    assert (box.items, box.keys, box.pos, box.seq) == (ref.items, ref.keys, ref.pos, ref.seq)
