"""Concurrent writers and SIGKILL in the middle of a bulk update (real processes)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import orjson
import pytest

from tests.test_store_snapshot import rebuilt_state, state_of
from tix.store import Store
from tix.tickets import create_ticket


def _seed(store: Store, n: int) -> None:
    with store.writing(actor="user:seed", via="test") as b:
        for i in range(n):
            create_ticket(b, f"ticket {i}", team=("billing", "support")[i % 2])


def _update(store: Store, *args) -> subprocess.Popen:
    env = dict(os.environ, TIX_STORE=str(store.root), TIX_LOCK_TIMEOUT="60")
    return subprocess.Popen([sys.executable, "-m", "tix", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _log_lines(store: Store) -> list[dict]:
    out = []
    for seg in sorted((store.root / "events").glob("*.jsonl")):
        for line in seg.read_bytes().split(b"\n")[:-1]:
            out.append(orjson.loads(line))
    return out


def test_two_bulk_updates_at_once_both_succeed_and_every_event_is_logged(store):
    _seed(store, 400)
    a = _update(store, "--as", "alice", "update", "team:billing", "--set", "priority=high", "--yes")
    b = _update(store, "--as", "bob", "update", "team:support", "--add-tag", "checked", "--note", "seen", "--yes")
    out_a, err_a = a.communicate(timeout=120)
    out_b, err_b = b.communicate(timeout=120)
    assert (a.returncode, err_a) == (0, "") and (b.returncode, err_b) == (0, "")
    # a sentence, not a bare number (issue 15); bob's tag and note are two events per ticket
    assert out_a.strip() == "changed 200 of 200 matching tickets (200 events)"
    assert out_b.strip() == "changed 200 of 200 matching tickets (400 events)"
    events = _log_lines(store)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert sum(e["actor"] == "user:alice" and e["type"] == "ticket.updated" for e in events) == 200
    assert sum(e["actor"] == "user:bob" and e["type"] == "ticket.tagged" for e in events) == 200
    assert sum(e["actor"] == "user:bob" and e["type"] == "ticket.note" for e in events) == 200
    con = store.connect()
    assert con.execute("SELECT count(*) FROM tickets WHERE team='billing' AND priority='high'").fetchone()[0] == 200
    assert con.execute("SELECT count(*) FROM tickets WHERE list_contains(tags, 'checked')").fetchone()[0] == 200


@pytest.mark.slow
def test_sigkill_during_large_bulk_update_leaves_a_whole_consistent_store(store, tmp_path):
    _seed(store, 30000)
    store.refresh_snapshot()
    rng = random.Random(7)
    kills = 0
    for attempt in range(6):
        value = ("high", "low", "urgent", "normal")[attempt % 4]
        proc = _update(store, "update", "number:>0", "--set", f"priority={value}", "--add-tag", f"run{attempt}",
                       "--yes")
        time.sleep(rng.uniform(0.3, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        # the store opens, readers see only whole events, and the seq has no holes
        events = [ev for ev, _ in store.log.read()]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert state_of(store) == rebuilt_state(store, tmp_path)
    assert kills >= 1
    # a final clean run goes through and the result is the state the log says
    proc = _update(store, "update", "number:>0", "--set", "priority=low", "--yes")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert state_of(store) == rebuilt_state(store, tmp_path)
    con = store.connect()
    assert con.execute("SELECT count(*) FROM tickets WHERE priority <> 'low'").fetchone()[0] == 0
