"""Intake from a maildir source: threading, reopening, loop protection, bounces, quarantine."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from tests.plugins.email import add_config, drop, make_mail, maildir_source
from tix.store import quarantine
from tix.channels.base import read_raw
from tix.ingest import fetch_all

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=timezone.utc)


@pytest.fixture
def md_store(store, tmp_path):
    maildir_source(store, tmp_path / "maildir", "    team: support\n    attachment_limit: 1000\n")
    return store


def events(store, kind=None):
    out = [ev for ev, _ in store.log.read()]
    return [e for e in out if kind is None or e["type"] == kind]


def test_new_ticket_event_carries_the_message_contract(md_store):
    drop(md_store, make_mail(msgid="<a1@pelanggan.example>", headers={"Cc": "Budi <budi@pelanggan.example>"}))
    rep = fetch_all(md_store, now=NOW)
    assert (rep.stored, rep.duplicates, rep.quarantined, rep.errors) == (1, 0, 0, [])
    (ev,) = events(md_store, "message.received")
    d = ev["data"]
    assert ev["ticket"] == 1 and ev["actor"] == "channel:inbox"
    assert d["message_id"] == "<a1@pelanggan.example>" and d["from"] == "sari@pelanggan.example"
    assert d["from_name"] == "Sari Wulandari" and d["cc"] == ["budi@pelanggan.example"]
    assert d["text"].startswith("Halo, pesanan saya INV-1001") and d["auto"] is False and d["auto_reason"] is None
    assert d["inbox"] == "support@toko.example" and d["channel"] == "email" and d["language"] is None
    assert read_raw(md_store, d) == (md_store.md / "cur" / "00001.test:2,S").read_bytes()
    assert d["raw"].endswith(".pack") and d["raw_span"][1] == len(read_raw(md_store, d))
    t = md_store.ticket(1)
    assert t["channel"] == "email" and t["team"] == "support" and t["inbox"] == "support@toko.example"
    assert t["messages_in"] == 1 and md_store.read().contact(t["contact"])["emails"] == ["sari@pelanggan.example"]


def test_refetch_is_a_noop_and_keys_survive_a_lost_index(md_store):
    drop(md_store, make_mail(msgid="<a1@x>"))
    fetch_all(md_store, now=NOW)
    # the message reappears (a crash before the ack, or another folder holding a copy)
    drop(md_store, make_mail(msgid="<a1@x>", headers={"Delivered-To": "other@toko.example"}))
    os.unlink(md_store.root / "state" / "message-index.sqlite")  # the cache is rebuilt from the log
    rep = fetch_all(md_store, now=NOW)
    assert (rep.stored, rep.duplicates) == (0, 1)
    assert len(events(md_store, "message.received")) == 1


def test_threading_by_in_reply_to_and_references(md_store):
    drop(md_store, make_mail(msgid="<first@x>"))
    drop(md_store, make_mail(msgid="<second@x>", subject="Re: whatever", in_reply_to="<first@x>",
                             frm="Someone Else <cc@other.example>"))
    drop(md_store, make_mail(msgid="<third@x>", subject="x", references="<unknown@x> <second@x>"))
    fetch_all(md_store, now=NOW)
    assert [e["ticket"] for e in events(md_store, "message.received")] == [1, 1, 1]
    assert md_store.ticket(1)["messages_in"] == 3


def test_subject_tag_needs_the_tickets_contact(md_store):
    drop(md_store, make_mail(msgid="<t1@x>", subject="Refund"))
    fetch_all(md_store, now=NOW)
    drop(md_store, make_mail(msgid="<t2@x>", subject="Re: Refund [#1]"))  # same sender: joins
    drop(md_store, make_mail(msgid="<t3@x>", subject="Re: Refund [#1]", frm="mallory@evil.example"))
    fetch_all(md_store, now=NOW)
    assert [e["ticket"] for e in events(md_store, "message.received")] == [1, 1, 2]


def test_a_reply_carries_its_own_ticket_tag_only(md_store, tix):
    """A customer who typed `[#1]` in a new message's subject got `Re: … [#1] [#2]`."""
    drop(md_store, make_mail(msgid="<t1@x>", subject="Refund"))
    drop(md_store, make_mail(msgid="<t3@x>", subject="Re: Refund [#1] ", frm="mallory@evil.example"))
    fetch_all(md_store, now=NOW)
    for n in (1, 2):
        assert tix("reply", str(n), "-m", "Baik, kami cek.", "--no-send").returncode == 0
    subjects = [it["subject"] for it in orjson.loads(tix("outbox", "list", "-f", "json").stdout)]
    assert subjects == ["Re: Refund [#1]", "Re: Refund [#2]"]


