"""Access accountability (issue 14, item 6): `audit_reads: true` logs who read what; `tix audit` lists it."""
from __future__ import annotations

import csv
import io
import json
import multiprocessing

import orjson
import pytest

from tests.test_access_roles import with_logins
from tix.store import Store


def _audited(store, logins=False):
    path = store.root / "tix.yaml"
    text = path.read_text().replace("settings:\n", "settings:\n  audit_reads: true\n", 1)
    path.write_text(with_logins(text) if logins else text)
    return Store.open(store.root)


def _log(store) -> list[dict]:
    return [orjson.loads(line) for seg in sorted((store.root / "access").glob("*.jsonl"))
            for line in seg.read_bytes().splitlines()]


def test_reads_are_not_logged_unless_asked(store, tix):
    tix("new", "x", check=0)
    tix("show", "1", check=0)
    tix("sql", "SELECT 1", check=0)
    assert not (store.root / "access").exists()


def test_show_sql_and_contact_show_are_logged_with_who_what_when(store, tix):
    store = _audited(store, logins=True)
    tix("new", "Refund", "--team", "support", "--email", "sari@example.com", check=0)
    tix("show", "1", "--history", env={"SUDO_USER": "ani.l", "TIX_NOW": "2026-11-24T02:00:00Z"}, check=0)
    tix("sql", "SELECT count(*) FROM contacts", env={"SUDO_USER": "dewa.p", "TIX_NOW": "2026-11-25T02:00:00Z"},
        check=0)
    tix("contact", "show", "1", "--as", "auditor", env={"TIX_NOW": "2026-12-01T02:00:00Z"}, check=0)
    tix("list", check=0)  # a listing is not an audited read
    log = _log(store)
    assert [(e["ts"], e["actor"], e["login"], e["role"], e["sudo"], e["command"], e["args"]) for e in log] == [
        ("2026-11-24T02:00:00.000000Z", "user:ani", "ani.l", "agent", True, "show", {"number": "1", "history": True}),
        ("2026-11-25T02:00:00.000000Z", "user:dewa", "dewa.p", "admin", True, "sql",
         {"query": "SELECT count(*) FROM contacts"}),
        ("2026-12-01T02:00:00.000000Z", "user:auditor", "root", "admin", False, "contact show",
         {"contact": "1"}),
    ]
    assert log[2]["as_by"] == "root"
    assert sorted(p.name for p in (store.root / "access").iterdir()) == ["2026-11.jsonl", "2026-12.jsonl"]
    assert (store.root / "access" / "2026-11.jsonl").stat().st_mode & 0o777 == 0o640


def test_tix_audit_lists_and_filters_in_every_format(store, tix):
    store = _audited(store, logins=True)
    tix("new", "Refund", "--team", "support", check=0)
    for who, day in (("ani.l", "2026-11-24"), ("dewa.p", "2026-11-26"), ("ani.l", "2026-11-28")):
        tix("show", "1", env={"SUDO_USER": who, "TIX_NOW": f"{day}T02:00:00Z"}, check=0)
    rows = json.loads(tix("audit", "-f", "json", check=0).stdout)
    assert [(r["by"], r["command"], r["what"]) for r in rows] == [
        ("user:ani", "show", {"number": "1"}), ("user:dewa", "show", {"number": "1"}),
        ("user:ani", "show", {"number": "1"})]
    ani = json.loads(tix("audit", "--actor", "ani", "--since", "2026-11-25", "-f", "json", check=0).stdout)
    assert [r["ts"] for r in ani] == ["2026-11-28T02:00:00.000000Z"]
    assert len(json.loads(tix("audit", "--actor", "ani.l", "-f", "json", check=0).stdout)) == 2
    table = tix("audit", "--actor", "dewa", check=0).stdout.splitlines()
    assert table[0].split() == ["when", "by", "login", "role", "sudo", "command", "what"]
    assert table[2].split() == ["2026-11-26", "09:00", "user:dewa", "dewa.p", "admin", "True", "show", "number=1"]
    got = list(csv.DictReader(io.StringIO(tix("audit", "-f", "csv", check=0).stdout)))
    assert [r["login"] for r in got] == ["ani.l", "dewa.p", "ani.l"] and got[0]["what"] == "number=1"
    denied = tix("audit", env={"SUDO_USER": "budi.s"})
    assert denied.returncode == 2 and "needs the role admin" in denied.stderr


def test_a_read_does_not_wait_for_the_write_lock(store, tix):
    store = _audited(store)
    tix("new", "x", check=0)
    with store.writing(actor="user:x", via="test"):  # another writer holds the store
        proc = tix("show", "1", env={"TIX_LOCK_TIMEOUT": "0.1"})
    assert proc.returncode == 0 and len(_log(store)) == 1


def test_a_read_that_cannot_be_logged_is_refused(store, tix):
    store = _audited(store)
    tix("new", "x", check=0)
    (store.root / "access").write_text("not a directory")
    proc = tix("show", "1")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.startswith(f"Error: cannot write the access log {store.root}/access/")
    assert proc.stderr.endswith("with audit_reads: true the read is refused\n")


def test_long_queries_are_clipped_to_one_atomic_line(store, tix):
    store = _audited(store)
    query = "SELECT 1 AS one -- " + "x" * 9000
    tix("sql", query, check=0)
    raw = (next((store.root / "access").glob("*.jsonl"))).read_bytes()
    assert raw.count(b"\n") == 1 and len(raw) < 4096
    assert orjson.loads(raw)["args"]["query"].startswith("SELECT 1 AS one -- xxx")


def _append_many(root: str, n: int) -> None:
    from tix import accesslog
    from tix.access import Identity

    store = Store(root)
    ident = Identity("w", "admin")
    for i in range(n):
        accesslog.record(store, ident, "show", {"number": str(i), **{f"pad{k}": str(k) * 900 for k in range(4)}})


@pytest.mark.parametrize("procs", [4])
def test_concurrent_readers_never_interleave_lines(store, procs):
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_append_many, args=(str(store.root), 150)) for _ in range(procs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0] * procs
    log = _log(store)
    assert len(log) == procs * 150  # every line whole (a torn or interleaved one would not parse)
    assert all(e["args"][f"pad{k}"] == str(k) * 900 for e in log for k in range(4))
