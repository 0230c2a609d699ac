"""`tix contact erase` (UU PDP right to erasure, DESIGN invariant 7; issue 14 item 2).

The store goes through the whole pipeline (email from Dovecot, WhatsApp from the spool with
two customers in one payload, route with an auto-reply, an agent reply sent over SMTP, SLA
escalation with a notification, a report, a snapshot refresh, a quarantined message and a
payload still waiting in the spool); then one customer is erased and `grep -r` of their
email address, phone number and name over the whole store finds nothing, while the other
customer, the ticket numbers, statuses, assignments and SLA figures stay.
"""
from __future__ import annotations

import json
import subprocess

import orjson
import pytest

from tests.plugins.email import add_config
from tests.plugins.whatsapp import envelope, spool

SARI_EMAIL = "sari.wulandari@pelanggan.example"
SARI_NAME = "Sari Wulandari"
SARI_PHONE = "6281234567890"
RUDI_EMAIL = "rudi@lain.example"
ADA_PHONE = "15555550100"

RULES = """
- name: ack
  when: any
  if: {channel: email}
  then:
    - auto_reply: auto_reply_received.txt.j2
"""

SLA = """
sla:
  policies:
    - name: all
      targets: {first_response: 1h, resolution: 2h}
      steps:
        - name: breach
          on: breached
          notify: {email: [lead@toko.example]}
          tag: sla-breached
"""


def _two_customers_payload(ts: int) -> dict:
    """One webhook payload holding a message of Sari and one of Ada (another customer)."""
    return envelope({
        "contacts": [{"profile": {"name": SARI_NAME}, "wa_id": SARI_PHONE},
                     {"profile": {"name": "Ada Example"}, "wa_id": ADA_PHONE}],
        "messages": [
            {"from": SARI_PHONE, "id": f"wamid.SARI{ts}", "timestamp": str(ts), "type": "text",
             "text": {"body": f"Halo, ini {SARI_NAME}, pesanan INV-77 belum sampai"}},
            {"from": ADA_PHONE, "id": f"wamid.ADA{ts}", "timestamp": str(ts), "type": "text",
             "text": {"body": "Hello, where is my parcel?"}}]})


def grep(store, needle: str) -> str:
    proc = subprocess.run(["grep", "-r", "-i", "-l", "-F", needle, str(store.root)], capture_output=True, text=True)
    return proc.stdout


def _tickets(tix) -> dict:
    rows = json.loads(tix("sql", "SELECT number, status, team, assignee, priority, contact, created_at, tags, "
                          "first_response_at, resolved_at, messages_in, messages_out, notes FROM tickets",
                          "-f", "json", check=0).stdout)
    return {r.pop("number"): r for r in rows}


