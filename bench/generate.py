"""Deterministic generator of a realistic synthetic tix store.

    python bench/generate.py DIR --tickets 1000000 [--seed 0] [--days 365] [--end 2026-11-23]

N tickets created over a year (weekday and office-hour peaks in Asia/Jakarta), about ten
events each: contact created, ticket created, customer message, assignment, agent replies
after log-normal response times, customer follow-ups, pending spells, tags, notes,
resolution and closing. The first customer message names the product, problem, city, courier
and tracking number (words for `tix search`). Channels, teams, priorities and categories follow realistic
shares; about 10% of tickets are still open at the end (recent ones, and a stale few).
Events are written to monthly segments in time order with strictly increasing seq, then
the snapshot is built with `tix rebuild`. The same seed gives the same store, byte for byte.
"""
from __future__ import annotations

import argparse
import heapq
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tix.store import Store
from tix.store.log import COMMIT_MARK, segment_name

CHANNELS = (("whatsapp", 55), ("email", 40), ("phone", 5))
TEAMS = (("support", 50), ("billing", 25), ("shipping", 25))
PRIORITIES = (("low", 15), ("normal", 60), ("high", 20), ("urgent", 5))
CATEGORIES = (("shipping", 30), ("payment", 20), ("refund", 15), ("product", 15), ("account", 10), ("other", 10))
AGENTS = {"support": ["ani", "citra", "dewa"], "billing": ["budi", "dewa"], "shipping": ["citra"]}
SUBJECTS = {
    "shipping": ["Paket belum sampai", "Where is my order {o}?", "Pengiriman terlambat {o}", "Alamat pengiriman salah"],
    "payment": ["Pembayaran gagal", "Payment failed for {o}", "Sudah transfer tapi status belum lunas", "Invoice {o}"],
    "refund": ["Minta pengembalian dana {o}", "Refund request {o}", "Barang rusak, mau refund", "Refund belum masuk"],
    "product": ["Ukuran tidak sesuai", "Product question", "Stok tersedia?", "Warna berbeda dari foto"],
    "account": ["Tidak bisa login", "Reset password", "Ganti nomor HP", "Hapus akun saya"],
    "other": ["Pertanyaan", "Kerja sama / partnership", "Saran untuk toko", "Hello"],
}
TEXTS = ["Halo kak, mohon dibantu ya. Terima kasih.", "Hi, could you please check this for me? Thanks.",
         "Sudah 3 hari belum ada kabar, mohon segera diproses.", "Please advise, this is urgent.",
         "Baik kak, saya tunggu infonya.", "Thank you, that solved it."]
# Message bodies: one of TEXTS plus a sentence made of these (a per-ticket random stream, so
# the rest of the store is the same as without them), so that a search has words to find.
PRODUCTS = ["sepatu", "kemeja batik", "tas kulit", "headphone", "blender", "kopi arabika", "Café latte sachet",
            "jaket", "celana jeans", "smartwatch", "kursi gaming", "rice cooker", "jam tangan", "dompet",
            "keyboard", "sabun cuci", "parfum", "helm", "kompor", "crème brûlée mix"]
CITIES = ["Jakarta", "Surabaya", "Bandung", "Medan", "Makassar", "Denpasar", "Yogyakarta", "Semarang",
          "Palembang", "Balikpapan", "Manado", "Pontianak"]
COURIERS = ["JNE", "J&T", "SiCepat", "AnterAja", "Pos Indonesia", "Ninja Xpress", "GoSend", "GrabExpress"]
PROBLEMS = ["belum sampai", "rusak saat diterima", "warnanya berbeda", "ukurannya tidak sesuai", "hilang",
            "arrived damaged", "is the wrong size", "never arrived", "was charged twice", "kurang satu"]
NAMES = ["Sari", "Joko", "Rina", "Agus", "Dewi", "Tom", "Lina", "Budi", "Putri", "Eko", "Maya", "Andi"]


def _weighted(rng: random.Random, table):
    total = sum(w for _, w in table)
    x = rng.random() * total
    for value, w in table:
        x -= w
        if x < 0:
            return value
    return table[-1][0]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _creation_times(rng: random.Random, n: int, start: float, end: float) -> list[float]:
    """Sorted creation times with weekday and office-hour peaks (Jakarta is UTC+7)."""
    out = []
    span = end - start
    while len(out) < n:
        t = start + rng.random() * span
        local = datetime.fromtimestamp(t + 7 * 3600, timezone.utc)
        w = ((1.0 if local.weekday() < 5 else 0.45)
             * (1.0 if 8 <= local.hour < 18 else 0.35 if 6 <= local.hour < 22 else 0.08))
        if rng.random() < w:
            out.append(t)
    out.sort()
    return out


