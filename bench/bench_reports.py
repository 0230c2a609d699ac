"""Benchmark the reports end to end on a synthetic store (bench/generate.py).

    python bench/bench_reports.py [STORE] [--tickets 1000000] [--runs 3]

Creates the store with `generate(STORE, tickets=N)` when it does not exist yet, builds the
ticket history cache the reports read (tix.store.history; printed: the one-time cost after an
upgrade, later kept up to date by the writers), then runs the real CLI in a subprocess (`tix
report weekly --format html --out …`, `tix report backlog`, and the other built-ins as text)
and prints, for each, the best and median wall time over the runs and the peak memory (max
RSS) of the process. Then it times each section of the weekly report in-process, to show
where the time goes. `--sla` adds two SLA policies (office calendar with Indonesian holidays)
to the store's tix.yaml first, so that the reports compute clocks too.

Targets (issue 6): weekly HTML < 2 s, backlog < 0.5 s, memory < 1 GiB, at 1M tickets.
Issue 16: backlog within 2x of a bare DuckDB query of the snapshot (printed), weekly HTML < 1.2 s.
Issue 20: the weekly report stays within its time before the history was read.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def run_cli(store: Path, *args: str) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, max RSS in MiB) of one `tix` process."""
    env = dict(os.environ, TIX_STORE=str(store))
    t0 = time.perf_counter()
    pid = subprocess.Popen([sys.executable, "-m", "tix", *args], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    _, status, usage = os.wait4(pid.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"tix {' '.join(args)} failed: {pid.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def bench(store: Path, label: str, args: list[str], runs: int) -> None:
    results = [run_cli(store, *args) for _ in range(runs)]
    walls = [w for w, _, _ in results]
    cpu = min(c for _, c, _ in results)
    rss = max(m for _, _, m in results)
    print(f"{label:<34} best {min(walls):6.2f} s   median {statistics.median(walls):6.2f} s   "
          f"CPU {cpu:5.2f} s   max RSS {rss:5.0f} MiB   (load {os.getloadavg()[0]:.1f})")


def yardstick(store: Path, args: list[str], runs: int) -> None:
    """Issue 16: the report beside a bare `python -c` DuckDB query of the snapshot's Parquet, in
    turn (A B A B …); the median of the pairs' CPU ratios (the target: within 2x)."""
    import orjson

    meta = orjson.loads((store / "snapshot" / "meta.json").read_bytes())
    parquet = str(store / "snapshot" / meta["tickets"])
    code = ("import duckdb, sys; print(duckdb.sql(\"SELECT team, count(*) FROM read_parquet('\" + sys.argv[1] + "
            "\"') WHERE status IN ('new', 'open', 'pending') GROUP BY team\").fetchall())")
    pairs = []
    for _ in range(runs):
        a = run_cli(store, *args)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code, parquet], stdout=subprocess.DEVNULL)
        _, _, usage = os.wait4(proc.pid, 0)
        pairs.append((a, (time.perf_counter() - t0, usage.ru_utime + usage.ru_stime)))
    ratio = statistics.median(a[1] / b[1] for a, b in pairs)
    print(f"  {'tix ' + ' '.join(args):<32} / bare DuckDB query: CPU x{ratio:.2f} (median of {runs} pairs; "
          f"wall x{statistics.median(a[0] / b[0] for a, b in pairs):.2f})   (load {os.getloadavg()[0]:.1f})")


def sections(store_path: Path) -> None:
    from tix.reports import run_report
    from tix.reports import run as runmod
    from tix.store import Store

    from tix.store import history

    store = Store.open(store_path)
    t0 = time.perf_counter()
    reader = store.read()
    con = reader.connect()
    print(f"  connect (views)                 {time.perf_counter() - t0:6.3f} s")
    t0 = time.perf_counter()
    history.register(con, store, upto=reader.end)
    print(f"  history views                   {time.perf_counter() - t0:6.3f} s")
    original = runmod._run_section
    timings = []

    def timed(con, report, section, *a):
        t = time.perf_counter()
        out = original(con, report, section, *a)
        timings.append((section.name, time.perf_counter() - t))
        return out

    runmod._run_section = timed
    try:
        t0 = time.perf_counter()
        result = run_report(store, "weekly")
        total = time.perf_counter() - t0
    finally:
        runmod._run_section = original
    for name, secs in timings:
        print(f"  section {name:<24}{secs:6.3f} s")
    print(f"  run_report weekly total         {total:6.3f} s")
    import io

    from tix.reports import render

    t0 = time.perf_counter()
    render(result, "html", io.StringIO())
    print(f"  render html (charts included)   {time.perf_counter() - t0:6.3f} s")


SLA_YAML = """
calendars:
  office:
    timezone: Asia/Jakarta
    hours:
      mon-fri: ["08:00-12:00", "13:00-17:00"]
      sat: ["09:00-13:00"]
    holidays: {country: ID}
sla:
  policies:
    - name: urgent
      when: {priority: [urgent, high]}
      targets: {first_response: 1h, next_response: 2h, resolution: 8h}
    - name: normal
      calendar: office
      targets: {first_response: 8h, next_response: 8h, resolution: 40h}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store", nargs="?", default=str(Path(tempfile.gettempdir()) / "tix-bench-1m"))
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sla", action="store_true", help="add SLA policies to the store's tix.yaml (once)")
    args = ap.parse_args()
    store = Path(args.store)
    if not (store / "tix.yaml").exists():
        from bench.generate import generate

        t0 = time.perf_counter()
        generate(store, tickets=args.tickets, seed=0)
        print(f"generated {args.tickets} tickets in {time.perf_counter() - t0:.0f} s at {store}")
    if args.sla:
        cfg = store / "tix.yaml"
        if "\nsla:" not in cfg.read_text():
            with open(cfg, "a", encoding="utf-8") as fh:
                fh.write(SLA_YAML)
    from tix.store import Store
    from tix.store.history import History

    h = History(Store.open(store))
    if h.meta() is None:
        t0 = time.perf_counter()
        h.build()
        print(f"history cache built in {time.perf_counter() - t0:.1f} s (once; writers keep it up to date)")
    out = Path(tempfile.mkdtemp()) / "weekly.html"
    print(f"store {store}  (python {sys.version.split()[0]}, {os.cpu_count()} cores)")
    bench(store, "tix report weekly --format html", ["report", "weekly", "--format", "html", "--out", str(out)],
          args.runs)
    bench(store, "tix report backlog", ["report", "backlog"], args.runs)
    yardstick(store, ["report", "backlog"], args.runs)
    for name in ("response-times", "volume", "agents", "sla"):
        bench(store, f"tix report {name}", ["report", name], args.runs)
    bench(store, "tix report weekly --format json", ["report", "weekly", "--format", "json"], args.runs)
    print(f"weekly.html: {out.stat().st_size / 1024:.0f} KiB")
    print("weekly, in-process:")
    sections(store)


if __name__ == "__main__":
    main()