@pytest.fixture
def full_store(mail_store, wa_store, tix, monkeypatch, mail):
    """The pipeline run over two customers (and a third on email); returns Sari's contact id."""
    store = mail_store
    store.path("rules", "50-ack.yaml").write_text(RULES)
    add_config(store, SLA)
    monkeypatch.setenv("TIX_NOW", "2026-11-20T03:10:00Z")
    raw = mail(frm=f"{SARI_NAME} <{SARI_EMAIL}>", subject="Pesanan INV-77 belum sampai",
               body=f"Halo, saya {SARI_NAME}, telepon {SARI_PHONE}.",
               attachments=[("struk.pdf", "application/pdf", b"%PDF-1.4 struk Sari " * 20)])
    store.imap.deliver(raw)
    store.imap.deliver(mail(frm=f"Rudi Hartono <{RUDI_EMAIL}>", subject="Invoice", body="Minta invoice"))
    spool(store, _two_customers_payload(1795143000))
    tix("fetch", check=0)
    tix("route", check=0)
    sari = json.loads(tix("contact", "list", "Sari", "-f", "json", check=0).stdout)
    assert len(sari) == 2  # one by email, one by WhatsApp: linked by merge below
    email_c, wa_c = sorted(r["id"] for r in sari)
    tix("contact", "merge", str(wa_c), str(email_c), "--why", f"same person {SARI_NAME}", check=0)
    number = json.loads(tix("list", "contact:%d" % email_c, "-f", "json", check=0).stdout)[0]["number"]
    tix("reply", str(number), "-m", f"Halo {SARI_NAME}, paket dikirim hari ini.", check=0)
    wa_number = json.loads(tix("list", "channel:whatsapp", "contact:%d" % email_c, "-f", "json",
                                check=0).stdout)[0]["number"]
    tix("reply", str(wa_number), "-m", f"Halo {SARI_NAME}, kami cek dulu.", check=0)  # through the fake Graph API
    tix("outbox", "flush", check=0)
    tix("assign", str(number), "ani", check=0)
    monkeypatch.setenv("TIX_NOW", "2026-11-20T09:00:00Z")
    tix("escalate", check=0)
    tix("report", "backlog", check=0)
    tix("report", "weekly", "--mail-to", "lead@toko.example", check=0)
    tix("rebuild", check=0)
    store.smtp.reply_code = "451 4.3.0 try again later"  # this reply stays queued until the erasure
    tix("reply", str(number), "-m", f"Terima kasih {SARI_NAME}.")
    tix("outbox", "list", check=0)
    tix("search", "Wulandari", check=0)  # builds the full-text index (a cache holding her text)
    store.refresh_snapshot()  # the tail since the rebuild goes into a delta file
    assert store.snapshot.meta()["tickets_delta"]
    # a message quarantined (its headers cannot be parsed into a ticket) and one waiting in the spool
    from tix.store import quarantine

    quarantine.put(store, "email", f"From: {SARI_EMAIL}\r\n\r\nbroken".encode(), "test: unparsable")
    spool(store, _two_customers_payload(1795144000))
    for needle in (SARI_EMAIL, SARI_PHONE, SARI_NAME):
        assert grep(store, needle), needle
    return email_c


def test_erase_leaves_no_trace_and_keeps_the_figures(full_store, tix, store):
    cid = full_store
    before = _tickets(tix)
    assert len(before) == 4 and before[1]["assignee"] == "ani"
    sla_before = tix("sql", "SELECT ticket, target, state FROM sla ORDER BY ALL", "-f", "json", check=0).stdout
    assert [p for p in store.path("blobs").rglob("*") if p.is_file()]  # Sari's receipt
    dry = tix("contact", "erase", str(cid), "--why", "request 2026-11-21", "--dry-run", check=0)
    assert "blobs/sha256/" in dry.stdout
    assert "events rewritten" in dry.stdout and "messages cut out" in dry.stdout
    assert grep(store, SARI_EMAIL)  # a dry run changes nothing
    caches = [store.path("state", "outbox.json")]
    assert all(p.is_file() for p in caches) and SARI_EMAIL in caches[0].read_text()
    assert store.path("state", "search.sqlite").is_file()
    index = store.path("state", "message-index.sqlite")  # her addresses and Message-IDs: dropped, then rebuilt
    assert index.is_file()
    old = store.path("state", "message-index.json")  # an older tix's index with her address: dropped
    old.write_bytes(orjson.dumps({"auto_sent": {SARI_EMAIL: ["2026-11-20T01:00:00Z"]}, "statuses": {}}))
    tix("contact", "erase", str(cid), "--why", "UU PDP erasure request 2026-11-21", check=0)
    for needle in (SARI_EMAIL, SARI_PHONE, SARI_NAME, "6281234567890"[2:]):
        assert grep(store, needle) == "", needle
    assert grep(store, RUDI_EMAIL) and grep(store, ADA_PHONE)  # the others stay
    (payload,) = store.path("messages", "whatsapp").rglob("*.json")  # Sari's and Ada's messages in one
    value = json.loads(payload.read_bytes())["entry"][0]["changes"][0]["value"]
    assert [m["from"] for m in value["messages"]] == [ADA_PHONE]
    assert [c["wa_id"] for c in value["contacts"]] == [ADA_PHONE]
    assert all(p.is_file() for p in caches)  # patched in place, not dropped
    assert not index.exists() and not old.exists()
    assert not [p for p in store.path("blobs").rglob("*") if p.is_file()]  # referenced by her message only
    queued = json.loads(tix("outbox", "list", "-f", "json", check=0).stdout)
    assert [(q["status"], q["error"]) for q in queued if q["ticket"] == 1] == [("dead", "contact erased")]
    assert _tickets(tix) == before
    assert tix("sql", "SELECT ticket, target, state FROM sla ORDER BY ALL", "-f", "json", check=0).stdout \
        == sla_before
    erased = [e for e in store.events_for(contact=cid) if e["type"] == "contact.erased"]
    assert len(erased) == 1 and erased[0]["why"] == "UU PDP erasure request 2026-11-21"
    assert set(erased[0]["data"]) <= {"tickets", "events", "rewrite"}
    assert tix("check", check=0).returncode == 0
    assert _tickets(tix) == before  # after a full rebuild from the rewritten log, too
    tix("rebuild", check=0)
    assert _tickets(tix) == before
    # the spooled payload still waiting keeps the other customer's message
    tix("fetch", check=0)
    assert index.is_file()  # rebuilt from the rewritten log: nothing of hers in it
    assert grep(store, SARI_PHONE) == "" and grep(store, SARI_EMAIL) == ""
    ada = json.loads(tix("contact", "list", "Ada", "-f", "json", check=0).stdout)
    assert ada and ada[0]["tickets"] >= 1


