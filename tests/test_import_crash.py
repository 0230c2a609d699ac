"""`tix import` killed with SIGKILL at random moments: the rerun stores the rest, nothing twice."""
from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.plugins.email import make_mail

N = 3000


def stored_ids(store) -> collections.Counter:
    return collections.Counter(ev["data"]["message_id"] for ev, _ in store.log.read()
                               if ev["type"] in ("message.received", "message.sent"))


def _write_mbox(path) -> None:
    start = datetime(2025, 1, 1, 2, 0, tzinfo=timezone.utc)
    with open(path, "wb") as fh:
        for i in range(N):
            when = start + timedelta(hours=5 * i)
            if i % 2:  # the shop's answer to the message before
                raw = make_mail(subject=f"Re: Pesanan {i - 1}", frm="Ani <ani@example.co.id>",
                                to=f"p{i % 97}@pelanggan.example", msgid=f"<crash{i}@toko.example>",
                                in_reply_to=f"<crash{i - 1}@toko.example>", date=when)
            else:
                raw = make_mail(subject=f"Pesanan {i}", frm=f"Pelanggan <p{i % 97}@pelanggan.example>",
                                msgid=f"<crash{i}@toko.example>", date=when, body="Halo kak, pesanan saya?\n" * 30)
            body = raw.replace(b"\r\n", b"\n").replace(b"\nFrom ", b"\n>From ")
            fh.write(b"From x@y Thu Jan  1 00:00:00 2025\n" + body + b"\n")


def _log_size(store) -> int:
    return sum(p.stat().st_size for p in (store.root / "events").glob("*.jsonl"))


@pytest.mark.slow
def test_sigkill_during_import_resumes_without_duplicates(store, tmp_path, tix_proc):
    box = tmp_path / "history.mbox"
    _write_mbox(box)
    env = dict(os.environ, TIX_STORE=str(store.root))
    args = [sys.executable, "-m", "tix", "import", "mbox", str(box), "--resolve-answered"]
    rng = random.Random(17)
    kills = 0
    for _ in range(8):
        before = _log_size(store)
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while proc.poll() is None and _log_size(store) == before:  # kill after some chunk was fsynced
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.15))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        stored = stored_ids(store)
        assert max(stored.values(), default=1) == 1, "a message was stored twice"
        if len(stored) == N:
            break
    print(f"{kills} kills, {len(stored)} stored before the final run")
    final = tix_proc("import", "mbox", str(box), "--resolve-answered")
    assert final.returncode == 0, final.stderr
    stored = stored_ids(store)
    assert stored == collections.Counter({f"<crash{i}@toko.example>": 1 for i in range(N)})
    assert kills >= 2, f"only {kills} runs were killed mid-import"
    tickets = store.read().connect().execute("SELECT count(*), count(*) FILTER (WHERE status = 'resolved') "
                                             "FROM tickets").fetchone()
    assert tickets == (N // 2, N // 2)  # every thread answered: resolved, even those an earlier run took in
