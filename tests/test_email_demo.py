"""The bundled demo maildir: real intake with no server (English and Indonesian mail)."""
from __future__ import annotations

import hashlib

from tests.plugins.email import add_config
from tix.store import quarantine
from tix.channels.mail.maildir import DEMO_MAILDIR


def snapshot_dir():
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (DEMO_MAILDIR / "new").iterdir()}


def test_demo_maildir_fetches_into_tickets(store, tix):
    before = snapshot_dir()
    assert 30 <= len(before) - 1 <= 60  # plus new/.keep
    add_config(store, f"channels:\n  - name: demo\n    type: maildir\n    path: {DEMO_MAILDIR}\n"
                      "    address: support@toko.example\n    team: support\n")
    proc = tix("-v", "fetch")
    assert proc.returncode == 1  # the one malformed message is quarantined, and says so
    assert "1 message(s) quarantined" in proc.stderr
    assert "37 stored (33 new tickets)" in proc.stdout
    assert snapshot_dir() == before  # the package's files are only read
    con = store.connect()
    rows = dict(con.execute("SELECT number, subject FROM tickets").fetchall())
    assert rows[1] == "Pengembalian dana pesanan INV-2026-1101" and rows[3] == "Double charge on my credit card"
    msgs = dict(con.execute("SELECT number, messages_in FROM tickets WHERE messages_in > 1").fetchall())
    assert msgs == {1: 2, 3: 2, 4: 2}  # In-Reply-To (Sari, Tom) and the subject tag [#4] (Dewi)
    auto = con.execute("SELECT subject FROM tickets WHERE status = 'closed' AND list_contains(tags, 'auto') "
                       "ORDER BY number").fetchall()
    assert [a[0] for a in auto] == ["Otomatis: Permintaan faktur pajak", "Diskon ongkir 50% minggu ini!"]
    assert "Refund – order INV-2026-1144 (café machine)" in rows.values()
    evs = [ev for ev, _ in store.log.read()]
    (unmatched,) = [e for e in evs if e["type"] == "message.unmatched"]
    assert unmatched["data"]["recipients"] == ["rina.kusuma@gmial.example"]
    pdf = [a for e in evs if e["type"] == "message.received" for a in e["data"]["attachments"]
           if a["name"] == "bukti-transfer-BCA.pdf"]
    assert pdf and (store.root / "blobs" / "sha256" / pdf[0]["sha256"][:2] / pdf[0]["sha256"]).is_file()
    html = next(e for e in evs if e["type"] == "message.received" and e["data"]["html"])
    assert "Mohon respon dalam 2x24 jam" in html["data"]["text"]
    (q,) = quarantine.entries(store)
    assert q["error"] == "not an RFC 5322 message: an Outlook .msg (CFB) file"
    assert tix("fetch").returncode == 0  # the next run has nothing new and nothing to trip on
