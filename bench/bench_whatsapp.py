"""WhatsApp benchmarks: spool intake and webhook receiver throughput.

    .venv/bin/python bench/bench_whatsapp.py [--payloads 10000] [--requests 3000] [--clients 16]
                                             [--statuses 1000000]

1. Intake: N text-message payloads (from 1,000 customers) in spool/whatsapp/ of a fresh
   store, then one `tix.ingest.fetch_spool` run (target: 10,000 in under 5 s).
2. Receiver: `tix webhook serve` in its own process on loopback; client processes POST signed
   payloads, one connection per request as Meta does (target: at least 500 requests/s). Every
   accepted request is checked to be in the spool.
3. Growth (issue 16, target 6): a run of 10 payloads on a store whose message index already
   holds --statuses delivery statuses of messages tix sent (a shop's years of WhatsApp
   replies; written straight into the index): its time should not grow with them.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-app-secret"
CONFIG = """
whatsapp:
  numbers:
    - phone_number_id: "100000000000001"
      number: "6281100001111"
  team: support
  app_secret_env: BENCH_WA_SECRET
  verify_token_env: BENCH_WA_VERIFY
"""


def payload(i: int) -> bytes:
    wa = str(6281200000000 + i % 1000)
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "200000000000001", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "6281100001111", "phone_number_id": "100000000000001"},
            "contacts": [{"profile": {"name": f"Pelanggan {i % 1000}"}, "wa_id": wa, "user_id": f"ID.{wa}"}],
            "messages": [{"from": wa, "id": f"wamid.BENCH{i:08d}=", "timestamp": str(1795400000 + i),
                          "type": "text",
                          "text": {"body": f"Halo kak, pesanan INV-{i} belum sampai, mohon dicek"}}]}}]}]},
        separators=(",", ":")).encode()


def new_store(path: Path):
    from tix.store import Store

    store = Store.init(path)
    cfg = store.path("tix.yaml")
    cfg.write_text(cfg.read_text() + CONFIG)
    return store


def bench_intake(n: int) -> None:
    from tix.ingest import fetch_spool
    from tix.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = new_store(Path(tmp) / "store")
        spool = store.path("spool", "whatsapp")
        for i in range(n):
            (spool / f"{i:020d}-1-{i:08d}.json").write_bytes(payload(i))
        store = Store(store.root)
        t = time.perf_counter()
        rep = fetch_spool(store, media=False)
        dt = time.perf_counter() - t
        assert rep.stored == n and not rep.errors, (rep.stored, rep.errors[:3])
        events = sum(1 for _ in store.log.read_raw())
        print(f"intake: {n} payloads -> {events} events in {dt:.2f} s = {n / dt:,.0f} payloads/s "
              f"(target: 10,000 in < 5 s)")
        t = time.perf_counter()
        rep = fetch_spool(Store(store.root), media=False)
        print(f"intake: empty spool run {time.perf_counter() - t:.2f} s")


def bench_statuses(n: int) -> None:
    import sqlite3

    import orjson

    from tix.ingest import fetch_spool
    from tix.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = new_store(Path(tmp) / "store")
        spool = store.path("spool", "whatsapp")
        (spool / f"{0:020d}-1-{0:08d}.json").write_bytes(payload(0))
        fetch_spool(store, media=False)  # makes the index
        db = sqlite3.connect(store.path("state", "message-index.sqlite"))
        with db:
            db.executemany("INSERT INTO kv VALUES ('w', ?, ?)", (
                (f"wamid.OUT{i:012d}", orjson.dumps([3, 3, {"message": f"wamid.OUT{i:012d}", "channel": "whatsapp",
                                                            "status": "read", "at": "2026-11-02T08:00:00.000000Z"}]))
                for i in range(n)))
        db.close()
        for i in range(1, 11):
            (spool / f"{i:020d}-1-{i:08d}.json").write_bytes(payload(i))
        t, c = time.perf_counter(), time.process_time()
        rep = fetch_spool(Store(store.root), media=False)
        assert rep.stored == 10 and not rep.errors, (rep.stored, rep.errors[:3])
        print(f"growth: 10 payloads with {n:,} statuses in the index: {time.perf_counter() - t:.2f} s wall, "
              f"{time.process_time() - c:.2f} s CPU")


def _client(args) -> tuple[int, int]:
    port, count, seed = args
    ok = bad = 0
    for i in range(count):
        body = payload(seed * 1_000_000 + i)
        sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/", body, {"X-Hub-Signature-256": sig, "Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        if resp.status == 200:
            ok += 1
        else:
            bad += 1
    return ok, bad


def bench_receiver(requests: int, clients: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = new_store(Path(tmp) / "store")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(os.environ, TIX_STORE=str(store.root), BENCH_WA_SECRET=SECRET, BENCH_WA_VERIFY="v",
                   PYTHONPATH=str(ROOT))
        proc = subprocess.Popen([sys.executable, "-m", "tix", "webhook", "serve", "--port", str(port)], env=env)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            per = requests // clients
            with multiprocessing.Pool(clients) as pool:
                cpu0 = _cpu_seconds(proc.pid)
                t = time.perf_counter()
                results = pool.map(_client, [(port, per, k) for k in range(clients)])
                dt = time.perf_counter() - t
                cpu = _cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait(10)
        ok = sum(r[0] for r in results)
        bad = sum(r[1] for r in results)
        spooled = len(list(store.path("spool", "whatsapp").glob("*.json")))
        print(f"receiver: {ok} signed POSTs (fsync + rename each) in {dt:.2f} s = {ok / dt:,.0f} requests/s "
              f"with {clients} client processes; failed {bad}; spooled {spooled} (target: >= 500/s)")
        print(f"receiver: server CPU {cpu * 1000 / max(ok, 1):.2f} ms per request "
              f"(the clients share the same {os.cpu_count()} cores)")
        assert spooled == ok


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--payloads", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=3_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--statuses", type=int, default=1_000_000)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    bench_intake(args.payloads)
    bench_receiver(args.requests, args.clients)
    bench_statuses(args.statuses)


if __name__ == "__main__":
    main()
