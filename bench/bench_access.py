"""What roles and `audit_reads: true` cost a read (issue 14: under 10 ms extra per read).

    python bench/bench_access.py /tmp/tix-bench-access [ROUNDS] [TICKETS]

(The store is created with TICKETS tickets, default 10,000, each with a customer and a
message, through the store's own batch, if the directory does not exist yet.)

Runs `tix show N` in this process (as tix.cli.main runs it, output to /dev/null), in
alternating blocks, on the same store with four configurations: no logins declared and no
access log (as before issue 14); logins declared (the identity and permission check);
logins and `audit_reads: true`; and the access log alone. Prints the median and 90th
percentile of each, the extra cost against the first, and the time spent in the check and
the access log line alone (tix.cli.common.authorize, timed around the call). A subprocess per read would add
~0.5 s of interpreter start to every figure and hide a difference of milliseconds.
The store's tix.yaml is restored afterwards; the access log it wrote is removed.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

LOGINS = "  {agent}:\n    login: {login}\n    role: admin\n"


def _variants(text: str) -> dict[str, str]:
    import pwd

    audited = text.replace("settings:\n", "settings:\n  audit_reads: true\n", 1)
    me = pwd.getpwuid(os.getuid()).pw_name
    def logins(t):
        return t.replace("agents:\n", "agents:\n" + LOGINS.format(agent="bench-admin", login=me), 1)
    return {"before (no logins, no log)": text, "roles": logins(text), "roles + audit_reads": logins(audited),
            "audit_reads alone": audited}


CHECK: list[float] = []  # time spent in the permission check and the access log, per read


def _timed_authorize():
    """Wrap tix.cli.common.authorize (the identity, the permission check and the access log line)
    to time it alone: the end-to-end figures on a shared machine vary by more than it costs."""
    from tix.cli import common

    inner = common.authorize

    def authorize(store):
        t = time.perf_counter()
        try:
            return inner(store)
        finally:
            CHECK.append(time.perf_counter() - t)

    common.authorize = authorize


def _show(number: int) -> float:
    from tix.cli import main

    argv = sys.argv
    sys.argv = ["tix", "show", str(number)]
    t = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            main()
    except SystemExit as exc:
        if exc.code:
            raise RuntimeError(f"tix show {number} exited {exc.code}") from None
    finally:
        sys.argv = argv
    return time.perf_counter() - t


def create(path: Path, tickets: int) -> None:
    from tix.store import Store
    from tix.tickets.contacts import ContactIndex, find_or_create_contact
    from tix.tickets.core import create_ticket

    store = Store.init(path)
    with store.writing(actor="user:bench", via="bench") as batch:
        index = ContactIndex.load(batch.reader)
        for i in range(1, tickets + 1):
            contact = find_or_create_contact(batch, index, name=f"Pelanggan {i}", email=f"pelanggan{i}@example.com")
            create_ticket(batch, f"Pesanan INV-{i:05d} belum sampai", contact=contact,
                          team=("billing", "support", "shipping")[i % 3],
                          body=f"Halo, pesanan INV-{i:05d} saya belum sampai. Nomor saya 0812{i:07d}.")
    store.rebuild()


def main() -> None:
    store = Path(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    if not store.exists():
        create(store, int(sys.argv[3]) if len(sys.argv) > 3 else 10000)
    os.environ["TIX_STORE"] = str(store)
    cfg = store / "tix.yaml"
    original = cfg.read_text()
    variants = _variants(original)
    times: dict[str, list[float]] = {k: [] for k in variants}
    checks: dict[str, list[float]] = {k: [] for k in variants}
    _timed_authorize()
    try:
        _show(1)  # warm: imports, snapshot files in the page cache
        for r in range(rounds):
            for name, text in (list(variants.items())[::-1] if r % 2 else variants.items()):  # no order bias
                cfg.write_text(text)
                for i in range(20):
                    times[name].append(_show(1 + (r * 20 + i) * 37 % 1000))
                    checks[name].append(CHECK[-1])
    finally:
        cfg.write_text(original)
        shutil.rmtree(store / "access", ignore_errors=True)
    base = statistics.median(times["before (no logins, no log)"])
    print(f"tix show, in process, {rounds * 20} reads per configuration ({store})")
    for name, ts in times.items():
        ts = sorted(ts)
        med, p90 = statistics.median(ts), ts[int(len(ts) * 0.9)]
        chk = sorted(checks[name])
        print(f"  {name:28s} median {med * 1000:7.2f} ms   p90 {p90 * 1000:7.2f} ms   "
              f"extra {1000 * (med - base):+6.2f} ms   check+log: median {statistics.median(chk) * 1000:5.2f} ms, "
              f"p90 {chk[int(len(chk) * 0.9)] * 1000:5.2f} ms")
    from tix import accesslog
    from tix.access import Identity
    from tix.store import Store

    s, ident = Store(store), Identity("bench", "admin")
    n = 2000
    t = time.perf_counter()
    for i in range(n):
        accesslog.record(s, ident, "show", {"number": str(i)})
    per = (time.perf_counter() - t) / n
    shutil.rmtree(store / "access", ignore_errors=True)
    print(f"  accesslog.record alone: {per * 1e6:.0f} µs per line ({n} lines)")


if __name__ == "__main__":
    main()
