"""The event log: whole events only, fsynced appends, torn-line repair, seq, segments, lock."""
from __future__ import annotations

import subprocess
import sys
import time

import orjson
import pytest

from tix.errors import StoreLocked
from tix.store import Store, find_store
from tix.store.log import EventLog, seq_before
from tix.tickets import create_ticket


def _make(store, n=3):
    with store.writing(actor="user:test", via="test") as batch:
        return [create_ticket(batch, f"subject {i}") for i in range(n)]


def test_events_have_the_documented_shape(store):
    _make(store, 1)
    line = (store.root / "events").glob("*.jsonl").__next__().read_bytes().splitlines()[0]
    ev = orjson.loads(line)
    assert set(ev) >= {"seq", "ts", "actor", "via", "type", "ticket", "data"}
    assert ev["seq"] == 1 and ev["type"] == "ticket.created" and ev["actor"] == "user:test"
    assert ev["ts"].endswith("Z") and len(ev["ts"]) == len("2026-11-24T07:57:05.123456Z")


def test_seq_before_names_the_event_ending_at_a_position(store):
    _make(store, 2)
    first = store.log.end()
    _make(store, 1)
    path = store.log.dir / first.segment
    assert seq_before(path, first.offset) == 2
    assert seq_before(path, store.log.end().offset) == 3
    assert seq_before(path, first.offset - 1) is None  # not at the end of a line
    assert seq_before(path, 0) is None
    path.write_bytes(path.read_bytes()[:first.offset] + b"not json\n")  # a rewritten log
    assert seq_before(path, first.offset + len(b"not json\n")) is None


def test_seq_before_reads_back_past_a_long_event(store, tmp_path):
    """The line is found however long it is (it reads back a few KB, then more), up to 1 MB."""
    path = tmp_path / "seg.jsonl"
    for size in (10, 4090, 4100, 20_000, 300_000):
        lines = [orjson.dumps({"seq": 7, "data": "x" * 50}), orjson.dumps({"seq": 8, "data": "y" * size})]
        path.write_bytes(b"\n".join(lines) + b"\n")
        assert seq_before(path, path.stat().st_size) == 8, size
        assert seq_before(path, len(lines[0]) + 1) == 7, size
    path.write_bytes(orjson.dumps({"seq": 9, "data": "z" * 9000}) + b"\n")  # the first line of a segment
    assert seq_before(path, path.stat().st_size) == 9
    path.write_bytes(b"{}\n" + orjson.dumps({"seq": 10, "data": "z" * (1 << 20)}) + b"\n")
    assert seq_before(path, path.stat().st_size) is None  # over 1 MB: not looked for


def test_batch_rollback_to_a_savepoint_forgets_events_and_ids(store):
    _make(store, 1)
    with store.writing(actor="user:t", via="t") as batch:
        assert create_ticket(batch, "kept") == 2
        mark = batch.savepoint()
        create_ticket(batch, "dropped")
        batch.new_contact_id()
        batch.rollback(mark)
        assert create_ticket(batch, "kept too") == 3
        assert batch.new_contact_id() == 1
        batch.flush()
        with pytest.raises(ValueError, match="flushed after the savepoint"):
            batch.rollback(mark)
    assert [(ev["seq"], ev["data"].get("subject")) for ev, _ in store.log.read() if ev["type"] == "ticket.created"] \
        == [(1, "subject 0"), (2, "kept"), (3, "kept too")]


def test_seq_is_contiguous_across_batches_and_segments(store):
    _make(store, 2)
    # a later segment (next month) continues the sequence
    with store.writing(actor="user:t", via="t") as batch:
        batch.emit("ticket.note", ticket=1, data={"body": "x"}, ts="2099-01-01T00:00:00.000000Z")
    _make(store, 2)
    seqs = [ev["seq"] for ev, _ in store.log.read()]
    assert seqs == list(range(1, 6))
    assert store.log.segments()[-1] == "2099-01.jsonl"


def test_torn_last_line_is_ignored_by_readers_and_repaired_by_next_writer(store):
    _make(store, 2)
    seg = store.root / "events" / store.log.segments()[-1]
    with open(seg, "ab") as fh:
        fh.write(b'{"seq": 3, "ts": "2026-11-24T00:00:00.000000Z", "type": "ticket.cre')
    # readers: the half event does not exist
    assert [ev["seq"] for ev, _ in store.log.read()] == [1, 2]
    assert store.read().max_ticket == 2
    # the next write cuts it off, keeps its bytes in quarantine, and continues the sequence
    _make(store, 1)
    lines = seg.read_bytes().splitlines()
    assert [orjson.loads(line)["seq"] for line in lines] == [1, 2, 3]
    kept = list((store.root / "quarantine").glob("torn-*"))
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b'{"seq": 3')