def _resolve(store, number, when):
    with store.writing(actor="user:ani", via="test") as b:
        b.emit("ticket.updated", ticket=number, data={"set": {"status": "resolved"}, "old": {"status": "new"}},
               ts=when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def test_reply_reopens_within_window_else_new_linked_ticket(md_store):
    drop(md_store, make_mail(msgid="<r1@x>"))
    drop(md_store, make_mail(msgid="<r2@x>", subject="Another"))
    fetch_all(md_store, now=NOW)
    _resolve(md_store, 1, NOW)
    _resolve(md_store, 2, NOW - timedelta(days=30))
    drop(md_store, make_mail(msgid="<r3@x>", in_reply_to="<r1@x>"))
    drop(md_store, make_mail(msgid="<r4@x>", in_reply_to="<r2@x>"))
    fetch_all(md_store, now=NOW + timedelta(days=1))
    t1 = md_store.ticket(1)
    assert t1["status"] == "open" and t1["reopened"] == 1
    upd = [e for e in events(md_store, "ticket.updated") if e["ticket"] == 1 and e["actor"] != "user:ani"]
    assert upd[-1]["data"]["set"] == {"status": "open"} and "replied" in upd[-1]["why"]
    assert md_store.ticket(2)["status"] == "resolved"
    t3 = md_store.ticket(3)
    assert t3["status"] == "new" and t3["contact"] == md_store.ticket(2)["contact"]
    links = [(e["ticket"], e["data"]["linked"]) for e in events(md_store, "ticket.note")
             if e["data"].get("kind") == "linked"]
    assert sorted(links) == [(2, 3), (3, 2)]


def test_auto_replies_are_marked_never_reopen_and_do_not_open_active_tickets(md_store):
    drop(md_store, make_mail(msgid="<o1@x>"))
    fetch_all(md_store, now=NOW)
    _resolve(md_store, 1, NOW)
    drop(md_store, make_mail(msgid="<o2@x>", in_reply_to="<o1@x>", subject="Out of office",
                             headers={"Auto-Submitted": "auto-replied"}))
    drop(md_store, make_mail(msgid="<o3@x>", subject="Newsletter", frm="news@shop.example",
                             headers={"List-Id": "<news.shop.example>", "Precedence": "bulk"}))
    fetch_all(md_store, now=NOW)
    assert md_store.ticket(1)["status"] == "resolved"
    recv = events(md_store, "message.received")
    assert [(e["data"]["auto"], e["data"]["auto_reason"]) for e in recv[1:]] == [
        (True, "auto-submitted:auto-replied"), (True, "precedence:bulk")]
    t2 = md_store.ticket(2)
    assert t2["status"] == "closed" and t2["tags"] == ["auto"]


BOUNCE = b"""From: Mail Delivery System <MAILER-DAEMON@mx.toko.example>
To: support@toko.example
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce1@mx.toko.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

The mail system could not deliver your message.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.toko.example

Final-Recipient: rfc822; nobody@pelanggan.example
Action: failed
Status: 5.1.1

--B
Content-Type: text/rfc822-headers

From: support@toko.example
To: nobody@pelanggan.example
Subject: Re: Refund [#1]
Message-ID: %s

--B--
"""


def test_bounce_becomes_a_note_on_the_ticket_of_the_bounced_message(md_store):
    from tix.outbox import queue

    drop(md_store, make_mail(msgid="<b1@x>"))
    fetch_all(md_store, now=NOW)
    add_config(md_store, "outbound:\n  host: 127.0.0.1\n  port: 1\n  security: plain\n  from: support@toko.example\n")
    with md_store.writing() as b:
        item = queue(b, dict(b.reader.ticket(1)), "email", "Kami cek dulu ya.")
    drop(md_store, BOUNCE % item["message_id"].encode())
    drop(md_store, BOUNCE.replace(b"bounce1@", b"bounce2@") % b"<never-sent@toko.example>")
    rep = fetch_all(md_store, now=NOW)
    assert rep.stored == 2 and rep.tickets_created == 0
    (note,) = [e for e in events(md_store, "ticket.note") if e["data"].get("kind") == "bounce"]
    assert note["ticket"] == 1 and note["data"]["recipients"] == ["nobody@pelanggan.example"]
    assert note["data"]["status"] == "5.1.1" and "failed" in note["data"]["body"]
    (un,) = events(md_store, "message.unmatched")
    assert "ticket" not in un and un["data"]["kind"] == "bounce"
    assert md_store.read().max_ticket == 1


def test_attachments_are_content_addressed_blobs_with_a_size_limit(md_store):
    small, big = b"a,b\n1,2\n", b"x" * 5000
    drop(md_store, make_mail(msgid="<att@x>", attachments=[("data.csv", "text/csv", small),
                                                          ("big.zip", "application/zip", big)]))
    drop(md_store, make_mail(msgid="<att2@x>", subject="again", attachments=[("copy.csv", "text/csv", small)]))
    fetch_all(md_store, now=NOW)
    a1, a2 = [e["data"]["attachments"] for e in events(md_store, "message.received")]
    import hashlib

    digest = hashlib.sha256(small).hexdigest()
    assert a1[0] == {"name": "data.csv", "type": "text/csv", "size": len(small), "sha256": digest}
    assert a1[1]["name"] == "big.zip" and a1[1]["sha256"] is None and a1[1]["size"] == 5000
    assert a2[0]["sha256"] == digest
    blob = md_store.root / "blobs" / "sha256" / digest[:2] / digest
    assert blob.read_bytes() == small
    assert len(list((md_store.root / "blobs" / "sha256").rglob("*"))) == 2  # one dir, one blob


def test_poison_message_is_quarantined_the_rest_continue_and_replay_works(md_store, tix):
    drop(md_store, make_mail(msgid="<p1@x>", subject="good one"))
    drop(md_store, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)  # an Outlook .msg, not mail
    drop(md_store, b"Subject: no sender\n\nhello\n")
    drop(md_store, make_mail(msgid="<p2@x>", subject="good two"))
    proc = tix("fetch")
    assert proc.returncode == 1, proc.stderr
    assert "2 message(s) quarantined; see: tix quarantine list" in proc.stderr
    assert md_store.read().max_ticket == 2
    entries = quarantine.entries(md_store)
    assert sorted(e["error"] for e in entries) == [
        "no sender address (From header missing or unreadable)",
        "not an RFC 5322 message: an Outlook .msg (CFB) file"]
    assert len(list((md_store.md / "new").iterdir())) == 0  # all acknowledged: never retried forever
    assert tix("fetch").returncode == 0
    listing = tix("quarantine", "list", "--format", "json", check=0)
    assert len(orjson.loads(listing.stdout)) == 2
    nosender = next(e for e in entries if "sender" in e["error"])
    shown = tix("quarantine", "show", nosender["id"], "--raw", check=0)
    assert shown.stdout == "Subject: no sender\n\nhello\n"
    # still broken: replay fails, keeps it and counts the attempt
    assert tix("quarantine", "replay", nosender["id"]).returncode == 1
    assert quarantine.get(md_store, nosender["id"])["attempts"] == 2
    # an admin fixes the file; replay now makes a ticket and empties the entry
    (md_store.root / "quarantine" / "email" / nosender["id"] / "item.eml").write_bytes(
        b"From: fixed@pelanggan.example\nSubject: no sender\nMessage-ID: <fixed@x>\n\nhello\n")
    tix("quarantine", "replay", nosender["id"], check=0)
    assert [e["kind"] for e in quarantine.entries(md_store)] == ["email"]
    assert md_store.ticket(3)["subject"] == "no sender"


def test_cap_reports_messages_left(md_store, tix):
    for i in range(5):
        drop(md_store, make_mail(msgid=f"<c{i}@x>", subject=f"m{i}"))
    proc = tix("fetch", "--limit", "3", check=0)
    assert "stopped at the batch cap: 2 message(s) left for the next run" in proc.stdout
    assert tix("fetch", check=0).stdout == ""
    assert md_store.read().max_ticket == 5


def test_locked_store_exits_75(md_store, tix_proc):
    drop(md_store, make_mail())
    with md_store.writing():
        proc = tix_proc("fetch", env={"TIX_LOCK_TIMEOUT": "0.3"})
    assert proc.returncode == 75 and "locked" in proc.stderr
    assert md_store.read().max_ticket == 0


def test_failed_source_is_an_error_not_an_empty_source(md_store, tix, tmp_path):
    add_config(md_store, "")
    text = (md_store.root / "tix.yaml").read_text().replace(str(md_store.md), str(tmp_path / "gone"))
    (md_store.root / "tix.yaml").write_text(text)
    proc = tix("fetch")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: source inbox: /") and "is not a maildir" in proc.stderr


def test_config_errors_name_file_and_line(store, tix):
    add_config(store, "channels:\n  - name: support\n    type: imap\n    hots: x\n    user: u\n"
                      "    password_env: P\n    after: archive\n  - name: support\n    type: pop3\n"
                      "outbound:\n  host: h\n  security: tls\n")
    proc = tix("config", "check")
    assert proc.returncode == 2
    err = proc.stderr
    assert "tix.yaml:" in err and "unknown key 'hots' (did you mean 'host'?)" in err
    assert "after must be one of seen, move, delete, got 'archive'" in err
    assert ("host is required for type imap" in err
            and "type must be one of imap, maildir, mbox, got 'pop3'" in err)
    assert ("outbound: security must be one of starttls, ssl, plain" in err
            and "outbound: from must be an address" in err)


def test_mbox_import_is_idempotent(store, tmp_path, tix):
    import mailbox

    path = tmp_path / "export.mbox"
    box = mailbox.mbox(str(path))
    for i in range(4):
        box.add(make_mail(subject=f"arsip {i}", msgid=f"<mb{i}@x>"))
    box.flush()
    box.close()
    add_config(store, f"channels:\n  - name: archive\n    type: mbox\n    path: {path}\n")
    assert tix("fetch", "--limit", "3", check=0).stdout == (
        "stopped at the batch cap: 1 message(s) left for the next run\n")
    tix("fetch", check=0)
    tix("fetch", check=0)
    subjects = [e["data"]["subject"] for e in events(store, "message.received")]
    assert subjects == ["arsip 0", "arsip 1", "arsip 2", "arsip 3"]
    assert path.read_bytes().count(b"From ") >= 4  # the file is only read


def test_auto_reply_to_machines_is_suppressed(md_store):
    from tix.outbox import queue

    add_config(md_store, "outbound:\n  host: 127.0.0.1\n  port: 1\n  security: plain\n  from: support@toko.example\n")
    drop(md_store, make_mail(msgid="<n1@x>", frm="Shop <no-reply@shop.example>"))
    fetch_all(md_store, now=NOW)
    with md_store.writing() as b:
        res = queue(b, dict(b.reader.ticket(1)), "email", "Terima kasih", auto=True)
    assert res["state"] == "suppressed"
    assert events(md_store, "message.sent") == []


def test_replies_to_older_tickets_thread_after_snapshot_refreshes_within_the_run(md_store, monkeypatch):
    """A long run refreshes the snapshot as it goes (old generations are pruned): the run
    must still find tickets from before it, and never quarantine their replies."""
    from tix.ingest import intake
    from tix.store import refresh

    drop(md_store, make_mail(subject="Lama", msgid="<old@pelanggan.example>"))
    assert fetch_all(md_store, now=NOW).stored == 1
    md_store.refresh_snapshot()  # the snapshot's base
    drop(md_store, make_mail(subject="Kedua", msgid="<second@pelanggan.example>", frm="B <b@pelanggan.example>"))
    assert fetch_all(md_store, now=NOW).stored == 1
    md_store.refresh_snapshot()  # and a delta: the files the run's first reader reads
    cfg = md_store.path("tix.yaml")  # a refresh after every batch
    cfg.write_text(cfg.read_text().replace("snapshot_every: 20000", "snapshot_every: 1"))
    md_store.reload_config()
    spec = md_store.config.section("channels")[0]
    spec["batch"] = 2
    for i in range(6):
        drop(md_store, make_mail(subject=f"Baru {i}", msgid=f"<new{i}@x>", frm=f"P{i} <p{i}@pelanggan.example>"))
    drop(md_store, make_mail(subject="Re: Lama", msgid="<re@pelanggan.example>", in_reply_to="<old@pelanggan.example>"))
    metas = []
    real = refresh.start  # the refresh runs in a child process (tix.store.refresh)

    def waited(store, steps, end=False):  # done before the next batch: the same steps every time
        proc = real(store, steps, end)
        assert proc.wait() == 0
        metas.append(store.snapshot.meta())
        return proc

    monkeypatch.setattr(refresh, "start", waited)
    monkeypatch.setattr(intake, "REFRESH_STEPS", 1)  # a child (a generation) per step
    rep = fetch_all(md_store, now=NOW)
    assert len(metas) >= 3  # the reader of the run's start is two generations old by the reply
    assert len({m["seq"] for m in metas}) == len(metas)  # each one a new generation
    assert (rep.stored, rep.quarantined, rep.errors) == (7, 0, [])  # not one reply quarantined
    (reply,) = [e for e in events(md_store, "message.received") if e["data"]["message_id"] == "<re@pelanggan.example>"]
    assert reply["ticket"] == 1 and md_store.ticket(1)["messages_in"] == 2


def test_a_long_run_refreshes_the_snapshot_in_steps_in_a_child_process(md_store, monkeypatch):
    """A run that writes more than `snapshot_every` events has them folded into the snapshot
    by a child process while it stores (DuckDB and the fold never in the intake's memory), a
    step per `snapshot_every` events, all done before it lets the lock go: the store's own
    refresh then finds less than `snapshot_every` events left, and nothing in the child's way."""
    from tix.store import refresh
    from tix.store.reader import Reader

    cfg = md_store.path("tix.yaml")
    cfg.write_text(cfg.read_text().replace("snapshot_every: 20000", "snapshot_every: 9"))
    md_store.reload_config()
    md_store.config.section("channels")[0]["batch"] = 2
    for i in range(12):  # 3 events each (contact, ticket, message): 36 events, 6 commits
        drop(md_store, make_mail(subject=f"Baru {i}", msgid=f"<n{i}@x>", frm=f"P{i} <p{i}@pelanggan.example>"))
    calls = []
    real = refresh.start
    monkeypatch.setattr(refresh, "start", lambda store, steps, end=False: calls.append((len(steps), end))
                        or real(store, steps, end))
    monkeypatch.setattr(Reader, "write_snapshot", lambda self: pytest.fail("a refresh in the intake process"))
    rep = fetch_all(md_store, now=NOW)
    assert (rep.stored, rep.errors) == (12, [])
    assert calls and sum(n for n, _ in calls) >= 2  # steps of 9 events or more, while storing
    monkeypatch.undo()
    assert md_store.log.last_event()["seq"] - md_store.snapshot.meta()["seq"] < 9  # no long tail left
    assert md_store.read().max_ticket == 12 and md_store.ticket(12)["subject"] == "Baru 11"


def test_a_long_run_lets_go_of_its_state_before_its_last_refresh_child(md_store, monkeypatch):
    """The refresh child a long run starts at its end (~150 MB) runs beside the intake: by
    then the run has let go of what it read and made (ticket rows, contacts, the index and its
    caches) and handed the freed heap back (issue 16: a 20,000-message fetch's intake was at
    95 MB beside the child, 61 MB after). The run's work is all there afterwards."""
    from tix import ingest
    from tix.ingest import intake
    from tix.store import refresh

    cfg = md_store.path("tix.yaml")
    cfg.write_text(cfg.read_text().replace("snapshot_every: 20000", "snapshot_every: 9"))
    md_store.reload_config()
    md_store.config.section("channels")[0]["batch"] = 12  # one commit: no child while storing
    for i in range(12):
        drop(md_store, make_mail(subject=f"Baru {i}", msgid=f"<r{i}@x>", frm=f"R{i} <r{i}@pelanggan.example>"))
    runs, trims, seen = [], [], []

    class Run(intake.Intake):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            runs.append(self)

    monkeypatch.setattr(ingest, "Intake", Run)
    trim = intake._trim_heap
    monkeypatch.setattr(intake, "_trim_heap", lambda: trims.append(1) or trim())
    real = refresh.start

    def start(store, steps, end=False):
        run = runs[-1]
        index = run.index
        seen.append({"end": end, "rows": len(run.rows), "contacts": run._contacts, "index": index.db,
                     "cached": sum(len(t.cache) for t in index.tables) + len(index._ckey),
                     "reader": run.batch._reader, "trimmed": len(trims)})
        return real(store, steps, end)

    monkeypatch.setattr(refresh, "start", start)
    rep = fetch_all(md_store, now=NOW)
    assert (rep.stored, rep.errors) == (12, [])
    assert seen == [{"end": True, "rows": 0, "contacts": None, "index": None, "cached": 0, "reader": None,
                     "trimmed": 1}]
    monkeypatch.undo()
    assert md_store.log.last_event()["seq"] - md_store.snapshot.meta()["seq"] < 9  # folded by the child
    assert md_store.ticket(12)["subject"] == "Baru 11"
    for i in range(12):  # the index was saved: the same mail again is stored once
        drop(md_store, make_mail(subject=f"Baru {i}", msgid=f"<r{i}@x>", frm=f"R{i} <r{i}@pelanggan.example>"))
    rep = fetch_all(md_store, now=NOW)
    assert (rep.stored, rep.duplicates) == (0, 12)


def test_the_message_index_keeps_few_rows_read_over_a_long_run(md_store):
    """Each message leaves rows read in the index (its keys' misses, the `fresh` entries of
    its ticket), tables only read (`qkeys`) too: a flush drops them once they are more than
    `CACHED` (a 20,000-message fetch ended ~11 MB larger with 50,000 a table). Dropped rows
    are read again: the answers stay the same."""
    from tix.ingest import index

    with md_store.writing():
        idx = index.MessageIndex.load(md_store, writer=True)
        try:
            for i in range(index.CACHED + 500):
                assert f"key-{i}" not in idx.keys and f"key-{i}" not in idx.qkeys
                idx.fresh(ticket=i + 1)
            idx.keys.add("stored")
            idx.flush()
            assert max(len(t.cache) for t in idx.tables) <= index.CACHED
            assert "stored" in idx.keys and "key-1" not in idx.keys and "key-1" not in idx.qkeys
            assert idx.merged.get(5) is None and idx.final(5) == 5
        finally:
            idx.close()


def _parse_workers_alive() -> int:
    """This process's children that are parse workers (started by any of its threads)."""
    alive = 0
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as fh:
            for pid in fh.read().split():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                        alive += b"tix.channels.mail.parseworker" in cmd.read()
                except OSError:
                    continue
    return alive


def test_no_refresh_child_runs_beside_the_parse_workers(md_store, monkeypatch):
    """A refresh child (~130 MB) beside the parse workers and the intake took a 20,000-message
    fetch's processes to 380 MB together (issue 16: under 250): while workers parse, the run
    only notes its steps, and folds them when the workers are gone, before the lock is let go."""
    from tix.store import refresh

    monkeypatch.setenv("TIX_PARSE_WORKERS", "1")
    cfg = md_store.path("tix.yaml")
    cfg.write_text(cfg.read_text().replace("snapshot_every: 20000", "snapshot_every: 60"))
    md_store.reload_config()
    md_store.config.section("channels")[0]["batch"] = 70  # chunks the workers parse (Parser.MIN_POOL)
    for i in range(210):  # 3 events each: 630 events, 3 chunks, steps of 60 events or more
        drop(md_store, make_mail(subject=f"Baru {i}", msgid=f"<w{i}@x>", frm=f"W{i} <w{i}@pelanggan.example>"))
    calls = []
    real = refresh.start
    monkeypatch.setattr(refresh, "start", lambda store, steps, end=False: calls.append(
        (len(steps), end, _parse_workers_alive())) or real(store, steps, end))
    rep = fetch_all(md_store, now=NOW)
    assert (rep.stored, rep.errors) == (210, [])
    assert calls and all(alive == 0 for _n, _end, alive in calls)
    assert calls[-1][1] and calls[-1][0] >= 2  # at the end: the steps noted while parsing, then the rest
    assert md_store.log.last_event()["seq"] - md_store.snapshot.meta()["seq"] < 60  # no long tail left
    assert md_store.read().max_ticket == 210


def test_a_pooled_batch_threads_by_tag_and_headers_and_ignores_absurd_tags(md_store, monkeypatch):
    """Batches of at least Parser.MIN_POOL messages are parsed by the workers and their
    tickets read in one go: threading must be the same as one by one."""
    monkeypatch.setenv("TIX_PARSE_WORKERS", "1")
    drop(md_store, make_mail(subject="Refund", msgid="<p0@pelanggan.example>"))
    fetch_all(md_store, now=NOW)
    md_store.refresh_snapshot()  # ticket 1 is read from the snapshot
    drop(md_store, make_mail(subject="Re: Refund [#1]", msgid="<p1@pelanggan.example>"))
    drop(md_store, make_mail(subject="Re: Refund", msgid="<p2@pelanggan.example>",
                             in_reply_to="<p0@pelanggan.example>"))
    drop(md_store, make_mail(subject="Re: [#99999999999999999999999] Refund", msgid="<p3@pelanggan.example>"))
    for i in range(70):
        drop(md_store, make_mail(subject=f"Lain {i}", msgid=f"<q{i}@x>", frm=f"Q{i} <q{i}@pelanggan.example>"))
    rep = fetch_all(md_store, now=NOW)
    assert (rep.stored, rep.quarantined, rep.errors) == (73, 0, [])
    by_mid = {e["data"]["message_id"]: e["ticket"] for e in events(md_store, "message.received")}
    assert by_mid["<p1@pelanggan.example>"] == by_mid["<p2@pelanggan.example>"] == 1
    assert by_mid["<p3@pelanggan.example>"] == 2  # a ticket of its own


def test_fetch_draws_progress_on_a_terminal_only(md_store):
    """On a terminal `tix fetch` shows `inbox: N of M`; in cron (no tty) it stays silent."""
    import pty
    import subprocess
    import sys

    for i in range(5):
        drop(md_store, make_mail(subject=f"Progres {i}", msgid=f"<prog{i}@x>"))
    master, slave = pty.openpty()
    env = dict(os.environ, TIX_STORE=str(md_store.root))
    proc = subprocess.run([sys.executable, "-m", "tix", "fetch", "--no-send"], env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=slave, timeout=60)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.returncode == 0 and proc.stdout == b""
    assert b"inbox: 5 of 5 (100%)" in seen
    assert seen.endswith(b"\r\x1b[K")  # the line is cleared when done


def test_contacts_follow_links_and_merges_made_between_runs(md_store):
    """The intake finds senders in its saved index (not by reading every contact): what
    other commands changed since its last run (a link, a merge) is folded in first, and a
    lost index is rebuilt from the log with the same answers."""
    from tix.tickets.contacts import contact_link, contact_merge

    drop(md_store, make_mail(msgid="<c1@x>", frm="Sari <sari@pelanggan.example>"))
    drop(md_store, make_mail(msgid="<c2@x>", frm="Budi <budi@pelanggan.example>", subject="Refund"))
    fetch_all(md_store, now=NOW)
    assert (md_store.root / "state" / "message-index.sqlite").is_file()
    assert not (md_store.root / "state" / "message-index.json").exists()
    sari, budi = (md_store.ticket(n)["contact"] for n in (1, 2))
    with md_store.writing(actor="user:admin") as batch:
        contact_link(batch, sari, emails=["sari.w@kantor.example"])
    with md_store.writing(actor="user:admin") as batch:
        contact_merge(batch, budi, sari)
    drop(md_store, make_mail(msgid="<c3@x>", frm="Sari <SARI.W@kantor.example>", subject="Lagi"))
    drop(md_store, make_mail(msgid="<c4@x>", frm="Budi <budi@pelanggan.example>", subject="Lagi juga"))
    rep = fetch_all(md_store, now=NOW)
    assert rep.stored == 2 and not rep.errors
    assert [md_store.ticket(n)["contact"] for n in (3, 4)] == [sari, sari]
    assert events(md_store, "contact.created") and len(events(md_store, "contact.created")) == 2
    os.unlink(md_store.root / "state" / "message-index.sqlite")  # a cache: rebuilt from the log
    drop(md_store, make_mail(msgid="<c5@x>", frm="Budi <budi@pelanggan.example>", subject="Sekali lagi"))
    drop(md_store, make_mail(msgid="<c6@x>", frm="Ani <ani@pelanggan.example>", subject="Baru"))
    rep = fetch_all(md_store, now=NOW)
    assert rep.stored == 2 and not rep.errors
    assert md_store.ticket(5)["contact"] == sari
    assert len(events(md_store, "contact.created")) == 3  # only Ani is new
