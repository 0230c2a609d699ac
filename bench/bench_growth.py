"""How each command's cost grows with the store: a table at several store sizes, with a yardstick.

    python bench/generate.py /tmp/tix-10k --tickets 10000      (and 100000, 1000000)
    python bench/bench_growth.py /tmp/tix-10k /tmp/tix-100k [/tmp/tix-1m] [--runs 3] [--skip-rebuild] [--tix CMD]

Each store is copied first (`cp -a`: the commands write caches, an update writes events) and
the copy removed at the end. For each command: the median wall and CPU seconds (the process
and its children, as the kernel accounts them) and the peak RSS over the runs. Read-only
commands are run against the yardstick side by side (A B A B …), a bare `python -c` that
imports DuckDB and runs one query over the snapshot's Parquet (what the query itself costs,
without tix); the ratio is the median of the pairs' CPU ratios (CPU, not wall: on a shared,
busy machine the wall time says more about the neighbours than about the command).

Targets (issue 16): backlog within 2x the yardstick, `tix list` with a filter within 1.5x,
weekly HTML under 1.2 s, `tix update --ids -` of 100k tickets under 1.5 s and 300 MB,
rebuild of 1M tickets under 30 s and 1 GB.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

YARDSTICK = ("import duckdb, sys; print(duckdb.sql(\"SELECT team, count(*) FROM read_parquet('\" + sys.argv[1] + "
             "\"') WHERE status IN ('new', 'open', 'pending') GROUP BY team\").fetchall())")


def run(cmd: list[str], env: dict, stdin: bytes | None = None) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one process."""
    import time

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-1500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


TIX = [sys.executable, "-m", "tix"]


def tix(*args: str) -> list[str]:
    return [*TIX, *args]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stores", nargs="+")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-rebuild", action="store_true", help="leave out `tix rebuild` (minutes at 1M)")
    ap.add_argument("--tix", help="the command that runs tix (default: this python -m tix), e.g. another "
                                  "checkout's, to compare before and after")
    args = ap.parse_args()
    if args.tix:
        import shlex

        TIX[:] = shlex.split(args.tix)
    table: dict[str, dict[str, str]] = {}
    sizes = []
    for src in args.stores:
        work = Path(tempfile.mkdtemp(prefix="tix-growth-")) / "store"
        subprocess.run(["cp", "-a", src, str(work)], check=True)
        env = dict(os.environ, TIX_STORE=str(work), TIX_NOW="2026-11-23T17:00:00Z")
        try:
            meta = orjson.loads((work / "snapshot" / "meta.json").read_bytes())
            size = f"{meta['max_ticket'] // 1000}k"
            sizes.append(size)
            parquet = str(work / "snapshot" / meta["tickets"])
            run(tix("report", "backlog"), env)  # builds the history cache once (a one-time cost)
            yard = [sys.executable, "-c", YARDSTICK, parquet]
            reads = [
                ("tix list status:open team:billing age:>3d -tag:vip",
                 tix("list", "status:open", "team:billing", "age:>3d", "-tag:vip"), "1.5x"),
                ("tix report backlog", tix("report", "backlog"), "2x"),
                ("tix report weekly --format json", tix("report", "weekly", "--format", "json"), ""),
                ("tix report weekly --format html", tix("report", "weekly", "--format", "html"), "< 1.2 s"),
            ]
            for name, cmd, target in reads:
                pairs = [(run(cmd, env), run(yard, env)) for _ in range(args.runs)]
                wall = statistics.median(a[0] for a, _ in pairs)
                cpu = statistics.median(a[1] for a, _ in pairs)
                rss = max(a[2] for a, _ in pairs)
                ratio = statistics.median(a[1] / b[1] for a, b in pairs)
                table.setdefault(name, {})[size] = f"{wall:5.2f}s {cpu:5.2f}c {rss:4.0f}M x{ratio:.2f}"
                table[name]["target"] = target
            n = min(100000, meta["max_ticket"])
            ids = "\n".join(map(str, range(1, n + 1))).encode()
            walls = []
            for i in range(args.runs):  # alternate values: every run changes every ticket
                walls.append(run(tix("update", "--ids", "-", "--set", f"priority={('low', 'high')[i % 2]}", "--yes"),
                                 env, ids))
            wall, cpu = statistics.median(w for w, _, _ in walls), statistics.median(c for _, c, _ in walls)
            row = table.setdefault(f"tix update --ids - ({n // 1000}k tickets)", {})
            row[size] = f"{wall:5.2f}s {cpu:5.2f}c {max(m for _, _, m in walls):4.0f}M"
            row["target"] = "< 1.5 s, 300 MB (100k)"
            if not args.skip_rebuild:
                w, c, m = run(tix("rebuild"), env)
                table.setdefault("tix rebuild", {})[size] = f"{w:5.2f}s {c:5.2f}c {m:4.0f}M"
                table["tix rebuild"]["target"] = "< 30 s, 1 GB (1M)"
        finally:
            shutil.rmtree(work.parent, ignore_errors=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
          f"(wall s, CPU s, peak MiB, x = CPU ratio to the yardstick)")
    print(f"{'command':<52}" + "".join(f"{s:>30}" for s in sizes) + "  target")
    for name, row in table.items():
        print(f"{name:<52}" + "".join(f"{row.get(s, ''):>30}" for s in sizes) + f"  {row.get('target', '')}")


if __name__ == "__main__":
    main()
