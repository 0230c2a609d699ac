"""One process, several stores: what a long-running process (`tix webhook serve`, a WSGI
host, the in-process test suite) meets that a fresh `tix` per command never did."""
from __future__ import annotations

import shutil
from datetime import datetime, timezone

from tests.plugins.email import SmtpServer, add_config, make_mail
from tix.channels import smtp
from tix.ingest import fetch_all
from tix.store import Store

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=timezone.utc)


def test_a_store_made_again_at_the_same_path_takes_mail_and_attachments(tmp_path):
    root, md = tmp_path / "again", tmp_path / "maildir"
    raw = make_mail(msgid="<same@pelanggan.example>", attachments=[("resi.pdf", "application/pdf", b"%PDF-" * 300)])
    for _ in range(2):
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(md, ignore_errors=True)
        for sub in ("new", "cur", "tmp"):
            (md / sub).mkdir(parents=True)
        (md / "new" / "1.test").write_bytes(raw)
        store = Store.init(root)
        add_config(store, f"channels:\n  - name: inbox\n    type: maildir\n    path: {md}\n    after: seen\n"
                          "    address: support@toko.example\n")
        rep = fetch_all(store, now=NOW)
        assert (rep.stored, rep.quarantined, rep.errors) == (1, 0, [])
        assert len(list(root.glob("blobs/sha256/*/*"))) == 1


def _queued(store, name: str) -> dict:
    rel = f"outbox-test/{name}.eml"
    path = store.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"From: support@toko.example\r\nTo: sari@pelanggan.example\r\nSubject: " + name.encode()
                     + b"\r\n\r\nHalo\r\n")
    return {"raw": rel, "to": ["sari@pelanggan.example"], "from": "support@toko.example", "message_id": f"<{name}@x>"}


def test_smtp_connection_is_not_reused_for_another_stores_server(tmp_path):
    servers = [SmtpServer().start(), SmtpServer().start()]
    try:
        stores = [Store.init(tmp_path / name) for name in ("a", "b")]
        for store, server in zip(stores, servers, strict=True):
            add_config(store, server.outbound_yaml())
        smtp.send_item(stores[0], _queued(stores[0], "for-a"))  # no finish(): the connection stays open
        smtp.send_item(stores[1], _queued(stores[1], "for-b"))
        smtp.finish()
        assert [b"Subject: for-a" in m["data"] for m in servers[0].messages] == [True]
        assert [b"Subject: for-b" in m["data"] for m in servers[1].messages] == [True]
    finally:
        smtp.finish()
        for server in servers:
            server.stop()