def test_store_discovery_order(tmp_path, monkeypatch):
    a = Store.init(tmp_path / "a")
    b = Store.init(tmp_path / "b")
    (tmp_path / "b" / "deep" / "er").mkdir(parents=True)
    monkeypatch.delenv("TIX_STORE")
    assert find_store(cwd=tmp_path / "b" / "deep" / "er") == b.root.resolve()
    monkeypatch.setenv("TIX_STORE", str(a.root))
    assert find_store(cwd=tmp_path / "b" / "deep" / "er") == a.root.resolve()
    assert find_store(str(b.root)) == b.root.resolve()


def test_no_store_says_how_to_create_one(tmp_path, tix, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proc = tix("list", env={"TIX_STORE": ""})
    assert proc.returncode == 2
    assert proc.stderr == ("Error: no tix store found here or above; create one with: tix init DIR "
                           "(or point --store / TIX_STORE at one)\n")


def test_second_writer_gives_up_with_exit_75(store, tix_proc):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from tix.store import Store; s = Store(sys.argv[1]); "
        "l = s.lock(); l.acquire(); print('locked', flush=True); time.sleep(30)"), str(store.root)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t = time.monotonic()
        proc = tix_proc("new", "hello", env={"TIX_LOCK_TIMEOUT": "0.5"})
        assert proc.returncode == 75
        assert "store is locked by another tix process" in proc.stderr and "state/lock" in proc.stderr
        assert time.monotonic() - t < 10
        assert store.read().max_ticket == 0  # nothing written
    finally:
        holder.kill()
        holder.wait()
    assert tix_proc("new", "hello").returncode == 0


def test_lock_is_released_and_reentrant(store):
    lock = store.lock(timeout=0.1)
    with lock:
        with lock:
            assert lock.held
        assert lock.held
    assert not lock.held
    other = Store(store.root).lock(timeout=0.1)
    with other:
        with pytest.raises(StoreLocked):
            Store(store.root).lock(timeout=0.1).acquire()


def test_failed_block_writes_nothing(store):
    with pytest.raises(RuntimeError):
        with store.writing(actor="user:x", via="t") as batch:
            create_ticket(batch, "never")
            raise RuntimeError("boom")
    assert list(EventLog(store.root / "events").read()) == []


@pytest.mark.parametrize("block", [7, 64, 1 << 16])
def test_reading_backward_only_matching_lines_finds_what_reading_every_line_finds(store, monkeypatch, block):
    """Issue 16: `read_backward(match=…)` searches whole blocks for the bytes (a month with no
    match costs a read, not a loop over its lines); the same events, last first, with a block
    boundary anywhere in a line (tiny blocks), and `first_segment` leaves older months out."""
    from tix.store import log as logmod

    for i in range(40):
        monkeypatch.setenv("TIX_NOW", f"2026-0{1 + i // 20}-{1 + i % 20:02d}T10:00:00Z")
        with store.writing(actor="user:a", via="t") as b:
            n = create_ticket(b, f"t{i}" + "é" * (i % 7), team="billing")
            if i % 3 == 0:
                b.emit("rule.auto_reply", ticket=n, actor="rule:ack", data={"to": f"c{i}@example.com"})
    assert len(store.log.segments()) == 2
    monkeypatch.setattr(logmod, "_BLOCK", block)
    every = [ev for ev in store.log.read_backward() if ev["type"] == "rule.auto_reply"]
    assert len(every) == 14
    assert list(store.log.read_backward(match=b'"rule.auto_reply"')) == every
    feb = list(store.log.read_backward(match=b'"rule.auto_reply"', first_segment=store.log.segments()[1]))
    assert feb == [ev for ev in every if ev["ts"] >= "2026-02"] and 0 < len(feb) < 14
    # the searched pages are given back as it goes (a cron route's peak RSS at 1M): at every step here
    monkeypatch.setattr(logmod, "_UNMAP_AT", 1)
    assert list(store.log.read_backward(match=b'"rule.auto_reply"')) == every


def test_iso_many_formats_as_iso_of_fromtimestamp():
    """`iso_many` (a breach's `due_at`, issue 16) writes what `iso(datetime.fromtimestamp(t))`
    writes, microseconds rounded alike, including halves of a microsecond."""
    from datetime import datetime, timezone

    import numpy as np
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tix.store.log import iso, iso_many

    base = np.array([0.0, 1.0, 1_795_000_000.0, 1_795_000_000.5e0, 253_402_300_799.0])
    halves = np.floor(np.linspace(1.6e9, 1.9e9, 50))[:, None] + np.array([0.5e-6, 1.5e-6, 2.5e-6, 0.9999995])

    def same(values):
        values = np.asarray(values, np.float64)
        assert iso_many(values) == [iso(datetime.fromtimestamp(v, timezone.utc)) for v in values.tolist()]

    same(base)
    same(halves.ravel())

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.floats(min_value=0, max_value=4e9, allow_nan=False), max_size=20))
    def check(values):
        same(values)

    check()
