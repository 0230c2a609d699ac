"""Foundation benchmarks: `tix --help`, `tix list` with a filter, `tix update` of 100k tickets, `tix rebuild`.

    python bench/generate.py /tmp/tix-bench --tickets 1000000
    python bench/bench_store.py /tmp/tix-bench

Each figure is the wall time of the real command in a subprocess (what a user or cron
sees), best of a few runs where the command does not change the store, with the peak RSS.
The update runs set a custom field on tickets 1..100000 and clear it again (200k events).
Targets (2 cores, 1M tickets / 10M events): list < 0.5 s, update of 100k < 3 s,
rebuild < 30 s, --help < 0.2 s. Issue 16: `tix update --ids -` of 100k < 1.5 s and 300 MB,
rebuild < 30 s and 1 GB; ratios to a bare DuckDB query: bench_growth.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def run(store: Path, *args: str, stdin: str | None = None) -> tuple[float, float, str]:
    env = dict(os.environ, TIX_STORE=str(store))
    cmd = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "tix", *args]
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, input=stdin)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    rss_mb = int(proc.stderr.strip().splitlines()[-1]) / 1024
    return elapsed, rss_mb, proc.stdout


def best(store: Path, n: int, *args: str) -> tuple[float, float, str]:
    runs = [run(store, *args) for _ in range(n)]
    return min(runs, key=lambda r: r[0])


def main() -> None:
    store = Path(sys.argv[1])
    rows = []
    t, rss, _ = best(store, 5, "--help")
    rows.append(("tix --help", t, rss, "< 0.2 s"))
    count = best(store, 1, "sql", "SELECT count(*) AS n FROM tickets", "-f", "csv")[2].split()[-1]
    events = best(store, 1, "sql", "SELECT max(seq) AS n FROM events", "-f", "csv")[2].split()[-1]
    t, rss, out = best(store, 3, "list", "status:open", "team:billing", "age:>3d", "-tag:vip", "--limit", "50")
    rows.append(("tix list status:open team:billing age:>3d -tag:vip --limit 50", t, rss, "< 0.5 s"))
    t, rss, _ = best(store, 3, "list", "priority:urgent", "refund", "--all", "--limit", "20", "-f", "json")
    rows.append(("tix list priority:urgent refund --all --limit 20 -f json", t, rss, "< 0.5 s"))
    for value in ("tokopedia", ""):
        t, rss, out = run(store, "update", "number:<=100000", "--set", f"marketplace={value}", "--yes")
        rows.append((f"tix update number:<=100000 --set marketplace={value} --yes ({out.strip()} changed)",
                     t, rss, "< 3 s"))
    ids = "\n".join(str(n) for n in range(1, 100001))
    for value in ("low", "high"):  # issue 16: 100k numbers on stdin, every ticket changed
        t, rss, out = run(store, "update", "--ids", "-", "--set", f"priority={value}", "--yes", stdin=ids)
        rows.append((f"tix update --ids - --set priority={value} --yes (100k numbers)", t, rss, "< 1.5 s, 300 MB"))
    t, rss, out = run(store, "list", "status:open", "team:billing", "--limit", "50")
    rows.append(("tix list status:open team:billing (after update)", t, rss, "< 0.5 s"))
    t, rss, _ = run(store, "rebuild")
    rows.append(("tix rebuild", t, rss, "< 30 s, 1 GB"))
    print(f"store: {store} ({count} tickets, {events} events), python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"{'command':<78} {'seconds':>8} {'peak MB':>8}  target")
    for name, t, rss, target in rows:
        print(f"{name:<78} {t:>8.3f} {rss:>8.0f}  {target}")


if __name__ == "__main__":
    main()
