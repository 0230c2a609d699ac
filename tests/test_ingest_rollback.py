"""A failed item is rolled back whole: its events, the ticket and contact counters and the
run's in-memory indexes, so that the next item gets the next numbers (no gaps, no
half-created contact) and is threaded as if the failed one had never been seen."""
from __future__ import annotations

import copy
import hashlib
from datetime import datetime, timezone

import orjson
import pytest

from tests.plugins.email import make_mail, maildir_source
from tests.plugins.whatsapp import envelope, spool, text_payload
from tix.ingest import fetch_all, fetch_spool, replay_quarantined

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=timezone.utc)


def events(store, kind=None):
    out = [orjson.loads(raw) for raw, _s, _o in store.log.read_raw()]
    return [e for e in out if kind is None or e["type"] == kind]


def two_senders(second: dict) -> dict:
    """One payload: a good text from Ada, then `second` from Bob (a new contact)."""
    first = text_payload("wamid.P1", "Halo, paket saya belum sampai")["entry"][0]["changes"][0]["value"]
    msg = {"from": "15555550102", "id": "wamid.P2", "timestamp": "1760000200", **second}
    if msg["from"] is None:  # no `from`, and two profiles: none of them is its sender
        del msg["from"]
    return envelope({"contacts": [*first["contacts"], {"profile": {"name": "Bob"}, "wa_id": "15555550102"}],
                     "messages": [*first["messages"], msg]})


# The second message makes the intake raise after the first one created a contact and a
# ticket (and after Bob's contact was made): a contact card that is not an object, or a
# message whose sender is missing altogether.
BAD_SECOND = {
    "malformed contact card": {"type": "contacts", "contacts": ["not a card"]},
    "no sender": {"from": None, "type": "text", "text": {"body": "who am I?"}},
}


@pytest.mark.parametrize("case", sorted(BAD_SECOND))
def test_whatsapp_payload_failing_mid_intake_leaves_no_gap(wa_store, case):
    body = two_senders(copy.deepcopy(BAD_SECOND[case]))
    spool(wa_store, body, name="001.json")
    spool(wa_store, text_payload("wamid.G1", "pesanan INV-7", wa_id="15555550109", name="Cici"), name="002.json")
    rep = fetch_spool(wa_store, media=False)
    assert (rep.quarantined, rep.stored) == (1, 1), rep.errors
    assert [e["data"]["message"] for e in events(wa_store, "message.received")] == ["wamid.G1"]
    assert [e["ticket"] for e in events(wa_store, "ticket.created")] == [1]
    created = events(wa_store, "contact.created")
    assert [(e["contact"], e["data"]["phones"]) for e in created] == [(1, ["15555550109"])]
    assert rep.tickets_created == 1
    # the payload is replayable: nothing of it is remembered as stored
    spool(wa_store, text_payload("wamid.P1", "Halo, paket saya belum sampai"), name="003.json")
    rep = fetch_spool(wa_store, media=False)
    assert (rep.stored, rep.duplicates) == (1, 0)
    assert [e["ticket"] for e in events(wa_store, "ticket.created")] == [1, 2]
    assert [e["contact"] for e in events(wa_store, "contact.created")] == [1, 2]


# -- email ---------------------------------------------------------------------------------------
@pytest.fixture
def md_store(store, tmp_path):
    maildir_source(store, tmp_path / "maildir")
    return store


def test_email_failing_mid_intake_leaves_no_gap_and_replays(md_store):
    """The second message fails after its contact and ticket were made: writing its
    attachment fails (here: a directory is in the blob's way)."""
    doc = b"%PDF-1.4 bukti transfer " * 50
    blob = md_store.path("blobs", "sha256", hashlib.sha256(doc).hexdigest()[:2], hashlib.sha256(doc).hexdigest())
    blob.mkdir(parents=True)
    mails = [make_mail(msgid="<m1@x>", frm="Sari <sari@pelanggan.example>"),
             make_mail(msgid="<m2@x>", frm="Budi <budi@pelanggan.example>",
                       attachments=[("bukti.pdf", "application/pdf", doc)]),
             make_mail(msgid="<m3@x>", frm="Dewi <dewi@pelanggan.example>")]
    for i, raw in enumerate(mails, 1):
        (md_store.md / "new" / f"{i:05d}.test").write_bytes(raw)
    rep = fetch_all(md_store, now=NOW)
    assert (rep.stored, rep.quarantined, rep.tickets_created) == (2, 1, 2), rep.errors
    assert "IsADirectoryError" in rep.errors[0] and rep.errors[0].startswith("inbox maildir:inbox:00002.test: ")
    assert [e["ticket"] for e in events(md_store, "ticket.created")] == [1, 2]
    assert [(e["contact"], e["data"]["emails"]) for e in events(md_store, "contact.created")] == [
        (1, ["sari@pelanggan.example"]), (2, ["dewi@pelanggan.example"])]
    assert [e["data"]["message_id"] for e in events(md_store, "message.received")] == ["<m1@x>", "<m3@x>"]
    assert [e["ticket"] for e in events(md_store, "message.received")] == [1, 2]
    # once the way is clear, the quarantined message is taken in with the next numbers
    blob.rmdir()
    replayed = replay_quarantined(md_store)
    assert replayed.errors == [] and len(replayed.replayed) == 1
    last = events(md_store, "message.received")[-1]
    assert (last["data"]["message_id"], last["ticket"], md_store.ticket(3)["contact"]) == ("<m2@x>", 3, 3)
    assert blob.read_bytes() == doc
