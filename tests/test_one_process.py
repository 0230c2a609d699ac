"""One process, several stores: what a long-running process (`tix webhook serve`, a WSGI
host, the in-process test suite) meets that a fresh `tix` per command never did.

(`tix demo` run twice in one process is in test_demo.py.)"""
from __future__ import annotations

import shutil
from datetime import datetime, timezone

from tests.plugins.email import add_config, make_mail
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

