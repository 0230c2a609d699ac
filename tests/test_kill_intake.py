"""kill -9 on the intake's two writers (issue 18): `tix fetch` from a maildir and the WhatsApp
webhook receiver. After each kill the next run completes; the store then equals an unkilled
run's (fetch), and every message the sender posted is one message in the store, never two,
never none (receiver: a POST not answered 200 is posted again, as Meta does)."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.bench_crash import fingerprint
from tests.plugins.email import make_mail
from tests.plugins.whatsapp import sign, text_payload
from tix.store import Store

NOW = "2026-11-24T08:00:00Z"


def _seen(store: Path) -> dict:
    """What a reader sees, with where a message's raw bytes landed left out (a pack file is
    named by its writer: a rerun writes its own)."""
    import orjson

    fp = fingerprint(store)
    events = {}
    for (kind, ticket, via, data), n in fp["events"].items():
        d = {k: v for k, v in orjson.loads(data).items() if k not in ("raw", "raw_span")}
        key = (kind, ticket, via, orjson.dumps(d, option=orjson.OPT_SORT_KEYS))
        events[key] = events.get(key, 0) + n
    return {"tickets": fp["tickets"], "events": events}


def _maildir(root: Path, n: int) -> Path:
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        frm = f"Pelanggan {i % 97} <c{i % 97}@pelanggan.example>"
        raw = make_mail(msgid=f"<k{i}@pelanggan.example>", subject=f"Pesanan {i % 131}", frm=frm,
                        body="Halo, pesanan saya belum sampai. " * 40,
                        in_reply_to=f"<k{i - 97}@pelanggan.example>" if i >= 97 and i % 3 == 0 else None)
        (root / "new" / f"{i:06d}.kill").write_bytes(raw)
    return root


def _fetch_store(root: Path, maildir: Path) -> Path:
    Store.init(root)
    with open(root / "tix.yaml", "a", encoding="utf-8") as fh:
        fh.write(f"\nchannels:\n  - name: inbox\n    type: maildir\n    path: {maildir}\n    after: seen\n"
                 f"    address: support@toko.example\n    team: support\n")
    return root


def _fetch(store: Path) -> subprocess.Popen:
    env = dict(os.environ, TIX_STORE=str(store), TIX_NOW=NOW, TIX_LOCK_TIMEOUT="60")
    return subprocess.Popen([sys.executable, "-m", "tix", "fetch", "--no-send"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_fetch_killed_then_rerun_ends_where_an_unkilled_fetch_ends(tmp_path):
    mails = _maildir(tmp_path / "mails", 900)
    ref_mail = tmp_path / "ref-mail"
    shutil.copytree(mails, ref_mail)
    ref_store = _fetch_store(tmp_path / "ref", ref_mail)
    t = time.perf_counter()
    proc = _fetch(ref_store)
    _out, err = proc.communicate(timeout=600)
    took = time.perf_counter() - t
    assert proc.returncode == 0, err
    reference = _seen(ref_store)
    assert sum(n for (kind, *_rest), n in reference["events"].items() if kind == "message.received") == 900
    rng = random.Random(18)
    kills = 0
    for trial in range(3):
        work_mail, work = tmp_path / f"mail{trial}", tmp_path / f"store{trial}"
        shutil.copytree(mails, work_mail)
        _fetch_store(work, work_mail)
        proc = _fetch(work)
        time.sleep(rng.uniform(0.35, 0.9) * took)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate()
        rerun = _fetch(work)
        _out, err = rerun.communicate(timeout=600)
        assert rerun.returncode == 0, err
        assert _seen(work) == reference, f"trial {trial}"
        assert list((work_mail / "new").iterdir()) == []  # every message acknowledged
        assert [p for p in work.rglob("*") if ".tmp" in p.name] == []
    assert kills >= 1, "no kill landed while fetch ran"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(store: Store, port: int) -> subprocess.Popen:
    env = dict(os.environ, TIX_STORE=str(store.root))
    proc = subprocess.Popen([sys.executable, "-m", "tix", "webhook", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the receiver did not start")


def _post(port: int, body: bytes) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST",
                                 headers={"X-Hub-Signature-256": sign(body), "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0  # the connection died with the receiver


@pytest.mark.slow
def test_webhook_receiver_killed_mid_burst_loses_and_doubles_nothing(wa_store):
    from tix.ingest import fetch_spool

    bodies = {f"wamid.K{i}": json.dumps(text_payload(f"wamid.K{i}", f"pesan {i}", wa_id=f"1555555{i % 40:04d}",
                                                     ts=1760000100 + i)).encode() for i in range(400)}
    pending = dict(bodies)
    rng = random.Random(18)
    kills = 0
    for _round in range(3):
        port = _free_port()
        server = _serve(wa_store, port)
        answered: dict[str, int] = {}

        def killer(server=server):
            time.sleep(rng.uniform(0.2, 0.6))
            server.send_signal(signal.SIGKILL)

        k = threading.Thread(target=killer)
        k.start()
        with ThreadPoolExecutor(8) as pool:
            for wamid, status in zip(pending, pool.map(lambda b, port=port: _post(port, b), pending.values()),
                                     strict=True):
                answered[wamid] = status
        k.join()
        server.wait()
        kills += server.returncode == -signal.SIGKILL
        # Meta posts again what was not answered 200 (and now and then what was)
        pending = {w: b for w, b in bodies.items() if answered.get(w, 200) != 200 or rng.random() < 0.02}
        if not pending:
            break
    port = _free_port()
    server = _serve(wa_store, port)
    try:
        for body in pending.values():
            assert _post(port, body) == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert kills >= 1
    fetch_spool(wa_store, media=False)
    received = [ev["data"]["message"] for ev, _ in wa_store.log.read() if ev["type"] == "message.received"]
    assert sorted(received) == sorted(bodies)  # each once
    spool_dir = wa_store.path("spool", "whatsapp")
    fetch_spool(wa_store, media=False)  # a second run finds nothing new and removes nothing it should keep
    assert [p.name for p in spool_dir.iterdir() if p.is_file() and ".tmp" in p.name] == []
    assert len([ev for ev, _ in wa_store.log.read() if ev["type"] == "message.received"]) == 400
