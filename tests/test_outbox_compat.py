"""A store written before the one outbox: its notifications (`outbox.queued` with `id`, the
old `state/outbox.json`) and its replies (failed once, with `next_retry`) are listed and
flushed as they are, with no migration."""
from __future__ import annotations

import json

import orjson

from tests.plugins.email import add_config
from tix import outbox
from tix.tickets import create_contact, create_ticket

PAST = "2026-01-01T00:00:00.000000Z"
KEY = "1:first_response:0:warn:email:lead@toko.example"


def test_an_old_stores_queue_is_listed_and_flushed(store, smtp_server, tix):
    add_config(store, smtp_server.outbound_yaml())
    with store.writing(actor="user:ani") as b:
        cid = create_contact(b, "Sari", emails=["sari@pelanggan.example"])
        create_ticket(b, "Paket belum sampai", channel="email", contact=cid, inbox="support@toko.example")
    with store.writing(actor="sla:urgent", via="tix escalate") as b:  # as tix/notify.py wrote them
        b.emit("outbox.queued", data={"id": "nold", "key": KEY, "kind": "email", "target": "lead@toko.example",
                                      "subject": "[#1] SLA warning", "body": "isi", "payload": {}})
        b.emit("outbox.failed", data={"id": "nold", "key": KEY, "attempt": 1, "error": "SMTP down",
                                      "next_try": PAST, "permanent": False})
        b.emit("outbox.queued", data={"id": "ndead", "key": "k2", "kind": "webhook",
                                      "target": "https://hooks.example/services/T0K3N", "subject": "s",
                                      "body": "b", "payload": {"slack": True}})
        b.emit("outbox.failed", data={"id": "ndead", "key": "k2", "attempt": 1, "permanent": True,
                                      "error": "webhook https://hooks.example/… answered 404", "next_try": PAST})
    with store.writing(actor="user:ani", via="tix reply") as b:  # message.sent is unchanged
        reply = outbox.queue(b, dict(b.reader.ticket(1)), "email", "Sedang kami cek.")["outbox"]
    with store.writing(actor="system", via="tix outbox flush") as b:  # as tix/outbox.py wrote it
        b.emit("outbox.failed", ticket=1, data={"outbox": reply, "channel": "email", "attempt": 1,
                                                "error": "deferred: 451", "next_retry": PAST, "permanent": False})
    # tix/notify.py's index: no format version, so it is rebuilt from the log
    store.path("state", "outbox.json").write_bytes(orjson.dumps(
        {"segment": "", "offset": 0, "seq": 0, "items": {"bogus": {"id": "bogus"}}, "keys": {}}))

    listed = {it["id"]: it for it in json.loads(tix("outbox", "list", "-f", "json").stdout)}
    assert set(listed) == {"nold", "ndead", reply}
    assert [listed[i]["what"] for i in ("nold", "ndead", reply)] == ["notification", "notification", "reply"]
    old = listed["nold"]
    assert (old["attempts"], old["status"], old["error"]) == (1, "pending", "SMTP down")
    assert listed["nold"]["next_try"].startswith("2026-01-01T00:00:00")
    assert (listed[reply]["attempts"], listed[reply]["ticket"], listed[reply]["to"]) == (1, 1, "sari@pelanggan.example")
    assert listed[reply]["next_try"].startswith("2026-01-01T00:00:00")
    assert listed["ndead"]["status"] == "dead" and listed["ndead"]["to"] == "https://hooks.example/…"
    notes = json.loads(tix("notify", "list", "-f", "json").stdout)
    assert [n["id"] for n in notes] == ["nold", "ndead"]

    rep = outbox.flush(store)
    assert [it["id"] for it in rep.sent_items] == ["nold", reply]
    assert [it["id"] for it in rep.dead_items] == ["ndead"]
    assert sorted(m["to"][0] for m in smtp_server.messages) == ["lead@toko.example", "sari@pelanggan.example"]
    with store.writing() as b:  # an old key still counts: queued at most once, ever
        assert outbox.notify(b, "email", "lead@toko.example", "s", "b", key=KEY) == "nold"
    assert [it["id"] for it in outbox.items(store, dead=True)] == ["ndead"]