def _detail(number: int, order: str) -> str:
    """A sentence about the order: product, problem, city, courier and a tracking number."""
    r = random.Random(number * 7919)
    return (f"Pesanan {order}: {r.choice(PRODUCTS)} {r.choice(PROBLEMS)}, dikirim ke {r.choice(CITIES)} "
            f"via {r.choice(COURIERS)} resi {r.choice('JSTP')}{r.randint(10**9, 10**10 - 1)}.")


def _ticket_events(rng: random.Random, number: int, t0: float, end: float, contact: int, new_contact: bool,
                   name: str, ident: str) -> list[tuple[float, dict]]:
    channel = _weighted(rng, CHANNELS)
    team = _weighted(rng, TEAMS)
    prio = _weighted(rng, PRIORITIES)
    cat = _weighted(rng, CATEGORIES)
    order = f"INV-{rng.randint(10000, 99999)}"
    subject = rng.choice(SUBJECTS[cat]).format(o=order)
    evs: list[tuple[float, dict]] = []
    if new_contact:
        is_mail = channel == "email"
        evs.append((t0 - 0.001, {"type": "contact.created", "contact": contact, "actor": "system", "via": "tix fetch",
                                 "data": {"name": name, "emails": [ident] if is_mail else [],
                                          "phones": [] if is_mail else [ident], "fields": {}}}))
    created = {"subject": subject, "status": "new", "priority": prio, "channel": channel, "contact": contact,
               "team": team, "category": cat, "inbox": "cs@toko.example" if channel == "email" else "6281100000000"}
    evs.append((t0, {"type": "ticket.created", "ticket": number, "actor": "channel:" + channel, "via": "tix fetch",
                     "data": created}))
    msg = {"message": f"gen-{number}-0", "channel": channel, "from": ident, "from_name": name, "subject": subject,
           "text": rng.choice(TEXTS) + " " + _detail(number, order), "auto": False}
    evs.append((t0 + 0.002, {"type": "message.received", "ticket": number, "actor": "channel:" + channel,
                             "via": "tix fetch", "data": msg}))
    t = t0 + rng.uniform(30, 600)
    agent = rng.choice(AGENTS[team])
    evs.append((t, {"type": "ticket.updated", "ticket": number, "actor": "rule:assign-" + team, "via": "tix route",
                    "data": {"set": {"assignee": agent, "status": "open"},
                             "old": {"assignee": None, "status": "new"}}}))
    # first response: log-normal minutes, urgent faster; a few tickets are left unanswered and open
    scale = {"urgent": 20, "high": 60, "normal": 180, "low": 480}[prio]
    stale = rng.random()
    if stale < 0.075:  # never answered: stays open (the backlog's long tail)
        return evs
    t += rng.lognormvariate(0, 1.0) * scale * 60
    status = "open"
    if stale < 0.095:  # answered, then waiting on the customer for good
        evs.append((t, {"type": "message.sent", "ticket": number, "actor": "user:" + agent, "via": "tix reply",
                        "data": {"message": f"gen-{number}-out0", "channel": channel,
                                 "text": "Mohon kirim foto resi ya kak."}}))
        evs.append((t + 1, {"type": "ticket.updated", "ticket": number, "actor": "user:" + agent, "via": "tix set",
                            "data": {"set": {"status": "pending"}, "old": {"status": "open"}}}))
        return [(ts, ev) for ts, ev in evs if ts <= end]
    for k in range(1, rng.choice((1, 1, 2, 2, 3)) + 1):
        evs.append((t, {"type": "message.sent", "ticket": number, "actor": "user:" + agent, "via": "tix reply",
                        "data": {"message": f"gen-{number}-out{k}", "channel": channel,
                                 "text": "Baik kak, kami cek dulu ya."}}))
        if rng.random() < 0.4:
            evs.append((t + 1, {"type": "ticket.updated", "ticket": number, "actor": "user:" + agent, "via": "tix set",
                                "data": {"set": {"status": "pending"}, "old": {"status": status}}}))
            status = "pending"
        t += rng.lognormvariate(0, 1.2) * 3 * 3600
        evs.append((t, {"type": "message.received", "ticket": number, "actor": "channel:" + channel,
                        "via": "tix fetch", "data": dict(msg, message=f"gen-{number}-{k}", text=rng.choice(TEXTS))}))
        if status == "pending":
            evs.append((t + 0.5, {"type": "ticket.updated", "ticket": number, "actor": "channel:" + channel,
                                  "via": "tix fetch",
                                  "data": {"set": {"status": "open"}, "old": {"status": "pending"}}}))
            status = "open"
        t += rng.lognormvariate(0, 1.0) * scale * 60
    if rng.random() < 0.3:
        evs.append((t, {"type": "ticket.tagged", "ticket": number, "actor": "user:" + agent, "via": "tix tag",
                        "data": {"add": [rng.choice(["vip", "marketplace", "repeat", "complaint"])]}}))
    if rng.random() < 0.2:
        evs.append((t + 2, {"type": "ticket.note", "ticket": number, "actor": "user:" + agent, "via": "tix note",
                            "data": {"body": "Sudah dicek ke gudang / checked with the warehouse."}}))
    t += rng.lognormvariate(0, 1.0) * 6 * 3600
    evs.append((t, {"type": "ticket.updated", "ticket": number, "actor": "user:" + agent, "via": "tix close",
                    "data": {"set": {"status": "resolved"}, "old": {"status": status}}}))
    if rng.random() < 0.7:
        t += 3 * 86400
        evs.append((t, {"type": "ticket.updated", "ticket": number, "actor": "system", "via": "tix update",
                        "data": {"set": {"status": "closed"}, "old": {"status": "resolved"}}}))
    return [(ts, ev) for ts, ev in evs if ts <= end]


