"""Erasure benchmark (issue 14): `tix contact erase` of one contact on a generated store.

    python bench/generate.py /tmp/tix-bench-100k --tickets 100000
    python bench/bench_erase.py /tmp/tix-bench-100k [--contacts 3]

Works on a copy of the store (the generated one stays as it is). For a few contacts (an
email customer, a WhatsApp one, one with several tickets) it times `--dry-run` and the
erasure itself, as real commands in a subprocess, and counts the segments rewritten out of
all of them. The scan reads every segment once (and once more for the blob references, only
when the contact had attachments); only the segments holding the contact's events are
rewritten, so the time grows with the log's size (read) plus the contact's segments (written).
Target: under 30 s on the 1M-ticket store (10x this store's log): measure here, extrapolate.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


CPU: list[float] = [0.0]  # CPU seconds (user + system) of the last command: the machine is shared


def run(store: Path, *args: str) -> tuple[float, str]:
    env = dict(os.environ, TIX_STORE=str(store))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tix", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[0] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return time.perf_counter() - t, proc.stdout


def pick(store: Path, n: int) -> list[int]:
    _, out = run(store, "sql", "SELECT contact, count(*) AS n FROM tickets GROUP BY contact ORDER BY n DESC, "
                               "contact LIMIT 1", "-f", "json")
    many = [r["contact"] for r in json.loads(out)]
    _, out = run(store, "sql", "SELECT id FROM contacts WHERE len(emails) > 0 ORDER BY id LIMIT 1", "-f", "json")
    email = [r["id"] for r in json.loads(out)]
    _, out = run(store, "sql", "SELECT id FROM contacts WHERE len(phones) > 0 ORDER BY id DESC LIMIT 1",
                 "-f", "json")
    phone = [r["id"] for r in json.loads(out)]
    return list(dict.fromkeys(many + email + phone))[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store")
    ap.add_argument("--contacts", type=int, default=3)
    ap.add_argument("--work", default=None, help="where to copy the store (default: beside it)")
    args = ap.parse_args()
    src = Path(args.store)
    work = Path(args.work or f"{src}-erase-copy")
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(src, work, symlinks=True)
    try:
        segs = sorted((work / "events").glob("*.jsonl"))
        size = sum(p.stat().st_size for p in segs)
        print(f"store {src}: {len(segs)} segments, {size / 1e6:.0f} MB of log")
        run(work, "outbox", "list")  # a live store has its outbox index saved; the generator writes none
        print(f"{'contact':>8} {'dry-run s':>10} {'erase s':>8} {'erase cpu s':>12} {'segments rewritten':>19} "
              f"{'events':>7}")
        for cid in pick(work, args.contacts):
            dry_s, out = run(work, "contact", "erase", str(cid), "--why", "bench", "--dry-run")
            touched = [ln for ln in out.splitlines() if ln.startswith("events/")]
            events = sum(int(ln.split(": ")[1].split()[0]) for ln in touched)
            erase_s, _ = run(work, "contact", "erase", str(cid), "--why", "bench")
            print(f"{cid:>8} {dry_s:>10.2f} {erase_s:>8.2f} {CPU[0]:>12.2f} {len(touched):>10}/{len(segs):<8} "
                  f"{events:>7}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