def test_erasing_twice_or_an_unknown_contact_writes_nothing(store, tix, rk):
    n = rk.message(sender=SARI_EMAIL, name=SARI_NAME)
    cid = rk.ticket(n)["contact"]
    proc = tix("contact", "erase", "999", "--why", "x")
    assert (proc.returncode, proc.stderr) == (1, "Error: contact 999 not found\n")
    tix("contact", "erase", str(cid), "--why", "request", check=0)
    size = sum(p.stat().st_size for p in store.path("events").iterdir())
    proc = tix("contact", "erase", str(cid), "--why", "again")
    assert (proc.returncode, proc.stderr) == (1, f"Error: contact {cid} is already erased; nothing to do\n")
    assert sum(p.stat().st_size for p in store.path("events").iterdir()) == size
    assert tix("contact", "erase", str(cid)).returncode == 2  # no --why


def test_rewritten_lines_keep_their_length_and_commit_marks(store, rk, tix):
    rk.message(sender="other@example.com", name="Other Person")
    n = rk.message(sender=SARI_EMAIL, name=SARI_NAME, subject=f"from {SARI_NAME}", text="long text " * 50)
    rk.message(sender="third@example.com", name="Third Person")
    seg = store.path("events", store.log.segments()[0])
    before = seg.read_bytes().split(b"\n")[:-1]
    cid = rk.ticket(n)["contact"]
    tix("contact", "erase", str(cid), "--why", "request", check=0)
    after = seg.read_bytes().split(b"\n")[:len(before)]
    assert [len(x) for x in after] == [len(x) for x in before]
    assert [x.endswith(b',"commit":true}') for x in after] == [x.endswith(b',"commit":true}') for x in before]
    ev = [orjson.loads(x) for x in after if x and b'"type":"message.received"' in x]
    assert [e["data"]["from"] for e in ev] == ["other@example.com", "", "third@example.com"]


def _small_store(rk, tix):
    rk.message(sender="other@example.com", name="Other Person")
    n = rk.message(sender=SARI_EMAIL, name=SARI_NAME, subject=f"from {SARI_NAME}", text=f"call {SARI_PHONE}")
    rk.message(n, sender=SARI_EMAIL, name=SARI_NAME, text="again")
    tix("note", str(n), "-m", f"{SARI_NAME} called", check=0)
    return rk.ticket(n)["contact"]


@pytest.mark.parametrize("point", ["rewrite-prepared", "rewrite-applying", "rewrite-files-done",
                                   "rewrite-events-done"])