def generate(path: str | Path, tickets: int = 10000, seed: int = 0, days: int = 365,
             end: datetime | None = None, rebuild: bool = True, progress: bool = False) -> Store:
    """Create a store at `path` holding `tickets` synthetic tickets; return it."""
    rng = random.Random(seed)
    end_dt = end or datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc)
    end_t = end_dt.timestamp()
    start_t = end_t - days * 86400
    store = Store.init(path)
    times = _creation_times(rng, tickets, start_t, end_t)
    heap: list = []
    seq = 0
    contacts = 0
    known: list[tuple[int, str, str]] = []
    out = {}
    dumps = orjson.dumps
    lines: list[bytes] = []
    current_seg = None

    def emit(ts: float, ev: dict):
        nonlocal seq, current_seg, lines
        seq += 1
        iso = _iso(ts)
        seg = segment_name(iso)
        if seg != current_seg:
            _flush(store, current_seg, lines, out)
            lines = []
            current_seg = seg
        ev = {"seq": seq, "ts": iso, **ev}
        lines.append(dumps(ev) + b"\n")
        if len(lines) >= 200000:
            _flush(store, current_seg, lines, out)
            lines = []

    counter = 0
    with store.lock():
        for number, t0 in enumerate(times, start=1):
            while heap and heap[0][0] <= t0:
                ts, _, ev = heapq.heappop(heap)
                emit(ts, ev)
            if known and rng.random() < 0.35:
                cid, name, ident = rng.choice(known)
                new = False
            else:
                contacts += 1
                name = rng.choice(NAMES) + " " + rng.choice(NAMES)
                ident = f"c{contacts}@mail.example" if rng.random() < 0.45 else f"628{rng.randint(10**9, 10**10 - 1)}"
                cid, new = contacts, True
                known.append((cid, name, ident))
            for ts, ev in _ticket_events(rng, number, t0, end_t, cid, new, name, ident):
                counter += 1
                heapq.heappush(heap, (ts, counter, ev))
            if progress and number % 100000 == 0:
                print(f"  {number} tickets, {seq} events", file=sys.stderr)
        while heap:
            ts, _, ev = heapq.heappop(heap)
            emit(ts, ev)
        _flush(store, current_seg, lines, out)
        if rebuild:
            t = time.perf_counter()
            store.rebuild()
            if progress:
                print(f"  rebuild {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return store


def _flush(store: Store, segment, lines, out) -> None:
    if segment and lines:  # one committed batch (the last line carries the commit mark)
        store.log.append(b"".join(lines)[:-2] + COMMIT_MARK, segment)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("directory")
    ap.add_argument("--tickets", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--end", default="2026-11-23T17:00:00+00:00", help="end of the generated year (UTC)")
    args = ap.parse_args()
    t = time.perf_counter()
    store = generate(args.directory, args.tickets, args.seed, args.days, datetime.fromisoformat(args.end),
                     progress=True)
    r = store.read()
    print(f"generated {args.tickets} tickets, {r.meta['seq']} events in {time.perf_counter() - t:.1f} s "
          f"at {store.root}")


if __name__ == "__main__":
    main()
