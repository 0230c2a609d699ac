"""Benchmark `tix escalate` on a generated store (default 1M tickets, ~100k open).

    python bench/bench_sla.py [--tickets 1000000] [--dir /tmp/tix-bench-sla-1000000] [--runs 5]

Generates the store once with bench/generate.py (reused when the directory exists), adds the
calendars and SLA policies below to its tix.yaml, then measures:

1. the first run, which builds the SLA state by folding the whole log (once per store, and
   after `tix escalate --rebuild` or a log rewrite);
2. cron runs: each one after appending a realistic five minutes of new events (new tickets,
   customer messages, agent replies, status changes), evaluated five minutes later; this is
   the figure the issue's "under 5 s" is about;
3. `tix escalate` as a subprocess after five more minutes of work (interpreter start, imports,
   config check included): wall, CPU (user+sys) and peak RSS under /usr/bin/time;
4. a report-style query over the `sla` view.

    python bench/bench_sla.py --first [--dir DIR]

measures only the first `tix escalate` on an existing store (issue 16: under 10 s and 1 GB):
a copy of the store with the SLA state (`snapshot/sla/`, what records escalate's progress)
removed, `tix escalate` run on it once as a subprocess under /usr/bin/time (wall, CPU
user+sys, peak RSS), then the copy is removed. The copy keeps the store itself unchanged,
so the figure can be taken again and again.

Prints its figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tix.sla.escalate import escalate
from tix.store import Store
from tix.store.log import iso

END = datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc)  # generate.py's default end of the year

# the calendars and policies added to the store (bench_growth.py adds the same)
SLA_YAML = "\n" + (Path(__file__).resolve().parent / "sla.yaml").read_text(encoding="utf-8")


def prepare(directory: Path, tickets: int) -> Store:
    if not (directory / "tix.yaml").exists():
        from bench.generate import generate

        t = time.perf_counter()
        generate(directory, tickets=tickets, seed=0)
        print(f"generated {tickets} tickets in {time.perf_counter() - t:.1f} s at {directory}")
    cfg = directory / "tix.yaml"
    text = cfg.read_text(encoding="utf-8")
    if "\nsla:" not in text:
        cfg.write_text(text + SLA_YAML, encoding="utf-8")
    return Store.open(directory)


def five_minutes_of_work(store: Store, at: datetime, rng: random.Random, open_numbers: list[int]) -> int:
    """About what a busy helpdesk writes in 5 minutes: 40 new tickets, 150 messages, 40 status changes."""
    n = 0
    with store.writing(actor="system", via="bench") as batch:
        for i in range(40):
            number = batch.new_ticket_number()
            ts = iso(at + timedelta(seconds=7 * i))
            batch.emit("ticket.created", ticket=number, ts=ts, data={
                "subject": "Paket belum sampai", "status": "new", "priority": rng.choice(["normal", "high", "urgent"]),
                "channel": rng.choice(["email", "whatsapp"]), "team": rng.choice(["support", "billing"])})
            batch.emit("message.received", ticket=number, ts=ts, data={"text": "halo"})
            open_numbers.append(number)
            n += 2
        for i in range(150):
            number = rng.choice(open_numbers)
            kind = "message.received" if i % 2 else "message.sent"
            batch.emit(kind, ticket=number, ts=iso(at + timedelta(seconds=2 * i)), data={"text": "..."})
            n += 1
        for i in range(40):
            number = rng.choice(open_numbers)
            status = rng.choice(["pending", "open", "resolved"])
            batch.emit("ticket.updated", ticket=number, ts=iso(at + timedelta(seconds=5 * i)),
                       data={"set": {"status": status}, "old": {}})
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--first", action="store_true", help="only the first `tix escalate` on a copy of the store")
    args = ap.parse_args()
    directory = args.dir or Path(f"/tmp/tix-bench-sla-{args.tickets}")
    store = prepare(directory, args.tickets)
    now = END + timedelta(hours=1)
    if args.first:
        first_run(directory, now)
        return

    t = time.perf_counter()
    first = escalate(store, now=now, rebuild=True)
    cold = time.perf_counter() - t
    print(f"first run (fold the whole log): {cold:.2f} s; {first.open_tickets} open tickets, "
          f"{first.clocks} clocks, {len(first.planned)} actions, {first.events_written} events written; "
          f"phases {_phases(first)}")

    rng = random.Random(1)
    con = store.connect()
    open_numbers = [r[0] for r in con.execute(
        "SELECT number FROM tickets WHERE status IN ('new', 'open', 'pending') ORDER BY number").fetchall()]
    times = []
    for i in range(args.runs):
        at = now + timedelta(minutes=5 * i)
        added = five_minutes_of_work(Store.open(directory), at, rng, open_numbers)
        store = Store.open(directory)
        t = time.perf_counter()
        rep = escalate(store, now=at + timedelta(minutes=5))
        times.append(time.perf_counter() - t)
        print(f"cron run {i + 1}: {times[-1]:.2f} s after {added} new events; {rep.open_tickets} open tickets, "
              f"{rep.clocks} clocks, {len(rep.planned)} actions, {rep.events_written} events written; "
              f"phases {_phases(rep)}")
    print(f"cron runs: median {statistics.median(times):.2f} s, max {max(times):.2f} s over {len(times)} runs")

    at = now + timedelta(minutes=5 * args.runs)
    added = five_minutes_of_work(Store.open(directory), at, rng, open_numbers)
    load = os.getloadavg()
    proc = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", sys.executable, "-m", "tix", "--store", str(directory),
                           "-v", "escalate", "--now", (at + timedelta(minutes=5)).isoformat()],
                          capture_output=True, text=True)
    wall, user, system, rss = proc.stderr.strip().splitlines()[-1].split()
    said = [line for line in proc.stdout.splitlines() if "open tickets" in line]
    print(f"`tix escalate` subprocess after {added} new events: {float(wall):.2f} s wall, "
          f"{float(user) + float(system):.2f} s CPU, peak RSS {int(rss) // 1024} MB, exit {proc.returncode}; "
          f"load average {load[0]:.1f}; {said[-1] if said else ''}")

    con = Store.open(directory).connect()
    t = time.perf_counter()
    rows = con.execute("SELECT target, count(*), avg(business_seconds_to_meet), sum(breached::INT) "
                       "FROM sla GROUP BY target ORDER BY target").fetchall()
    print(f"sla view: report query over {sum(r[1] for r in rows)} rows in {time.perf_counter() - t:.2f} s")


def first_run(directory: Path, now: datetime) -> None:
    """The first `tix escalate` on an existing store: on a copy without `snapshot/sla/`."""
    copy = directory.with_name(directory.name + "-first-escalate")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(directory, copy, symlinks=True)
    try:
        shutil.rmtree(copy / "snapshot" / "sla", ignore_errors=True)
        load = os.getloadavg()
        cmd = ["/usr/bin/time", "-f", "%e %U %S %M", sys.executable, "-m", "tix", "--store", str(copy),
               "escalate", "--now", now.isoformat()]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall, user, system, rss = proc.stderr.strip().splitlines()[-1].split()
        print(f"first `tix escalate` (no SLA state): {float(wall):.1f} s wall, {float(user) + float(system):.1f} s CPU "
              f"({user} user + {system} sys), peak RSS {int(rss) // 1024} MB, exit {proc.returncode}; "
              f"load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
        if proc.returncode:
            print(proc.stderr[-1000:])
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def _phases(rep) -> str:
    t = rep.timings
    return (f"load+fold {t['load']:.2f}, compute {t['compute'] - t['load']:.2f}, "
            f"act+save {t['act'] - t['compute']:.2f}")


if __name__ == "__main__":
    main()
