"""The idle cron cycle: `tix fetch`, `tix route`, `tix escalate` with nothing to do (issue 16, target 1).

    python bench/bench_idle.py STORE [--runs 5] [--copy] [--tix CMD]

Each command is run once first (it does whatever work there is and leaves its idle stamp,
`state/idle-COMMAND.json`), then `--runs` more times; the table shows the first run and the
median wall time and peak RSS of the idle runs (wall and RSS of the process as the kernel
accounts them, `os.wait4`). `--copy` runs on a `cp -a` copy (removed at the end): the first
runs write caches and stamps into the store. Target: each idle run under 0.25 s and 60 MB.
`--tix "python -m tix"` (the default) or e.g. a tix checked out elsewhere, to compare.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = ("fetch", "route", "escalate")


def run(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """(wall s, peak RSS MiB, exit code) of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--copy", action="store_true", help="Work on a cp -a copy of the store.")
    ap.add_argument("--tix", default=f"{sys.executable} -m tix")
    args = ap.parse_args()
    store, tmp = Path(args.store), None
    if args.copy:
        tmp = Path(tempfile.mkdtemp(prefix="tix-idle-"))
        subprocess.run(["cp", "-a", str(store), str(tmp / "store")], check=True)
        store = tmp / "store"
    env = {**os.environ, "TIX_STORE": str(store)}
    base = shlex.split(args.tix)
    try:
        print(f"store {args.store}; load average {os.getloadavg()[0]:.2f}")
        print(f"{'command':10} {'first s':>8} {'first MB':>9} {'idle s':>8} {'idle MB':>8}  target 0.25 s / 60 MB")
        for cmd in COMMANDS:
            first = run([*base, cmd], env)
            idle = [run([*base, cmd], env) for _ in range(args.runs)]
            wall = statistics.median(r[0] for r in idle)
            rss = max(r[1] for r in idle)
            met = "met" if wall < 0.25 and rss < 60 else "NOT met"
            codes = {r[2] for r in [first, *idle]}
            print(f"{cmd:10} {first[0]:8.2f} {first[1]:9.0f} {wall:8.3f} {rss:8.0f}  {met}"
                  f"{'' if codes == {0} else f'  (exit codes {sorted(codes)})'}")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
