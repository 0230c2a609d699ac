"""Spool intake: fixtures, de-duplication, contacts, tickets, statuses, media, quarantine, crash."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from tests.plugins.whatsapp import (BUSINESS, FIXTURES, fixture_bytes, spool, status_payload,
                                    text_payload)
from tix.ingest import fetch_spool
from tix.tickets import set_fields


def events(store, kind=None):
    out = []
    for raw, _s, _o in store.log.read_raw():
        ev = orjson.loads(raw)
        if kind is None or ev["type"] == kind:
            out.append(ev)
    return out


def received(store):
    return events(store, "message.received")


def tickets(store):
    con = store.connect()
    cur = con.execute("SELECT * FROM tickets ORDER BY number")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def pywa_cases():
    out = []
    for f in sorted((FIXTURES / "pywa").glob("*.json")):
        for key, body in json.loads(f.read_text()).items():
            out.append((f"{f.stem}:{key}", body))
    return out


def test_every_from_docs_webhook_ingests(wa_store):
    files = sorted((FIXTURES / "from-docs" / "webhooks").glob("*.json"))
    for i, f in enumerate(files):
        spool(wa_store, f.read_bytes(), name=f"{i:04d}-{f.name}")
    rep = fetch_spool(wa_store, media=False)
    assert rep.errors == [] and rep.quarantined == 0 and rep.left == 0
    wamids = {e["data"]["message"] for e in received(wa_store)}
    for f in files:
        value = json.loads(f.read_text())
        for entry in value["entry"]:
            for change in entry["changes"]:
                for m in change["value"].get("messages", []):
                    assert m["id"] in wamids, f.name
    # the batched POST: both users' messages, not only [0]
    texts = {e["data"]["text"] for e in received(wa_store)}
    assert {"first", "second, other user"} <= texts
    assert not list(wa_store.path("spool", "whatsapp").glob("*.json"))


@pytest.mark.parametrize("case", [c for c, _ in pywa_cases()])
def test_every_pywa_case_ingests(wa_store, case):
    body = dict(pywa_cases())[case]
    # pywa payloads name their own business number: point them at the configured one
    text = (json.dumps(body).replace("1122334455667", "100000000000001")
            .replace("106540352242922", "100000000000001")
            .replace("<BUSINESS_PHONE_NUMBER_ID>", "100000000000001"))
    spool(wa_store, text.encode())
    rep = fetch_spool(wa_store, media=False)
    assert rep.errors == [] and rep.quarantined == 0, rep.errors
    value = body["entry"][0]["changes"][0]["value"]
    if value.get("messages"):
        kinds = {e["type"] for e in events(wa_store)}
        assert "message.received" in kinds or "whatsapp.system" in kinds
        ev = (received(wa_store) or events(wa_store, "whatsapp.system"))[0]
        assert ev["data"]["message"] == value["messages"][0]["id"]
        assert ev["data"]["text"]  # text or a [placeholder], never empty
        assert ev["data"]["raw"].startswith("messages/whatsapp/")
        assert wa_store.path(ev["data"]["raw"]).read_bytes() == text.encode()
    if value.get("statuses"):
        assert events(wa_store, "message.status")


def test_types_text_and_placeholders(wa_store):
    cases = dict(pywa_cases())
    want = {"message:reaction": "[reaction \U0001f62e]", "message:unreaction_no_emoji": "[reaction removed]",
            "message:unreaction_empty": "[reaction removed]", "message:voice": "[voice message]",
            "message:chosen_location": "[location] Facebook HQ",
            "message:unsupported_with_type": "[unsupported message: pool", "message:order": "[order: ",
            "message:contacts": "[contact card] Chandler Bing", "callback_button:quick_reply": "title",
            "message:document": "caption", "deleted_message:revoke": "[message deleted"}
    for i, key in enumerate(want):
        body = json.loads(json.dumps(cases[key]).replace("1122334455667", "100000000000001")
                          .replace("106540352242922", "100000000000001")
                          .replace("<BUSINESS_PHONE_NUMBER_ID>", "100000000000001"))
        body["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = f"wamid.case{i}"
        spool(wa_store, body)
    rep = fetch_spool(wa_store, media=False)
    assert rep.errors == []
    by_id = {e["data"]["message"]: e["data"] for e in received(wa_store)}
    for i, (key, prefix) in enumerate(want.items()):
        assert by_id[f"wamid.case{i}"]["text"].startswith(prefix), (key, by_id[f"wamid.case{i}"]["text"])
    assert by_id["wamid.case0"]["reaction"] == {"message_id": "wamid.yzxyzx=", "emoji": "\U0001f62e"}
    assert by_id["wamid.case1"]["reaction"]["emoji"] is None
    doc = by_id["wamid.case9"]
    assert doc["attachments"][0]["name"] == "filename.pdf" and doc["attachments"][0]["status"] == "pending"


def test_unknown_type_is_kept_with_placeholder(wa_store):
    body = text_payload("wamid.NEW1", "x")
    msg = body["entry"][0]["changes"][0]["value"]["messages"][0]
    msg.pop("text")
    msg["type"] = "hologram"
    msg["hologram"] = {"depth": 3}
    spool(wa_store, body)
    rep = fetch_spool(wa_store)
    assert rep.errors == []
    ev = received(wa_store)[0]
    assert ev["data"]["text"] == "[hologram message]" and ev["data"]["wa_type"] == "hologram"
    raw = json.loads(wa_store.path(ev["data"]["raw"]).read_text())
    assert raw["entry"][0]["changes"][0]["value"]["messages"][0]["hologram"] == {"depth": 3}


def test_duplicate_delivery_is_a_noop(wa_store):
    body = fixture_bytes("from-docs/webhooks/text_basic.json")
    spool(wa_store, body)
    spool(wa_store, body)
    rep = fetch_spool(wa_store)
    assert (rep.stored, rep.duplicates) == (1, 1)
    spool(wa_store, body)
    rep = fetch_spool(wa_store)
    assert (rep.stored, rep.duplicates) == (0, 1)
    assert len(received(wa_store)) == 1 and len(tickets(wa_store)) == 1


def test_message_event_shape_and_ticket(wa_store):
    spool(wa_store, text_payload("wamid.A1", "Halo, paket saya belum sampai sejak Senin. Nomor pesanan INV-1001, "
                                             "tolong dicek ya kak", user_id="ID.1"))
    fetch_spool(wa_store)
    ev = received(wa_store)[0]
    d = ev["data"]
    assert d["message"] == "wamid.A1" and d["channel"] == "whatsapp" and d["wa_type"] == "text"
    assert d["from"] == "15555550100" and d["from_name"] == "Ada Example" and d["to"] == [BUSINESS]
    assert d["inbox"] == BUSINESS and d["subject"] is None and d["auto"] is False and d["context"] is None
    assert d["sent_at"] == "2025-10-09T08:55:00.000000Z"
    t = tickets(wa_store)[0]
    assert t["channel"] == "whatsapp" and t["inbox"] == BUSINESS and t["team"] == "support"
    assert t["subject"].startswith("Halo, paket saya") and len(t["subject"]) <= 80
    c = wa_store.read().contact(t["contact"])
    assert c["phones"] == ["15555550100"] and json.loads(c["fields"])["wa_user_id"] == "ID.1"


def test_one_open_ticket_per_contact_and_pending_goes_open(wa_store):
    spool(wa_store, text_payload("wamid.B1", "first"))
    spool(wa_store, text_payload("wamid.B2", "second", ts=1760000200))
    spool(wa_store, text_payload("wamid.C1", "other person", wa_id="15555550101", name="Bob"))
    fetch_spool(wa_store)
    ts = tickets(wa_store)
    assert len(ts) == 2 and ts[0]["messages_in"] == 2
    with wa_store.writing() as batch:
        set_fields(batch, dict(batch.reader.ticket(1)), {"status": "pending"})
    spool(wa_store, text_payload("wamid.B3", "third", ts=1760000300))
    fetch_spool(wa_store)
    assert tickets(wa_store)[0]["status"] == "open" and len(tickets(wa_store)) == 2


def test_reopen_within_window_else_new_linked_ticket(wa_store):
    spool(wa_store, text_payload("wamid.R1", "first"))
    fetch_spool(wa_store)
    with wa_store.writing() as batch:
        set_fields(batch, dict(batch.reader.ticket(1)), {"status": "resolved"})
    now = int(time.time())
    spool(wa_store, text_payload("wamid.R2", "still broken", ts=now + 3 * 86400))
    fetch_spool(wa_store)
    t = tickets(wa_store)
    assert len(t) == 1 and t[0]["status"] == "open" and t[0]["reopened"] == 1
    upd = [e for e in events(wa_store, "ticket.updated") if e["data"]["set"].get("status") == "open"]
    assert "within 7 days" in upd[-1]["why"]
    with wa_store.writing() as batch:
        set_fields(batch, dict(batch.reader.ticket(1)), {"status": "resolved"})
    spool(wa_store, text_payload("wamid.R3", "new problem", ts=now + 30 * 86400))
    fetch_spool(wa_store)
    t = tickets(wa_store)
    assert len(t) == 2 and t[0]["status"] == "resolved" and t[1]["status"] == "new"
    assert json.loads(t[1]["fields"])["linked"] == 1 and t[1]["contact"] == t[0]["contact"]


def test_username_user_without_phone_then_with_phone(wa_store):
    spool(wa_store, fixture_bytes("from-docs/webhooks/text_bsuid_username_no_phone.json"))
    fetch_spool(wa_store)
    ev = received(wa_store)[0]
    assert ev["data"]["from"] is None and ev["data"]["from_user_id"] == "US.1000000000000000001"
    c = wa_store.read().contact(ev["contact"])
    assert c["phones"] == [] and json.loads(c["fields"])["wa_username"] == "@ada.example"
    # later the same user arrives with a phone number too: same contact, phone added
    spool(wa_store, fixture_bytes("from-docs/webhooks/text_basic.json"))
    fetch_spool(wa_store)
    evs = received(wa_store)
    assert len(evs) == 2 and evs[1]["contact"] == ev["contact"] and evs[1]["ticket"] == ev["ticket"]
    assert wa_store.read().contact(ev["contact"])["phones"] == ["15555550100"]


def test_reaction_joins_ticket_of_message(wa_store):
    spool(wa_store, text_payload("wamid.M1", "hello"))
    fetch_spool(wa_store)
    with wa_store.writing() as batch:
        set_fields(batch, dict(batch.reader.ticket(1)), {"status": "resolved"})
    body = text_payload("wamid.RX", "x", ts=int(time.time()) + 60 * 86400)
    msg = body["entry"][0]["changes"][0]["value"]["messages"][0]
    msg.update(type="reaction", reaction={"message_id": "wamid.M1", "emoji": "\U0001f44d"})
    msg.pop("text")
    spool(wa_store, body)
    fetch_spool(wa_store)
    assert len(tickets(wa_store)) == 1 and tickets(wa_store)[0]["status"] == "resolved"
    assert received(wa_store)[-1]["ticket"] == 1


def test_statuses_monotonic_and_late_match(wa_store):
    out = "wamid.HBgLMTU1NTU1NTAxMDAVAgARGBJBQUFBQUFBQUFBQUFBQUFBQUEA"
    # statuses arrive before tix knows the message (webhook beat the send response)
    spool(wa_store, fixture_bytes("from-docs/webhooks/status_read.json"), name="001.json")
    fetch_spool(wa_store)
    spool(wa_store, fixture_bytes("from-docs/webhooks/status_delivered.json"), name="002.json")
    spool(wa_store, fixture_bytes("from-docs/webhooks/status_sent.json"), name="003.json")
    rep = fetch_spool(wa_store)  # older statuses arriving after 'read' never move it back
    sts = events(wa_store, "message.status")
    assert [s["data"]["status"] for s in sts] == ["read"] and "ticket" not in sts[0]
    assert rep.duplicates == 2
    # now the outbound message becomes known (as the outbox records it) -> the status is attached
    spool(wa_store, text_payload("wamid.IN1", "hi"))
    fetch_spool(wa_store)
    with wa_store.writing() as batch:
        batch.emit("outbox.sent", ticket=1, data={"outbox": "o1", "channel": "whatsapp", "message": out})
    spool(wa_store, status_payload(out, "delivered", ts=1760000011))
    fetch_spool(wa_store)
    sts = events(wa_store, "message.status")
    assert [(s["data"]["status"], s.get("ticket")) for s in sts] == [("read", None), ("read", 1)]
    assert sts[-1]["data"]["late"] is True


def _late(store):
    from tix.ingest.index import MessageIndex

    idx = MessageIndex.load(store)
    try:
        return sorted(k for k, _v in idx.late.items())
    finally:
        idx.close()


def test_a_run_reads_only_the_statuses_still_waiting_for_their_message(wa_store):
    """The statuses of known messages never wait; a waiting one leaves the wait once attached
    (a run used to read every status the store ever had)."""
    out = "wamid.HBgLMTU1NTU1NTAxMDAVAgARGBJBQUFBQUFBQUFBQUFBQUFBQUEA"
    spool(wa_store, fixture_bytes("from-docs/webhooks/status_read.json"), name="001.json")
    fetch_spool(wa_store)
    assert _late(wa_store) == [out]
    spool(wa_store, text_payload("wamid.IN1", "hi"))
    with wa_store.writing() as batch:
        batch.emit("outbox.sent", ticket=None, data={"outbox": "o0", "channel": "whatsapp", "message": "wamid.K"})
    fetch_spool(wa_store)
    with wa_store.writing() as batch:
        batch.emit("outbox.sent", ticket=1, data={"outbox": "o1", "channel": "whatsapp", "message": out})
        batch.emit("outbox.sent", ticket=1, data={"outbox": "o2", "channel": "whatsapp", "message": "wamid.OUT2"})
    spool(wa_store, status_payload("wamid.OUT2", "delivered", ts=1760000011))
    fetch_spool(wa_store)
    assert _late(wa_store) == []
    sts = events(wa_store, "message.status")
    assert [(s["data"]["message"], s["data"]["status"], s.get("ticket")) for s in sts][-2:] == [
        (out, "read", 1), ("wamid.OUT2", "delivered", 1)]


def test_an_index_of_the_version_before_is_brought_up_in_place(wa_store):
    """A version-5 index gets its waiting statuses from its own rows (no rebuild from the log:
    a row the log does not hold survives), and the waiting status is still attached."""
    import sqlite3

    out = "wamid.HBgLMTU1NTU1NTAxMDAVAgARGBJBQUFBQUFBQUFBQUFBQUFBQUEA"
    spool(wa_store, fixture_bytes("from-docs/webhooks/status_read.json"), name="001.json")
    spool(wa_store, text_payload("wamid.IN1", "hi"))
    fetch_spool(wa_store)
    db = sqlite3.connect(wa_store.path("state", "message-index.sqlite"))
    with db:
        db.execute("DELETE FROM kv WHERE t = 'l'")
        db.execute("UPDATE meta SET value = 5 WHERE key = 'version'")
        db.execute("INSERT INTO kv VALUES ('k', 'sentinel', '1')")
    db.close()
    with wa_store.writing() as batch:
        batch.emit("outbox.sent", ticket=1, data={"outbox": "o1", "channel": "whatsapp", "message": out})
    spool(wa_store, status_payload("wamid.OUT2", "delivered", ts=1760000011))
    fetch_spool(wa_store)
    sts = events(wa_store, "message.status")
    assert [(s["data"]["message"], s.get("ticket")) for s in sts if s["data"].get("late")] == [(out, 1)]
    db = sqlite3.connect(wa_store.path("state", "message-index.sqlite"))
    assert db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0] == 6
    assert db.execute("SELECT count(*) FROM kv WHERE t = 'k' AND k = 'sentinel'").fetchone()[0] == 1
    assert db.execute("SELECT k FROM kv WHERE t = 'l'").fetchall() == [("wamid.OUT2",)]  # waits now
    db.close()


def test_statuses_in_one_run_are_applied_in_time_order(wa_store):
    spool(wa_store, fixture_bytes("from-docs/webhooks/status_read.json"), name="001.json")
    spool(wa_store, fixture_bytes("from-docs/webhooks/status_sent.json"), name="002.json")
    fetch_spool(wa_store)
    assert [s["data"]["status"] for s in events(wa_store, "message.status")] == ["sent", "read"]


def test_failed_131047_marks_template_only_and_notes(wa_store):
    spool(wa_store, text_payload("wamid.IN2", "hi"))
    fetch_spool(wa_store)
    out2 = "wamid.HBgLMTU1NTU1NTAxMDAVAgARGBJCQkJCQkJCQkJCQkJCQkJCQkIA"
    with wa_store.writing() as batch:
        batch.emit("outbox.sent", ticket=1, data={"outbox": "o2", "channel": "whatsapp", "message": out2})
    spool(wa_store, status_payload(out2, "sent", ts=1760089000))
    spool(wa_store, fixture_bytes("from-docs/webhooks/status_failed_131047.json"))
    fetch_spool(wa_store)
    sts = events(wa_store, "message.status")
    assert [s["data"]["status"] for s in sts] == ["sent", "failed"]
    assert sts[-1]["data"]["template_only"] is True and sts[-1]["ticket"] == 1
    note = events(wa_store, "ticket.note")[-1]
    assert "only an approved template" in note["data"]["body"]
    # a later 'read' cannot move a failed message
    spool(wa_store, status_payload(out2, "read", ts=1760099000))
    fetch_spool(wa_store)
    assert len(events(wa_store, "message.status")) == 2


def test_value_level_errors_recorded_once(wa_store):
    body = fixture_bytes("from-docs/webhooks/value_level_errors.json")
    spool(wa_store, body)
    rep = fetch_spool(wa_store)
    assert rep.errors == [] and any("131000" in w for w in rep.warnings)
    spool(wa_store, body)
    fetch_spool(wa_store)
    assert len(events(wa_store, "whatsapp.error")) == 1


def test_bad_payloads_quarantined_batch_goes_on(wa_store, tix):
    spool(wa_store, b"{not json", name="001.json")
    bad = text_payload("wamid.X", "x")
    bad["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    spool(wa_store, bad, name="002.json")
    spool(wa_store, text_payload("wamid.GOOD", "good"), name="003.json")
    rep = fetch_spool(wa_store)
    assert rep.quarantined == 2 and rep.stored == 1 and len(rep.errors) == 2
    assert "not JSON" in rep.errors[0] and "phone_number_id '999'" in rep.errors[1]
    q = sorted(wa_store.path("quarantine", "whatsapp").iterdir())
    assert len(q) == 2 and all((d / "error.json").exists() and (d / "item.json").exists() for d in q)
    assert not list(wa_store.path("spool", "whatsapp").glob("*.json"))
    rep = fetch_spool(wa_store)  # the next run does not trip on them again
    assert rep.quarantined == 0 and rep.errors == []


def test_quarantine_replay_after_config_fix(wa_store):
    from tix.ingest import replay_quarantined

    bad = text_payload("wamid.LATER", "x")
    bad["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    spool(wa_store, bad)
    assert fetch_spool(wa_store).quarantined == 1
    cfg = wa_store.path("tix.yaml")
    cfg.write_text(cfg.read_text().replace('      number: "15550001111"\n',
                                           '      number: "15550001111"\n    - phone_number_id: "999"\n'
                                           '      number: "15550009999"\n'))
    wa_store.reload_config()
    rep = replay_quarantined(wa_store)
    assert rep.replayed and not rep.errors
    assert received(wa_store)[0]["data"]["message"] == "wamid.LATER"


def test_fetch_cli_runs_whatsapp_and_exits_1_on_quarantine(wa_store, tix):
    spool(wa_store, text_payload("wamid.CLI1", "via cli"))
    proc = tix("fetch")
    assert proc.returncode == 0, proc.stderr
    assert received(wa_store)[0]["data"]["message"] == "wamid.CLI1"
    spool(wa_store, b"[]")
    proc = tix("fetch")
    assert proc.returncode == 1 and "quarantined" in proc.stderr


# -- media -----------------------------------------------------------------------------------
def image_payload(wamid: str, media_id: str, sha: str) -> dict:
    body = text_payload(wamid, "x")
    msg = body["entry"][0]["changes"][0]["value"]["messages"][0]
    msg.pop("text")
    msg.update(type="image", image={"caption": "foto struk", "mime_type": "image/jpeg", "sha256": sha, "id": media_id})
    return body


def test_media_downloaded_verified_stored_as_blob(wa_store, graph):
    data = os.urandom(3000)
    sha = graph.add_media("900000000000001", data)
    spool(wa_store, image_payload("wamid.IMG1", "900000000000001", sha))
    rep = fetch_spool(wa_store)
    assert rep.media_stored == 1 and rep.errors == []
    import hashlib

    hexd = hashlib.sha256(data).hexdigest()
    blob = wa_store.path("blobs", "sha256", hexd[:2], hexd)
    assert blob.read_bytes() == data
    media = events(wa_store, "message.media")
    assert media[0]["data"]["blob"] == f"blobs/sha256/{hexd[:2]}/{hexd}" and media[0]["ticket"] == 1
    lookups = [r for r in graph.requests if r["path"] == "/v25.0/900000000000001"]
    assert lookups and lookups[0]["headers"]["authorization"] == "Bearer test-graph-token"
    assert lookups[0]["query"]["phone_number_id"] == ["100000000000001"]
    dl = [r for r in graph.requests if r["path"] == "/media/900000000000001"]
    assert dl[0]["headers"]["authorization"] == "Bearer test-graph-token"
    assert fetch_spool(wa_store).media_stored == 0  # done once


def test_media_failure_never_blocks_text_and_is_retried(wa_store, graph):
    data = b"\xff\xd8jpeg-bytes" * 100
    sha = graph.add_media("m2", data)
    graph.media_sha_override["m2"] = "AAAA" + sha[4:]  # the lookup lies: checksum mismatch
    spool(wa_store, image_payload("wamid.IMG2", "m2", sha))
    rep = fetch_spool(wa_store)
    assert rep.stored == 1 and rep.media_pending == 1 and "sha256 mismatch" in rep.errors[0]
    assert received(wa_store)[0]["data"]["text"] == "foto struk"
    assert not events(wa_store, "message.media")
    del graph.media_sha_override["m2"]
    rep = fetch_spool(wa_store)
    assert rep.media_stored == 1 and rep.errors == []


def test_media_without_token_stays_pending_then_expires(wa_store, monkeypatch):
    monkeypatch.delenv("TIX_WA_TOKEN")
    spool(wa_store, image_payload("wamid.IMG3", "m3", "abc"))
    rep = fetch_spool(wa_store)
    assert rep.media_pending == 1 and rep.errors == []
    rep = fetch_spool(wa_store, now=datetime.now(timezone.utc) + timedelta(days=8))
    assert events(wa_store, "message.media")[0]["data"]["status"] == "expired"


# -- crash -----------------------------------------------------------------------------------
CRASH_SCRIPT = """
import sys
from tix.store import Store
from tix.ingest import fetch_spool
fetch_spool(Store(sys.argv[1]), media=False)
"""


def _kill_when(proc, condition, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if condition():
            break
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["log_written", "spool_acked"])
def test_sigkill_during_intake_then_rerun_stores_each_message_once(wa_store, moment):
    n = 3000
    d = wa_store.path("spool", "whatsapp")
    for i in range(n):
        (d / f"{i:020d}-0-0.json").write_bytes(
            json.dumps(text_payload(f"wamid.K{i}", f"pesan {i}", wa_id=str(6281200000000 + i % 50))).encode())
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(wa_store.root)], env=dict(os.environ))

    def log_written():  # a first batch committed (its commit mark written: tix.store "Batches")
        return wa_store.log.end().offset > 0

    def spool_acked():
        return not (d / f"{0:020d}-0-0.json").exists()

    _kill_when(proc, log_written if moment == "log_written" else spool_acked)
    left = len(list(d.glob("*.json")))
    assert received(wa_store), "the kill should land after the first fsync"
    assert left > 0, "the kill should land before the end"
    rep = fetch_spool(wa_store)
    assert rep.errors == []
    ids = [e["data"]["message"] for e in received(wa_store)]
    assert len(ids) == n and len(set(ids)) == n
    assert len(tickets(wa_store)) == 50 and len(events(wa_store, "contact.created")) == 50
    assert not list(d.glob("*.json"))


def test_demo_spool_ingests_offline(store, monkeypatch):
    from tix.channels.whatsapp.spool import load_demo

    monkeypatch.delenv("TIX_WA_TOKEN", raising=False)
    assert 15 <= load_demo(store) <= 30
    rep = fetch_spool(store)
    assert rep.errors == [] and rep.quarantined == 0 and rep.left == 0
    assert rep.stored == 22 - 4 + 1 and rep.statuses == 4 and rep.media_pending == 4
    kinds = {e["data"]["wa_type"] for e in received(store)}
    assert {"text", "image", "location", "interactive", "reaction", "button", "audio", "document"} <= kinds
    subjects = [t["subject"] for t in tickets(store)]
    assert len(subjects) == 8 and subjects[0].startswith("Halo kak, paket saya")
    assert any(s.startswith("Hi, I was charged twice") for s in subjects)


def test_unknown_team_is_a_config_error_and_nothing_is_consumed(wa_store, tix):
    cfg = wa_store.path("tix.yaml")
    cfg.write_text(cfg.read_text().replace("  team: support\n", "  team: suport\n"))
    spool(wa_store, text_payload("wamid.T1", "x"))
    proc = tix("fetch")
    assert proc.returncode != 0 and "whatsapp.team: unknown team 'suport'" in proc.stderr
    assert len(list(wa_store.path("spool", "whatsapp").glob("*.json"))) == 1


def test_describe_never_gives_empty_text():
    from tix.channels.whatsapp.payload import describe

    flow = {"type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {
        "response_json": "{\"a\": 1}", "body": "Sent", "name": "flow"}}}
    assert describe(flow)["text"] == "[flow reply: flow] a: 1"
    assert describe(flow)["flow"] == {"name": "flow", "fields": {"a": 1}}
    assert describe({"type": "text", "text": {"body": ""}})["text"] == "[empty text message]"
    assert describe({"type": "image",
                     "image": {"id": "1", "mime_type": "image/png"}})["attachments"][0]["name"] == "image.png"
    assert describe({"id": "x"})["text"] == "[unknown message]"


def test_late_redelivery_is_applied_in_message_order(wa_store):
    # received in the wrong order (a retry of the first message arrives after the second)
    spool(wa_store, text_payload("wamid.O2", "second: any news?", ts=1760000200), name="001.json")
    spool(wa_store, text_payload("wamid.O1", "first: my order INV-9 is missing", ts=1760000100), name="002.json")
    fetch_spool(wa_store)
    assert [e["data"]["message"] for e in received(wa_store)] == ["wamid.O1", "wamid.O2"]
    assert tickets(wa_store)[0]["subject"] == "first: my order INV-9 is missing"


def test_a_reply_threads_by_context_to_the_message_it_answers(wa_store):
    """One open ticket per conversation; otherwise a reply (`context`) goes to the ticket of
    the message it answers, under the same reopen rule as email's In-Reply-To."""
    from tix.store.log import iso

    t0 = datetime(2026, 11, 2, 3, 0, tzinfo=timezone.utc)

    def close(number, at):
        with wa_store.writing() as batch:
            batch.emit("ticket.updated", ticket=number, data={"set": {"status": "closed"}, "old": {}}, ts=iso(at))

    spool(wa_store, text_payload("wamid.X1", "pesanan INV-1", ts=int(t0.timestamp())))
    fetch_spool(wa_store, now=t0)
    close(1, t0 + timedelta(hours=1))
    later = t0 + timedelta(days=20)
    spool(wa_store, text_payload("wamid.X2", "pesanan INV-2", ts=int(later.timestamp())))
    fetch_spool(wa_store, now=later)  # more than reopen_days: a new ticket
    spool(wa_store, text_payload("wamid.X3", "dan yang ini?", ts=int(later.timestamp()) + 60))
    fetch_spool(wa_store, now=later)  # #2 is open: it gets the message, whatever it answers
    close(2, later + timedelta(hours=1))
    spool(wa_store, text_payload("wamid.X4", "soal INV-2 lagi", ts=int(later.timestamp()) + 86400,
                                 context="wamid.X2"))
    spool(wa_store, text_payload("wamid.X5", "soal INV-1 lagi", ts=int(later.timestamp()) + 86460,
                                 context="wamid.X1"))
    fetch_spool(wa_store, now=later + timedelta(days=1))
    by_id = {e["data"]["message"]: e["ticket"] for e in received(wa_store)}
    assert [by_id[f"wamid.X{i}"] for i in range(1, 6)] == [1, 2, 2, 2, 2]
    assert [t["status"] for t in tickets(wa_store)] == ["closed", "open"]
    # #2 is open again, so a reply to #1's message joins it too; once #2 is closed, it goes
    # to the ticket of the message it answers: #1, closed long ago, so a new ticket linked to #1
    close(2, later + timedelta(days=1, hours=1))
    spool(wa_store, text_payload("wamid.X6", "INV-1 belum beres", ts=int(later.timestamp()) + 2 * 86400,
                                 context="wamid.X1"))
    fetch_spool(wa_store, now=later + timedelta(days=2))
    t = tickets(wa_store)
    assert len(t) == 3 and received(wa_store)[-1]["ticket"] == 3 and json.loads(t[2]["fields"])["linked"] == 1
