"""Time the SLA cold fold alone (`tix.sla.coldfold.fold_log`) on an existing store.

    python bench/bench_coldfold.py --dir /work/bench-stores/1m [--history] [--runs 1]

Each run is a fresh interpreter under /usr/bin/time (wall, CPU user+sys, peak RSS), folding
the whole log as the first `tix escalate` does: from the JSON log (the default, what a store
without the reports' history cache does), or with `--history` from that cache when present.
Prints its figures and the fold's own wall time; asserts nothing. The store is only read
(DuckDB's spill directory, state/duckdb-tmp, may be created).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import sys, time
from tix.store import Store
from tix.sla.coldfold import fold_log
store = Store.open(sys.argv[1])
t = time.perf_counter(); c = time.process_time()
table, pos, seq = fold_log(store, history=sys.argv[2] == "1")
print(f"{time.perf_counter() - t:.2f} {time.process_time() - c:.2f} {table.num_rows} {seq}")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--history", action="store_true", help="let the fold read the history cache")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    for i in range(args.runs):
        load = os.getloadavg()
        proc = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", sys.executable, "-c", CHILD, str(args.dir),
                               "1" if args.history else "0"], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            print(proc.stderr[-2000:])
            sys.exit(1)
        wall, user, system, rss = proc.stderr.strip().splitlines()[-1].split()
        fold_wall, fold_cpu, rows, seq = proc.stdout.split()
        print(f"run {i + 1}: fold_log {float(fold_wall):.2f} s wall, {float(fold_cpu):.2f} s CPU; process "
              f"{float(wall):.2f} s wall, {float(user) + float(system):.2f} s CPU ({user} user + {system} sys), "
              f"peak RSS {int(rss) // 1024} MB; {rows} tracks up to seq {seq}; "
              f"load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
