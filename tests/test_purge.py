"""`tix purge`: the retention rules of tix.yaml (issue 14 item 4), through the erasure's mechanism."""
from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone

import pytest

from tests.plugins.email import add_config, make_mail

OLD_NOW = "2025-01-10T03:00:00Z"
NOW = "2026-11-20T03:00:00Z"


def grep(store, needle: str) -> str:
    return subprocess.run(["grep", "-r", "-i", "-l", "-F", needle, str(store.root)], capture_output=True,
                          text=True).stdout


@pytest.fixture
def aged(mail_store, tix, monkeypatch):
    """An old closed ticket (Lama) with an attachment, a recent open one (Baru), an old quarantine entry."""
    store = mail_store
    monkeypatch.setenv("TIX_NOW", OLD_NOW)
    store.imap.deliver(make_mail(frm="Lama Sekali <lama@pelanggan.example>", subject="Pesanan lama",
                                 body="teks lama tetap", date=datetime(2025, 1, 10, 2, 0, tzinfo=timezone.utc),
                                 attachments=[("lama.pdf", "application/pdf", b"%PDF lama")]))
    tix("fetch", check=0)
    tix("close", "1", check=0)
    from tix.store import quarantine

    quarantine.put(store, "email", b"From: x@y.example\r\n\r\nbroken", "test: unparsable")
    monkeypatch.setenv("TIX_NOW", NOW)
    store.imap.deliver(make_mail(frm="Baru Saja <baru@pelanggan.example>", subject="Pesanan baru",
                                 date=datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc),
                                 attachments=[("baru.pdf", "application/pdf", b"%PDF baru")]))
    tix("fetch", check=0)
    return store


def _sql(tix, query):
    return json.loads(tix("sql", query, "-f", "json", check=0).stdout)


def test_purge_raw_only_keeps_the_text_and_the_contact(aged, tix):
    add_config(aged, "retention:\n  raw_after_months: 12\n  quarantine_after_days: 30\n")
    dry = tix("purge", "--dry-run", check=0)
    assert "would purge:" in dry.stdout and "1 quarantine" in dry.stdout
    blobs_before = sorted(p.name for p in aged.path("blobs").rglob("*") if p.is_file())
    assert len(blobs_before) == 2 and len(list(aged.path("messages").rglob("*.pack"))) == 2
    out = tix("-v", "purge", check=0).stdout
    assert out.startswith("purged: 0 contacts, 1 events")
    blobs = sorted(p.name for p in aged.path("blobs").rglob("*") if p.is_file())
    assert len(blobs) == 1  # the old attachment went, the recent one stays
    assert len(list(aged.path("messages").rglob("*.pack"))) == 1  # the old pack held only expired mail
    rows = _sql(tix, "SELECT ticket, data->>'text' AS text, data->>'raw' AS raw FROM events "
                     "WHERE type = 'message.received' ORDER BY ticket")
    assert rows[0]["text"].startswith("teks lama tetap") and rows[0]["raw"] is None and rows[1]["raw"]
    assert grep(aged, "lama@pelanggan.example")  # the contact is kept: no contacts rule
    assert not list(aged.path("quarantine").rglob("error.json"))
    assert [r["type"] for r in _sql(tix, "SELECT type FROM events WHERE type = 'store.purged'")] == ["store.purged"]
    assert tix("check", check=0).returncode == 0


def test_purge_anonymises_old_contacts_like_an_erasure(aged, tix):
    add_config(aged, "retention:\n  contacts_after_months: 12\n")
    tix("purge", check=0)
    assert grep(aged, "lama@pelanggan.example") == "" and grep(aged, "Lama Sekali") == ""
    assert grep(aged, "baru@pelanggan.example")
    erased = _sql(tix, "SELECT contact, why FROM events WHERE type = 'contact.erased'")
    assert len(erased) == 1 and erased[0]["why"].startswith("retention: contacts_after_months=12")
    statuses = _sql(tix, "SELECT number, status FROM tickets ORDER BY number")
    assert statuses == [{"number": 1, "status": "closed"}, {"number": 2, "status": "new"}]
    tix("purge", check=0)  # again: nothing more to do
    assert len(_sql(tix, "SELECT contact FROM events WHERE type = 'contact.erased'")) == 1


@pytest.mark.parametrize("text, message", [
    ("retention:\n  raw_after_month: 12\n", "retention: unknown key 'raw_after_month'"),
    ("retention:\n  raw_after_months: soon\n", "retention: raw_after_months must be"),
])
def test_a_retention_rule_that_does_not_parse_is_one_line_with_file_and_line(store, tix, text, message):
    add_config(store, text)
    before = sorted(os.listdir(store.root))
    proc = tix("purge")
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{store.root / 'tix.yaml'}:") and message in lines[0]
    line_no = int(lines[0].split(":")[1])
    assert store.path("tix.yaml").read_text().splitlines()[line_no - 1].strip().startswith("raw_after_month")
    assert sorted(os.listdir(store.root)) == before and not store.log.segments()


def test_processed_whatsapp_payloads_go_after_spool_after_days_and_the_text_stays(wa_store, tix, monkeypatch):
    from tests.plugins.whatsapp import spool, text_payload

    monkeypatch.setenv("TIX_NOW", "2026-09-10T03:00:00Z")
    spool(wa_store, text_payload("wamid.OLD1", "pesan lama tetap", ts=1757473200))
    tix("fetch", check=0)
    monkeypatch.setenv("TIX_NOW", NOW)
    spool(wa_store, text_payload("wamid.NEW1", "pesan baru", ts=1763607000))
    tix("fetch", check=0)
    assert sorted(p.parent.name for p in wa_store.path("messages", "whatsapp").rglob("*.json")) == [
        "2026-09", "2026-11"]
    add_config(wa_store, "retention:\n  spool_after_days: 7\n")
    tix("purge", check=0)
    assert [p.parent.name for p in wa_store.path("messages", "whatsapp").rglob("*.json")] == ["2026-11"]
    rows = _sql(tix, "SELECT data->>'text' AS text, data->>'raw' AS raw FROM events "
                     "WHERE type = 'message.received' ORDER BY seq")
    assert rows[0] == {"text": "pesan lama tetap", "raw": None}
    assert rows[1]["raw"].startswith("messages/whatsapp/2026-11")
    assert tix("check", check=0).returncode == 0


def test_a_killed_purge_is_finished_by_the_next_writer(aged, tix, tix_proc):
    add_config(aged, "retention:\n  contacts_after_months: 12\n  raw_after_months: 12\n")
    proc = tix_proc("purge", env={"TIX_TEST_KILL_AT": "rewrite-applying", "TIX_NOW": NOW})
    assert proc.returncode == -9
    assert aged.path("state", "rewrite", "plan.json").is_file()
    tix("note", "2", "-m", "next writer", check=0)  # any writer finishes the purge first
    assert not aged.path("state", "rewrite").exists()
    assert grep(aged, "lama@pelanggan.example") == "" and grep(aged, "baru@pelanggan.example")
    assert [r["type"] for r in _sql(tix, "SELECT type FROM events WHERE type = 'store.purged'")] == ["store.purged"]
    assert tix("check", check=0).returncode == 0
