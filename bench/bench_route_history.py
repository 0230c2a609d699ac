"""Benchmark `tix route` (then `tix escalate`) over a year of history, as an import leaves it.

    .venv/bin/python bench/bench_route_history.py /tmp/tix-bench          # a store from bench/generate.py
    .venv/bin/python bench/bench_route_history.py --tickets 10000         # generate one in a temp dir

The store is copied (the original is left as it is), its message index is built as `tix
import` leaves it, and the clock is set to the end of the generated year (TIX_NOW), so the
last hours are "recent". Then, each in a process of its own:

- `tix route` with the store's rules (the examples `tix init` copies: filters, categories,
  customer tiers, assignment by skill and round robin, auto-replies with templates);
- `tix escalate` with an SLA policy that notifies on warnings and breaches.

Printed: wall and CPU seconds (user + system of the process), peak memory, tickets per CPU
second, and what reached people: auto-replies and notifications queued in the outbox, the
actions counted as history, `rule.failed` events. Wall time depends on what else the
machine runs (the load average is printed); CPU time is the figure to compare.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SLA = """
sla:
  policies:
    - name: all
      targets: {first_response: 4h, resolution: 3d}
      steps:
        - {name: warn, on: warning, notify: {email: lead@example.co.id}}
        - {name: breach, on: breached, notify: {email: lead@example.co.id}}
"""


def timed(args: list[str], env: dict) -> tuple[dict, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tix", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "peak_mb": after.ru_maxrss / 1024, "code": proc.returncode}, \
        proc.stdout + proc.stderr


def counts(root: Path) -> dict:
    import duckdb

    files = str(root / "events" / "*.jsonl")
    con = duckdb.connect()
    rows = con.execute(
        "SELECT type, count(*) FROM read_json(?, format='newline_delimited', columns={'type': 'VARCHAR'}, "
        "ignore_errors=true) WHERE type IN ('rule.failed', 'rule.auto_reply', 'outbox.queued', 'sla.step', "
        "'sla.breached') GROUP BY type", [files]).fetchall()
    return dict(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store", nargs="?", help="a store from bench/generate.py (copied, never changed)")
    ap.add_argument("--tickets", type=int, default=10000, help="without STORE: generate this many tickets")
    ap.add_argument("--end", default="2026-11-23T17:00:00Z", help="the end of the generated year (TIX_NOW)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tix-bench-route-"))
    try:
        root = work / "store"
        if args.store:
            shutil.copytree(args.store, root, symlinks=True)
        else:
            from bench.generate import generate

            generate(str(root), args.tickets, 0, 365, __import__("datetime").datetime.fromisoformat(args.end))
        with open(root / "tix.yaml", "a", encoding="utf-8") as fh:
            fh.write(SLA)
        from tix.ingest.index import MessageIndex
        from tix.store import Store

        store = Store.open(str(root))
        tickets = store.read().max_ticket
        t = time.perf_counter()
        idx = MessageIndex.load(store, writer=True)  # as `tix import` leaves it
        idx.save(store)
        idx.close()
        print(f"{tickets} tickets; message index built in {time.perf_counter() - t:.1f} s "
              f"(as an import leaves it); load average {os.getloadavg()[0]:.1f}")
        env = dict(os.environ, TIX_STORE=str(root), TIX_NOW=args.end)
        for cmd in (["-v", "route"], ["-v", "escalate"], ["route"]):
            fig, out = timed(cmd, env)
            summary = [ln for ln in out.splitlines() if not ln.startswith(("#", "rules/"))][-3:]
            print(f"tix {' '.join(cmd):12} {fig['wall']:7.1f} s wall {fig['cpu']:7.1f} s CPU "
                  f"{fig['peak_mb']:7.0f} MB peak  exit {fig['code']}"
                  + (f"  {tickets / fig['cpu']:,.0f} tickets/CPU s" if cmd == ["-v", "route"] else ""))
            for line in summary:
                print(f"    {line[:160]}")
        print("events:", ", ".join(f"{k} {v}" for k, v in sorted(counts(root).items())) or "none")
        box = subprocess.run([sys.executable, "-m", "tix", "outbox", "list", "-f", "csv"], env=env,
                             capture_output=True, text=True).stdout.strip().splitlines()
        print(f"outbox: {max(len(box) - 1, 0)} items not sent yet (auto-replies and notifications, recent only)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
