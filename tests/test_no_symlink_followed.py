"""No symbolic link is followed out of a source directory (issue 12, finding 6).

A symlink in a maildir's `new/` or in `spool/whatsapp/` made `tix fetch` copy its target (any
file the cron user can read) into `quarantine/`. Now the link is not read: one error line,
exit 1, the target's bytes nowhere in the store, every other message stored.
"""
from __future__ import annotations

import os

from tests.plugins.email import add_config, make_mail
from tix.ingest import fetch_all

SECRET = b"root:$6$very-secret-hash:19000:0:99999:7:::\n"


def _grep_store(store, needle: bytes) -> list[str]:
    hits = []
    for dirpath, _dirs, names in os.walk(store.root):
        for n in names:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p) and needle in open(p, "rb").read():
                hits.append(p)
    return hits


def test_a_symlink_in_a_maildir_is_not_read(store, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    md = tmp_path / "maildir"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    add_config(store, f"channels:\n  - name: inbox\n    type: maildir\n    path: {md}\n    after: seen\n")
    (md / "new" / "1.eml").write_bytes(make_mail(msgid="<ok1@x>"))
    os.symlink(secret, md / "new" / "2.eml")
    rep = fetch_all(store)
    assert rep.stored == 1 and rep.quarantined == 0
    (line,) = rep.errors
    assert "2.eml: a symbolic link, not read" in line
    assert _grep_store(store, b"very-secret-hash") == []
    assert (md / "new" / "2.eml").is_symlink()  # left where it was, for the admin to look at


def test_a_symlink_in_the_whatsapp_spool_is_not_read(wa_store, tmp_path):
    secret = tmp_path / "shadow.json"
    secret.write_bytes(b'{"object": "whatsapp_business_account", "x": "' + SECRET.strip() + b'"}')
    spool = wa_store.path("spool", "whatsapp")
    spool.mkdir(parents=True, exist_ok=True)
    os.symlink(secret, spool / "00000000000000000001-evil.json")
    rep = fetch_all(wa_store)
    assert any("a symbolic link, not read" in e for e in rep.errors)
    assert _grep_store(wa_store, b"very-secret-hash") == []
