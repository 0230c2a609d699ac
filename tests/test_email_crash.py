"""SIGKILL `tix fetch` at random moments while it reads 2,000 messages from Dovecot.

After every kill, each message flagged \\Seen at the server must already be in the store
(acknowledged only after fsync); after a final clean run, every message is in the store
exactly once.
"""
from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.plugins.email import add_config, make_mail

N = 2000
KILLS = 20


def stored_ids(store) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for ev, _ in store.log.read():
        if ev["type"] == "message.received":
            counts[ev["data"]["message_id"]] += 1
    return counts


def seen_ids(client) -> set[str]:
    client.select_folder("INBOX", readonly=True)
    uids = client.search(["SEEN"])
    out = set()
    for i in range(0, len(uids), 500):
        got = client.fetch(uids[i:i + 500], ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        for data in got.values():
            header = data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().strip()
            out.add(header.split(":", 1)[1].strip())
    return out


def _log_size(store) -> int:
    return sum(p.stat().st_size for p in (store.root / "events").glob("*.jsonl"))


def _wait_for_progress(store, proc, timeout=20.0) -> None:
    start = _log_size(store)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and _log_size(store) == start and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_during_fetch_loses_and_duplicates_nothing(store, imap_user):
    add_config(store, "channels:\n" + imap_user.source_yaml(batch=80))  # >= Parser.MIN_POOL: parse workers run too
    body = "Halo, saya sudah transfer untuk pesanan ini tapi status masih menunggu pembayaran.\n" * 40
    for i in range(N):
        imap_user.deliver(make_mail(subject=f"Pembayaran {i}", body=body, msgid=f"<crash{i}@pelanggan.example>",
                                    frm=f"Pelanggan {i % 300} <p{i % 300}@pelanggan.example>"))
    rng = random.Random(1234)
    env = dict(os.environ, TIX_STORE=str(store.root))
    client = imap_user.client()
    kills = 0
    for _ in range(KILLS):
        proc = subprocess.Popen([sys.executable, "-m", "tix", "fetch"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # kill at a random moment: half the time during start-up/the first fetch, else just
        # after some chunk was fsynced (so that every kill lands mid-run, however fast it is)
        # (a chunk of 80 takes well under 0.1 s: the window is short, or the 2,000
        # messages would all be stored before 20 kills)
        if rng.random() < 0.5:
            time.sleep(rng.uniform(0.05, 0.5))
        else:
            _wait_for_progress(store, proc)
            time.sleep(rng.uniform(0.0, 0.02))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        stored = stored_ids(store)
        assert max(stored.values(), default=1) == 1, "a message was stored twice"
        missing = seen_ids(client) - set(stored)
        assert not missing, f"flagged \\Seen at the server but not in the store: {sorted(missing)[:3]}"
        if len(stored) == N:
            break
    print(f"{kills} kills, {len(stored)} stored before the final run")
    final = subprocess.run([sys.executable, "-m", "tix", "fetch"], env=env, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    stored = stored_ids(store)
    assert len(stored) == N and set(stored.values()) == {1}
    assert stored == collections.Counter({f"<crash{i}@pelanggan.example>": 1 for i in range(N)})
    assert len(seen_ids(client)) == N
    assert kills >= 10, f"only {kills} runs were killed mid-fetch"
    client.logout()
