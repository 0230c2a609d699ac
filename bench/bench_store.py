"""Foundation benchmarks: `tix --help`, `tix list` with a filter, `tix update` of 100k tickets, `tix rebuild`.

    python bench/generate.py /tmp/tix-bench --tickets 1000000
    python bench/bench_store.py /tmp/tix-bench

Each figure is the wall time of the real command in a subprocess (what a user or cron
sees), best of a few runs where the command does not change the store, with the peak RSS.
The update runs set a custom field on tickets 1..100000 and clear it again (200k events).
Targets (2 cores, 1M tickets / 10M events): list < 0.5 s, update of 100k < 3 s,
rebuild < 30 s, --help < 0.2 s. Issue 16: `tix update --ids -` of 100k < 1.5 s and 300 MB,
rebuild < 30 s and 1 GB; ratios to a bare DuckDB query: bench_growth.py.
CPU is user + sys of the same run. `--ids-only`: just the list, the two `--ids` updates and
the list right after them (what a reader pays for the update), without the rest.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def run(store: Path, *args: str, stdin: str | None = None) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS MB, stdout) of `tix ARGS` in a new process."""
    env = dict(os.environ, TIX_STORE=str(store))
    cmd = ["/usr/bin/time", "-f", "%M %U %S", sys.executable, "-m", "tix", *args]
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, input=stdin)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    rss_kb, user, system = proc.stderr.strip().splitlines()[-1].split()
    return elapsed, float(user) + float(system), int(rss_kb) / 1024, proc.stdout


def best(store: Path, n: int, *args: str) -> tuple[float, float, float, str]:
    runs = [run(store, *args) for _ in range(n)]
    return min(runs, key=lambda r: r[0])


LIST = ("list", "status:open", "team:billing", "age:>3d", "-tag:vip", "--limit", "50")


def main() -> None:
    store = Path(sys.argv[1])
    ids_only = "--ids-only" in sys.argv[2:]
    rows = []
    load = [os.getloadavg()[0]]
    if not ids_only:
        rows.append(("tix --help", *best(store, 5, "--help")[:3], "< 0.2 s"))
    count = best(store, 1, "sql", "SELECT count(*) AS n FROM tickets", "-f", "csv")[3].split()[-1]
    events = best(store, 1, "sql", "SELECT max(seq) AS n FROM events", "-f", "csv")[3].split()[-1]
    rows.append(("tix " + " ".join(LIST), *best(store, 3, *LIST)[:3], "< 0.5 s"))
    if not ids_only:
        rows.append(("tix list priority:urgent refund --all --limit 20 -f json",
                     *best(store, 3, "list", "priority:urgent", "refund", "--all", "--limit", "20", "-f", "json")[:3],
                     "< 0.5 s"))
        for value in ("tokopedia", ""):
            t, cpu, rss, out = run(store, "update", "number:<=100000", "--set", f"marketplace={value}", "--yes")
            rows.append((f"tix update number:<=100000 --set marketplace={value} --yes ({out.strip()} changed)",
                         t, cpu, rss, "< 3 s"))
    ids = "\n".join(str(n) for n in range(1, 100001))
    for value in ("low", "high"):  # issue 16: 100k numbers on stdin, every ticket changed
        t, cpu, rss, out = run(store, "update", "--ids", "-", "--set", f"priority={value}", "--yes", stdin=ids)
        rows.append((f"tix update --ids - --set priority={value} --yes (100k numbers)", t, cpu, rss,
                     "< 1.5 s, 300 MB"))
        rows.append((f"  then tix {' '.join(LIST)}", *run(store, *LIST)[:3], "< 0.5 s"))
    load.append(os.getloadavg()[0])
    if not ids_only:
        rows.append(("tix rebuild", *run(store, "rebuild")[:3], "< 30 s, 1 GB"))
    print(f"store: {store} ({count} tickets, {events} events), python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores, load average {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"{'command':<78} {'seconds':>8} {'CPU s':>6} {'peak MB':>8}  target")
    for name, t, cpu, rss, target in rows:
        print(f"{name:<78} {t:>8.3f} {cpu:>6.2f} {rss:>8.0f}  {target}")


if __name__ == "__main__":
    main()
