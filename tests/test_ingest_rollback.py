"""A failed item is rolled back whole: its events, the ticket and contact counters and the
run's in-memory indexes, so that the next item gets the next numbers (no gaps, no
half-created contact) and is threaded as if the failed one had never been seen."""
from __future__ import annotations

import copy

import orjson
import pytest

from tests.plugins.whatsapp import envelope, spool, text_payload
from tix.ingest import fetch_spool


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
