"""Kill -9 harness: every writing command is all-or-nothing, and a rerun finishes the job.

    python bench/bench_crash.py [--tickets 20000] [--kills 10] [--commands update,route,...] [--seed 1]

For each command (`update`, `route`, `escalate`, `rebuild`, `refresh`) it builds one store
(tickets with customer messages, rules, SLA policies whose steps change tickets), runs the
command once unkilled on a copy (the reference), then on fresh copies, again and again:
start the command as a real process, SIGKILL it at a random moment of its run, look at the
store as a reader sees it, run the command again to the end, and compare with the
reference ticket for ticket (every column but the seq bookkeeping) and event for event
(each (type, ticket, via, data) as many times as in the reference: nothing doubled). It
prints, per command, how many kills landed while the process was running and what the
readers saw right after each: the state before, the reference's (all committed), or one
in between (a command that commits in steps: each step is whole), and how many temp files
the kills left (`temps`: all gone after the next run, or the trial fails). The suite runs
the same harness with a few kills per command (tests/test_store_atomic_kill.py).

TIX_NOW is fixed, so a rerun writes the same times as the reference.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NOW = "2026-11-24T09:00:00Z"

RULES = """
- name: tagihan
  if: {text: {keywords: [invoice, tagihan]}}
  then:
    - set: {team: billing, category: pembayaran}
    - tag: [tagihan]
- name: kirim
  if: {text: {keywords: [paket, kirim]}}
  then:
    - set: {team: shipping, category: pengiriman}
- name: tugaskan
  when: any
  if: {ticket.assignee: {empty: true}}
  then:
    - assign: {team: support, strategy: round_robin}
"""

SLA = """
calendars:
  always:
    timezone: Asia/Jakarta
    hours: 24/7
    holidays: false
sla:
  policies:
    - name: urgent
      when: {priority: urgent}
      calendar: always
      targets: {first_response: 1h, resolution: 8h}
      steps:
        - {name: breach, on: breached, tag: sla-breached, team: billing}
    - name: normal
      calendar: always
      targets: {first_response: 8h, resolution: 40h}
      steps:
        - {name: breach, on: breached, targets: [first_response], raise_priority: true, assignee: ani}
