"""Benchmark `tix route`: 100 rules over a synthetic store, end to end.

    .venv/bin/python bench/bench_rules.py [--history 50000] [--new 20000] [--rules 100]

Generates a store with bench/generate.py (every generated ticket is unrouted: its
`ticket.created` and messages are newer than any `ticket.routed`), writes N rules (a mix
of keyword lists in Indonesian and English, RE2 regular expressions on subject and body,
field conditions on channel/domain/time, `any`/`not` combinations, and assignment by round
robin, least loaded and skill), then times:

- `rules load`: parsing and compiling the rule files;
- the backlog: routing the whole generated history (dry run, then for real);
- new tickets: `--new` tickets appended as the intake writes them (contact, ticket.created,
  message.received), routed end to end under the lock: pending query, intake scan,
  evaluation, events appended and fsynced, round-robin state, snapshot refresh;
- a last `route`, which must find nothing to do (idempotence).

Wall time depends on what else the machine runs (the load average is printed); CPU time
(all threads of this process, DuckDB's included) is the figure to compare.

Auto-replies are left out of the 100 rules: each one writes and fsyncs a message file in
the outbox, so they measure the disk, not the rules (one run with an auto-reply rule on a
small share of tickets is reported separately).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KEYWORDS = [
    ["refund", "pengembalian dana", "uang kembali", "retur dana", "dana kembali"],
    ["pembayaran", "payment", "transfer", "tagihan", "invoice", "virtual account", "qris"],
    ["pengiriman", "paket", "resi", "kurir", "shipping", "delivery", "tracking", "jne"],
    ["mendesak", "segera", "urgent", "darurat", "asap", "secepatnya"],
    ["login", "password", "akun", "account", "otp", "verifikasi"],
    ["rusak", "cacat", "broken", "damaged", "pecah", "tidak berfungsi"],
    ["ukuran", "size", "warna", "color", "stok", "stock", "tersedia"],
    ["komplain", "complaint", "kecewa", "disappointed", "marah", "lapor"],
    ["diskon", "promo", "voucher", "kupon", "cashback", "potongan"],
    ["alamat", "address", "ganti alamat", "salah alamat", "pindah"],
]
REGEXES = [
    r"\bINV-\d{5}\b", r"\bORD-\d{4,}\b", r"(?i)order\s*#?\d{3,}", r"\b08\d{8,11}\b", r"\b628\d{8,11}\b",
    r"(?i)no\.?\s*resi\s*:?\s*[A-Z0-9]{8,}", r"\bRp\.?\s?\d{1,3}(\.\d{3})+",
    r"(?i)\b(tidak|belum)\s+(sampai|diterima)\b",
    r"(?i)\bsudah\s+(transfer|bayar)\b", r"(?i)\bwhere\s+is\s+my\b", r"[A-Z]{2}\d{9}ID", r"(?i)\bcancel(led|lation)?\b",
    r"(?i)\bbatal(kan)?\b", r"(?i)kak\b.*\btolong\b", r"\d{2}/\d{2}/\d{4}",
]


def rules_yaml(n: int) -> str:
    """N realistic rules: keywords, regexes, fields, combinations, assignments."""
    out = []
    teams = ("support", "billing", "shipping")
    strategies = ("round_robin", "least_loaded", "skill")
    for i in range(n):
        kind = i % 10
        name = f"r{i:03d}"
        if kind in (0, 1, 2, 3):
            kw = KEYWORDS[i % len(KEYWORDS)]
            field = ("text", "subject", "body")[i % 3]
            out.append(f"- name: {name}\n  when: any\n  if:\n    {field}: {{keywords: [{', '.join(kw)}]}}\n"
                       f"  then:\n    - tag: [kw{i % len(KEYWORDS)}]\n")
        elif kind in (4, 5, 6):
            rx = REGEXES[i % len(REGEXES)].replace("'", "''")
            field = ("subject", "body", "text")[i % 3]
            out.append(f"- name: {name}\n  when: any\n  if:\n    {field}: {{matches: '{rx}'}}\n"
                       f"  then:\n    - tag: [rx{i % len(REGEXES)}]\n")
        elif kind == 7:
            out.append(f"- name: {name}\n  if:\n    all:\n      - channel: [whatsapp, email]\n"
                       f"      - any:\n          - business_hours: false\n          - weekday: [sat, sun]\n"
                       f"      - not: {{from_domain: {{in: [tokomitra.co.id, example.co.id]}}}}\n"
                       f"  then:\n    - tag: [diluar-jam]\n")
        elif kind == 8:
            kw = KEYWORDS[(i // 10) % len(KEYWORDS)]
            out.append(f"- name: {name}\n  if:\n    all:\n      - ticket.priority: {{in: [normal, low]}}\n"
                       f"      - text: {{keywords: {{all: [{kw[0]}, {kw[1]}]}}}}\n"
                       f"  then:\n    - priority: high\n")
        else:  # assignment: the first rule per team reassigns, the others keep the agent
            team = teams[(i // 10) % 3]
            strategy = strategies[(i // 30) % 3]
            reassign = "true" if i < 30 else "false"
            out.append(f"- name: {name}\n  when: any\n  if:\n    ticket.team: {team}\n"
                       f"  then:\n    - assign: {{team: {team}, strategy: {strategy}, reassign: {reassign}}}\n")
    return "".join(out)


def add_new_tickets(store, n: int, seed: int = 1, rebuild: bool = True) -> None:
    """N new tickets as the intake writes them: contact, ticket.created, message.received.

    Appended to the log under the lock (like bench/generate.py); with `rebuild`, folded
    into the snapshot, else left in the log tail as `tix fetch` leaves them.
    """
    import random

    import orjson

    from bench.generate import NAMES, SUBJECTS, TEXTS
    from tix.store.log import iso, segment_name, utcnow

    rng = random.Random(seed)
    cats = list(SUBJECTS)
    last = store.log.last_event()
    seq = last["seq"] if last else 0
    reader = store.read()
    number, cid = reader.max_ticket, reader.max_contact
    ts = iso(utcnow())
    lines = []

    def emit(**ev):
        nonlocal seq
        seq += 1
        lines.append(orjson.dumps({"seq": seq, "ts": ts, "via": "tix fetch", **ev}) + b"\n")

    for i in range(n):
        channel = "email" if rng.random() < 0.45 else "whatsapp"
        name = f"{rng.choice(NAMES)} {rng.choice(NAMES)}"
        ident = f"new{i}@mail.example" if channel == "email" else f"628{rng.randint(10**9, 10**10 - 1)}"
        subject = rng.choice(SUBJECTS[rng.choice(cats)]).format(o=f"INV-{rng.randint(10000, 99999)}")
        inbox = "cs@toko.example" if channel == "email" else "6281100000000"
        number, cid = number + 1, cid + 1
        actor = f"channel:{channel}"
        emit(actor=actor, type="contact.created", contact=cid, data={
            "name": name, "emails": [ident] if "@" in ident else [], "phones": [] if "@" in ident else [ident],
            "fields": {}})
        emit(actor=actor, type="ticket.created", ticket=number, data={
            "subject": subject, "status": "new", "priority": "normal", "channel": channel, "contact": cid,
            "inbox": inbox})
        emit(actor=actor, type="message.received", ticket=number, data={
            "channel": channel, "from": ident, "from_name": name, "to": [inbox], "cc": [], "subject": subject,
            "text": rng.choice(TEXTS), "attachments": [], "auto": False, "auto_reason": None, "language": None,
            "inbox": inbox})
    with store.lock():
        segs = store.log.segments()
        store.log.append(lines, max(segs[-1] if segs else "", segment_name(ts)))
    if rebuild:
        store.rebuild()


def timed(label: str, fn):
    t, c = time.perf_counter(), time.process_time()
    res = fn()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    print(f"{label}: {res.routed} tickets, {res.events} events, {len(res.errors)} errors; "
          f"wall {wall:.2f} s = {res.routed / wall:,.0f} tickets/s; "
          f"cpu {cpu:.2f} s = {res.routed / cpu:,.0f} tickets/s")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description="Benchmark tix route with N rules on a synthetic store.")
    ap.add_argument("--history", type=int, default=50000, help="tickets in the generated store (all unrouted)")
    ap.add_argument("--new", type=int, default=20000, help="new tickets routed after the history is")
    ap.add_argument("--rules", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="Keep the temporary store.")
    args = ap.parse_args()

    from bench.generate import generate
    from tix import rules
    from tix.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="tix-bench-rules-"))
    try:
        t = time.perf_counter()
        generate(tmp / "store", tickets=args.history, seed=args.seed)
        print(f"generated {args.history} tickets in {time.perf_counter() - t:.1f} s; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        path = tmp / "store"
        store = Store(path)
        shutil.rmtree(store.path("rules"))
        store.path("rules").mkdir()
        store.path("rules", "bench.yaml").write_text(rules_yaml(args.rules), encoding="utf-8")
        t = time.perf_counter()
        ruleset = rules.load(store)
        print(f"rules load+compile: {len(ruleset)} rules in {(time.perf_counter() - t) * 1000:.0f} ms")

        timed("backlog route --dry-run (whole history)", lambda: rules.route(Store(path), dry_run=True, record=False))
        timed("backlog route (whole history, end to end)", lambda: rules.route(Store(path), record=False))
        Store(path).rebuild()
        keep = path.parent / "after-backlog"
        shutil.copytree(path, keep)
        # (a) new tickets folded into the snapshot: intake read by a DuckDB scan of the newest segment;
        # the run's own events then trigger a snapshot refresh (snapshot_every), part of the figure.
        add_new_tickets(Store(path), args.new)
        timed(f"new tickets, in the snapshot: route --dry-run ({args.new})",
              lambda: rules.route(Store(path), dry_run=True, record=False))
        timed(f"new tickets, in the snapshot: route (end to end, {args.new})",
              lambda: rules.route(Store(path), record=False))
        timed("route again (nothing to do)", lambda: rules.route(Store(path), record=False))
        # (b) new tickets left in the log tail, as `tix fetch` leaves them: intake read from the tail.
        # The snapshot refresh is switched off here: with contacts and tickets both in the tail,
        # Reader.write_snapshot currently fails (a DuckDB result left open; reported to the lead).
        cfg = keep / "tix.yaml"
        cfg.write_text(cfg.read_text().replace("snapshot_every: 20000", "snapshot_every: 100000000"))
        add_new_tickets(Store(keep), args.new, rebuild=False)
        timed(f"new tickets, in the log tail: route --dry-run ({args.new})",
              lambda: rules.route(Store(keep), dry_run=True, record=False))
        timed(f"new tickets, in the log tail: route (end to end, {args.new})",
              lambda: rules.route(Store(keep), record=False))
        print(f"load average {os.getloadavg()[0]:.1f}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
