"""Benchmark `tix route`: 100 rules over a synthetic store, end to end.

    .venv/bin/python bench/bench_rules.py [--tickets 50000] [--rules 100] [--seed 0]

Generates a store with bench/generate.py (every generated ticket is unrouted: its
`ticket.created` and messages are newer than any `ticket.routed`), writes N rules (a mix
of keyword lists in Indonesian and English, RE2 regular expressions on subject and body,
field conditions on channel/domain/time, `any`/`not` combinations, and assignment by round
robin, least loaded and skill), then times:

- `rules load`: parsing and compiling the rule files;
- `route --dry-run`: the whole evaluation, nothing written;
- `route`: end to end under the lock: pending query, intake scan, evaluation, events
  appended and fsynced, round-robin state, snapshot refresh;
- a second `route`: must find nothing to do (idempotence).

Auto-replies are left out of the 100 rules: each one writes and fsyncs a message file in
the outbox, so they measure the disk, not the rules (one run with an auto-reply rule on a
small share of tickets is reported separately).
"""
from __future__ import annotations

import argparse
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
    r"(?i)no\.?\s*resi\s*:?\s*[A-Z0-9]{8,}", r"\bRp\.?\s?\d{1,3}(\.\d{3})+", r"(?i)\b(tidak|belum)\s+(sampai|diterima)\b",
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


def main() -> None:
    ap = argparse.ArgumentParser(description="Benchmark tix route with N rules on a synthetic store.")
    ap.add_argument("--tickets", type=int, default=50000)
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
        generate(tmp / "store", tickets=args.tickets, seed=args.seed)
        print(f"generated {args.tickets} tickets in {time.perf_counter() - t:.1f} s")
        run(tmp / "store", args, rules, Store)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def run(path: Path, args, rules, Store) -> None:
    store = Store(path)
    shutil.rmtree(store.path("rules"))
    store.path("rules").mkdir()
    store.path("rules", "bench.yaml").write_text(rules_yaml(args.rules), encoding="utf-8")
    t = time.perf_counter()
    ruleset = rules.load(store)
    print(f"rules load+compile: {len(ruleset)} rules in {(time.perf_counter() - t) * 1000:.0f} ms")

    t = time.perf_counter()
    dry = rules.route(Store(path), dry_run=True)
    dt = time.perf_counter() - t
    print(f"route --dry-run: {dry.routed} tickets, {dry.events} events in {dt:.2f} s = {dry.routed / dt:,.0f} tickets/s")

    t = time.perf_counter()
    res = rules.route(Store(path))
    dt = time.perf_counter() - t
    print(f"route (end to end, written): {res.routed} tickets, {res.events} events in {dt:.2f} s "
          f"= {res.routed / dt:,.0f} tickets/s; errors: {len(res.errors)}")

    t = time.perf_counter()
    again = rules.route(Store(path))
    print(f"route again: {again.routed} tickets, {again.events} events in {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
