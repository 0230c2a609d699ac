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

The cron commands (`--cron`, target 6: nothing run from cron may grow with the store when
the work is small): `tix fetch`, `tix route` and `tix escalate` on a store whose
tix.yaml gets a maildir source and bench_sla.py's calendars and SLA policies: each once (the
first run, a one-time cost), then idle (median of --runs), then a small cycle, 50 new emails
fetched, routed and escalated (the median of --runs cycles, each with 50 new messages).

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


def run(cmd: list[str], env: dict, stdin: bytes | None = None, ok=(0,)) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one process; an exit status not in `ok` stops the bench."""
    import time

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) not in ok:
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
    ap.add_argument("--cron", action="store_true", help="also the cron commands: first, idle, 50 new emails")
    ap.add_argument("--only-cron", action="store_true", help="just the cron commands")
    ap.add_argument("--tix", help="the command that runs tix (default: this python -m tix), e.g. another "
                                  "checkout's, to compare before and after")
    args = ap.parse_args()
    if args.tix:
        import shlex

        TIX[:] = shlex.split(args.tix)
    # An installed tix has its bytecode compiled (pip does it); a checkout run with
    # PYTHONDONTWRITEBYTECODE set would compile ~50 modules on every run (~0.1 s).
    if not args.tix:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parent.parent / "tix")],
                       check=False, stdout=subprocess.DEVNULL)
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
            if args.cron or args.only_cron:
                cron_rows(work, env, size, args.runs, table)
            if args.only_cron:
                continue
            # (read again: the cron commands' writes may have folded the snapshot into a new base)
            parquet = str(work / "snapshot" / orjson.loads((work / "snapshot" / "meta.json").read_bytes())["tickets"])
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


def cron_rows(work: Path, env: dict, size: str, runs: int, table: dict) -> None:
    """First, idle and small-cycle figures of fetch, route and escalate on the store copy `work`
    (given a maildir source and a local SMTP server that takes every message)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.plugins.email import SmtpServer

    smtp = SmtpServer().start()  # auto-replies are sent (a failing send is work again next run)
    maildir = work.parent / "maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    with open(work / "tix.yaml", "a") as fh:
        fh.write(f"\nchannels:\n  - name: bench\n    type: maildir\n    path: {maildir}\n"
                 f"    after: seen\n    address: support@toko.example\n    team: support\n"
                 f"outbound:\n  host: 127.0.0.1\n  port: {smtp.port}\n  security: plain\n"
                 f"  from: \"Toko Support <support@toko.example>\"\n")
        # bench_sla's calendars and policies (read, not imported: this process's RSS at the fork
        # shows in each command's peak, and bench_sla imports tix's SLA modules): without a
        # policy, `tix escalate` computes nothing (it used to fold the log all the same, which
        # is what this table showed until then)
        fh.write("\n" + (Path(__file__).resolve().parent / "sla.yaml").read_text(encoding="utf-8"))
    try:
        _cron_runs(maildir, env, size, runs, table)
    finally:
        smtp.stop()


def _cron_runs(maildir: Path, env: dict, size: str, runs: int, table: dict) -> None:
    import random

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_email import make_message

    cmds = ("fetch", "route", "escalate")

    def put(name: str, figures: list[tuple[float, float, float]], target: str) -> None:
        wall = statistics.median(f[0] for f in figures)
        cpu = statistics.median(f[1] for f in figures)
        table.setdefault(name, {})[size] = f"{wall:5.2f}s {cpu:5.2f}c {max(f[2] for f in figures):4.0f}M"
        table[name]["target"] = target

    for cmd in cmds:  # exit 1 allowed: the generated rules include WhatsApp auto-replies, and the
        # generated tix.yaml has no whatsapp: section (those rules fail, one line per ticket)
        put(f"tix {cmd}, first run on the store", [run(tix(cmd), env, ok=(0, 1))], "once")
    for _ in range(2):  # again: a later command's writes (a sent auto-reply) left earlier stamps stale
        for cmd in cmds:
            run(tix(cmd), env, ok=(0, 1))
    for cmd in cmds:
        put(f"tix {cmd}, nothing to do", [run(tix(cmd), env, ok=(0, 1)) for _ in range(runs)], "< 0.25 s, 60 MB")
    rng = random.Random(16)
    cycle: dict[str, list] = {c: [] for c in cmds}
    for r in range(runs):
        for i in range(50):
            (maildir / "new" / f"{r:02d}{i:03d}.bench").write_bytes(make_message(r * 50 + i, rng))
        for cmd in cmds:
            cycle[cmd].append(run(tix(cmd), env, ok=(0, 1)))
    for cmd in cmds:
        put(f"tix {cmd}, after 50 new emails", cycle[cmd], "flat in store size")


if __name__ == "__main__":
    main()