"""

REFRESH = ("import sys; from tix.store import Store; s = Store(sys.argv[1]); "
           "s.refresh_snapshot()")

COMMANDS = {
    "update": ["-m", "tix", "update", "number>0", "--set", "fields.order_id=X1", "--add-tag", "bulk1",
               "--note", "n1", "--yes"],
    "route": ["-m", "tix", "route"],
    "escalate": ["-m", "tix", "escalate"],
    "rebuild": ["-m", "tix", "rebuild"],
    "refresh": ["-c", REFRESH, "{store}"],
}
# Commands a rerun of which after they finished is a no-op. `tix update --note` adds its note
# again when run twice (as any command asked twice does): after a kill that came once it had
# committed, the next run is another writer (`tix rebuild`), which must find the store whole.
IDEMPOTENT = {"route", "escalate", "rebuild", "refresh"}
# Bookkeeping columns that hold seqs: a command that commits in steps and is rerun numbers
# its events differently from an unkilled run, and nothing else.
SEQ_COLUMNS = ("last_seq", "routed_seq")
SUBJECTS = ("Invoice belum dibayar", "Paket belum sampai", "Tidak bisa login", "Tagihan ganda", "Kirim ulang")


def build_base(root: Path, tickets: int, seed: int = 1) -> Path:
    """A store with `tickets` open tickets, each with a customer message a day before NOW."""
    from datetime import datetime, timezone

    from tix.store import Store
    from tix.store.log import iso, parse_ts

    rng = random.Random(seed)
    shutil.rmtree(root, ignore_errors=True)
    store = Store.init(root)
    text = (root / "tix.yaml").read_text(encoding="utf-8")
    (root / "tix.yaml").write_text(text + SLA, encoding="utf-8")
    for old in (root / "rules").glob("*.yaml"):
        old.unlink()
    (root / "rules" / "10-crash.yaml").write_text(RULES, encoding="utf-8")
    store = Store(root)
    start = parse_ts(NOW).timestamp() - 86400
    with store.writing(actor="channel:email", via="bench") as batch:
        for i in range(tickets):
            number = batch.new_ticket_number()
            when = iso(datetime.fromtimestamp(start + i * 60000 / max(tickets, 1), timezone.utc))
            subject = SUBJECTS[rng.randrange(len(SUBJECTS))]
            batch.emit("ticket.created", ticket=number, ts=when, data={
                "subject": subject, "status": "new", "channel": "email",
                "priority": "urgent" if rng.random() < 0.2 else "normal"})
            batch.emit("message.received", ticket=number, ts=when, data={
                "channel": "email", "from": f"c{i}@example.com", "subject": subject, "text": subject + " tolong"})
            if i % 20000 == 19999:
                batch.flush()
    store.refresh_snapshot()
    return root


def env_for(store: Path) -> dict:
    return dict(os.environ, TIX_STORE=str(store), TIX_NOW=NOW, TIX_LOCK_TIMEOUT="60")


def start(store: Path, command: str) -> subprocess.Popen:
    args = [a.replace("{store}", str(store)) for a in COMMANDS[command]]
    return subprocess.Popen([sys.executable, *args], env=env_for(store), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run(store: Path, command: str, timeout: float = 900) -> tuple[int, str, float]:
    t = time.perf_counter()
    proc = start(store, command)
    _out, err = proc.communicate(timeout=timeout)
    return proc.returncode, err, time.perf_counter() - t


def fingerprint(root: Path) -> dict:
    """What a reader sees: tickets (seq columns left out), and the events as a multiset."""
    from tix.store import Store

    store = Store(root)
    con = store.connect()
    cur = con.execute("SELECT * FROM tickets ORDER BY number")
    names = [d[0] for d in cur.description]
    keep = [i for i, n in enumerate(names) if n not in SEQ_COLUMNS]
    tickets = [tuple(row[i] for i in keep) for row in cur.fetchall()]
    events = Counter()
    for ev, _pos in store.log.read():
        events[(ev["type"], ev.get("ticket"), ev.get("via"), orjson.dumps(ev.get("data"),
                                                                        option=orjson.OPT_SORT_KEYS))] += 1
    con.close()
    try:
        from tix.store.snapshot import release_leases
    except ImportError:  # the harness run against code from before leases
        return {"tickets": tickets, "events": events}
    release_leases(root)
    return {"tickets": tickets, "events": events}


def leftovers(root: Path) -> list[str]:
    """Temp files a killed writer left that the next writer should have removed."""
    found = [*root.glob("state/tail-*.jsonl"), *root.glob("snapshot/*.tmp"), *root.glob("snapshot/.*.tmp"),
             *root.glob("state/.*.tmp")]
    return [str(p.relative_to(root)) for p in found]


@dataclass
class Outcomes:
    command: str
    reference_s: float = 0.0
    kills: int = 0  # the process was still running when killed
    finished: int = 0  # it had already finished
    seen: Counter = field(default_factory=Counter)  # before / all / step(s) committed
    rerun_ok: int = 0
    temp_left: int = 0  # temp files the kills left (the next writer removes them)
    failures: list[str] = field(default_factory=list)


def trial(base: Path, work: Path, command: str, delay: float, ref: dict, before: dict, out: Outcomes) -> None:
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base, work)
    proc = start(work, command)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        out.kills += 1
    else:
        out.finished += 1
    proc.communicate()
    out.temp_left += len(leftovers(work))
    seen = fingerprint(work)
    if command in ("rebuild", "refresh") and seen == ref == before:
        out.seen["same state (a cache)"] += 1
    elif seen == before:
        out.seen["state before"] += 1
    elif seen == ref:
        out.seen["all committed"] += 1
    else:
        out.seen["committed steps"] += 1
        if command in ("update", "route"):  # one batch each: nothing in between may show
            out.failures.append(f"{command}: readers saw a partial batch after a kill at {delay:.2f} s")
    again = command if command in IDEMPOTENT or seen == before else "rebuild"
    rc, err, _t = run(work, again)
    after = fingerprint(work)
    left = leftovers(work)
    if rc != 0:
        out.failures.append(f"{command}: rerun exited {rc}: {err.strip()[-300:]}")
    elif after != ref:
        diff = _diff(after, ref)
        out.failures.append(f"{command}: after a kill at {delay:.2f} s and a rerun the store differs: {diff}")
    elif left:
        out.failures.append(f"{command}: temp files left after the rerun: {left[:5]}")
    else:
        out.rerun_ok += 1


def _diff(a: dict, b: dict) -> str:
    if a["tickets"] != b["tickets"]:
        n = sum(x != y for x, y in zip(a["tickets"], b["tickets"], strict=False))
        return f"{n} ticket(s) differ ({len(a['tickets'])} vs {len(b['tickets'])} tickets)"
    extra = a["events"] - b["events"]
    missing = b["events"] - a["events"]
    return f"{sum(extra.values())} extra event(s) {list(extra)[:2]}, {sum(missing.values())} missing"


def run_command(workdir: Path, command: str, tickets: int, kills: int, seed: int,
                window: tuple[float, float] = (0.15, 1.0)) -> Outcomes:
    """Build the store for `command`, run the reference, then `kills` kill-and-rerun trials,
    each killed at a random moment in `window` (shares of the reference run's time)."""
    rng = random.Random(seed)
    base = workdir / f"{command}-base"
    build_base(base, tickets, seed)
    if command in ("rebuild", "refresh"):
        # something for the refresh to fold: a tail after the base's snapshot, kept as a tail
        config = base / "tix.yaml"
        config.write_text(config.read_text().replace("snapshot_every: 20000", "snapshot_every: 10000000"))
        rc, err, _t = run(base, "update")
        assert rc == 0, err
    before = fingerprint(base)
    ref_dir = workdir / f"{command}-ref"
    shutil.rmtree(ref_dir, ignore_errors=True)
    shutil.copytree(base, ref_dir)
    rc, err, took = run(ref_dir, command)
    assert rc == 0, f"{command} reference run exited {rc}: {err}"
    ref = fingerprint(ref_dir)
    shutil.rmtree(ref_dir, ignore_errors=True)
    out = Outcomes(command, took)
    work = workdir / f"{command}-work"
    for _ in range(kills):
        trial(base, work, command, rng.uniform(*window) * took, ref, before, out)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="/tmp/tix-bench-crash")
    ap.add_argument("--tickets", type=int, default=20000)
    ap.add_argument("--kills", type=int, default=10, help="kill trials per command")
    ap.add_argument("--commands", default=",".join(COMMANDS))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"{args.tickets} tickets, {args.kills} trials per command, python {sys.version.split()[0]}")
    print(f"{'command':<10} {'ref s':>6} {'killed':>6} {'done':>5}  {'readers saw right after the kill':<52} "
          f"{'temps':>5} rerun ok")
    failures = []
    for command in args.commands.split(","):
        out = run_command(workdir, command, args.tickets, args.kills, args.seed)
        seen = ", ".join(f"{k}: {v}" for k, v in sorted(out.seen.items()))
        print(f"{command:<10} {out.reference_s:>6.2f} {out.kills:>6} {out.finished:>5}  {seen:<52} "
              f"{out.temp_left:>5} {out.rerun_ok}/{out.kills + out.finished}", flush=True)
        failures += out.failures
    for f in failures:
        print("FAIL", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
