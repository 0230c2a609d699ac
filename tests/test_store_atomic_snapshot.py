"""Readers keep their snapshot generation until they finish (issue 18, why 4)."""
from __future__ import annotations

import subprocess
import sys

import orjson

from tix.store import Store
from tix.store.snapshot import KINDS, release_leases
from tix.tickets import create_ticket

REFRESHER = """
import sys
from tix.store import Store
from tix.tickets import create_ticket
s = Store(sys.argv[1])
for i in range(int(sys.argv[2])):
    with s.writing(actor="user:other", via="test") as b:
        create_ticket(b, f"other {i}")
    s.refresh_snapshot()
"""


def _refresh_elsewhere(store: Store, times: int) -> None:
    """Another process writes and refreshes the snapshot `times` times (each prunes old files)."""
    proc = subprocess.run([sys.executable, "-c", REFRESHER, str(store.root), str(times)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def _files(store: Store, meta: dict) -> list:
    """The files of `meta`'s generation that the current generation does not share."""
    current = orjson.loads((store.root / "snapshot" / "meta.json").read_bytes())
    return [store.root / "snapshot" / meta[k] for k in KINDS if meta.get(k) and meta[k] not in current.values()]


def test_a_long_read_keeps_its_files_while_other_writers_refresh_the_snapshot(store):
    """A 12-section report running while two bulk updates refreshed the snapshot failed with
    `IO Error: No files found … tickets_delta-230197.parquet`, exit 2."""
    with store.writing(actor="user:t", via="t") as b:
        for i in range(50):
            create_ticket(b, f"ticket {i}")
    store.refresh_snapshot()
    with store.writing(actor="user:t", via="t") as b:
        create_ticket(b, "in the delta")
    store.refresh_snapshot()
    reader = Store(store.root).read()
    con = reader.connect()
    query = "SELECT count(*), max(number) FROM tickets"
    first = con.execute(query).fetchall()
    assert first == [(51, 51)]
    _refresh_elsewhere(store, 3)  # three new generations: the reader's is two behind
    assert orjson.loads((store.root / "snapshot" / "meta.json").read_bytes())["seq"] > reader.meta["seq"]
    assert con.execute(query).fetchall() == first  # the report goes on, on what it started with
    old = _files(store, reader.meta)
    assert old and all(p.exists() for p in old)
    # once the reader is done, the next writer's refresh removes its old files
    con.close()
    assert release_leases(store.root) >= 1
    _refresh_elsewhere(store, 1)
    assert not any(p.exists() for p in old)


def test_a_reader_that_finds_its_generation_just_pruned_reads_the_new_one(store):
    with store.writing(actor="user:t", via="t") as b:
        create_ticket(b, "one")
    store.refresh_snapshot()
    _refresh_elsewhere(store, 1)
    meta = orjson.loads((store.root / "snapshot" / "meta.json").read_bytes())
    _refresh_elsewhere(store, 2)
    assert _files(store, meta) and not any(p.exists() for p in _files(store, meta))
    reader = Store(store.root).read()
    assert reader.meta["seq"] == 4 and reader.max_ticket == 4
    release_leases(store.root)


def test_a_process_reading_many_stores_holds_a_bounded_number_of_leases(tmp_path, monkeypatch):
    from tix.store import snapshot

    monkeypatch.setattr(snapshot, "MAX_LEASES", 4)
    for i in range(4):  # 2 files a store: more than the bound
        other = Store.init(tmp_path / f"s{i}")
        with other.writing(actor="user:t", via="t") as b:
            create_ticket(b, "one")
        other.refresh_snapshot()
        assert Store(other.root).read().max_ticket == 1
    assert len(snapshot._LEASES) <= snapshot.MAX_LEASES
    release_leases(tmp_path)