def test_kill_9_leaves_old_or_new_and_a_rerun_completes(store, rk, tix, tix_proc, point):
    cid = _small_store(rk, tix)
    log_before = {p.name: p.read_bytes() for p in store.path("events").iterdir()}
    before = _tickets(tix)
    assert len(before) == 2
    proc = tix_proc("contact", "erase", str(cid), "--why", "request", env={"TIX_TEST_KILL_AT": point})
    assert proc.returncode == -9, proc.stderr
    if point == "rewrite-prepared":  # the plan was not committed: the old state, byte for byte
        tix("list", check=0)  # a reader
        assert tix("note", "1", "-m", "x", check=0).returncode == 0  # the next writer drops the temps
        assert not store.path("state", "rewrite").exists()
        after = {p.name: p.read_bytes() for p in store.path("events").iterdir()}
        assert after.keys() == log_before.keys()
        assert all(after[k].startswith(log_before[k]) for k in after)
        assert grep(store, SARI_EMAIL)
    if point == "rewrite-files-done":  # a reader finishes the committed rewrite before it reads
        assert tix("list", check=0).returncode == 0
        assert not store.path("state", "rewrite").exists() and grep(store, SARI_EMAIL) == ""
        proc = tix("contact", "erase", str(cid), "--why", "request")
        assert (proc.returncode, proc.stderr) == (1, f"Error: contact {cid} is already erased; nothing to do\n")
    else:  # the rerun completes (after a committed plan, its own lock's heal has finished it)
        tix("contact", "erase", str(cid), "--why", "request", check=0)
    for needle in (SARI_EMAIL, SARI_NAME, SARI_PHONE):
        assert grep(store, needle) == "", needle
    assert [e["type"] for e in store.events_for(contact=cid)].count("contact.erased") == 1
    assert not store.path("state", "rewrite").exists()
    assert tix("check", check=0).returncode == 0
    after = _tickets(tix)
    assert {k: v for k, v in after.items() if k != 1} == {k: v for k, v in before.items() if k != 1}


def test_a_line_that_would_grow_drops_the_personal_keys_instead():
    from tix.tickets.erase import _fit

    ev = {"seq": 7, "ts": "2026-11-20T03:00:00.000000Z", "type": "message.received", "ticket": 1,
          "data": {"contacts": 3, "auto": False}}
    line = b'{"seq":7,"ts":"2026-11-20T03:00:00.000000Z","type":"message.received","ticket":1,' \
           b'"data":{"contacts":3,"auto":false},"commit":true}\n'
    out = _fit(line, dict(ev, data={"contacts": None, "auto": False}))
    assert len(out) == len(line) and out.endswith(b',"commit":true}\n')
    assert orjson.loads(out[:-16] + b"}")["data"] == {"auto": False}


def test_only_the_segments_holding_their_data_are_rewritten(store, rk, tix, monkeypatch):
    from datetime import datetime, timezone

    months = []
    for i, month in enumerate((9, 10, 11)):
        at = datetime(2026, month, 3, 3, 0, tzinfo=timezone.utc)
        monkeypatch.setenv("TIX_NOW", at.isoformat())
        sender = SARI_EMAIL if month == 10 else f"other{i}@example.com"
        months.append(rk.message(sender=sender, name=SARI_NAME if month == 10 else f"Other {i}", at=at))
    assert store.log.segments() == ["2026-09.jsonl", "2026-10.jsonl", "2026-11.jsonl"]
    before = {n: (store.path("events", n).stat().st_ino, store.path("events", n).read_bytes())
              for n in store.log.segments()}
    cid = rk.ticket(months[1])["contact"]
    dry = tix("contact", "erase", str(cid), "--why", "request", "--dry-run", check=0).stdout
    assert [ln for ln in dry.splitlines() if ln.startswith("events/")] == ["events/2026-10.jsonl: 3 events rewritten"]
    tix("contact", "erase", str(cid), "--why", "request", check=0)
    assert store.path("events", "2026-09.jsonl").stat().st_ino == before["2026-09.jsonl"][0]
    assert store.path("events", "2026-10.jsonl").stat().st_ino != before["2026-10.jsonl"][0]
    assert store.path("events", "2026-11.jsonl").stat().st_ino == before["2026-11.jsonl"][0]
    assert store.path("events", "2026-11.jsonl").read_bytes().startswith(before["2026-11.jsonl"][1])  # + the event
