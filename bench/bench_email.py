"""Email intake benchmark: `tix fetch` from a local Dovecot mailbox; prints msg/s and peak RSS.

    .venv/bin/python bench/bench_email.py                 # 20,000 messages
    .venv/bin/python bench/bench_email.py -n 5000 --runs 2

Needs root and /usr/sbin/dovecot (Debian package dovecot-imapd), like the tests. Builds
realistic support mail (5–50 KB, English and Indonesian, replies with quoted history,
about one in five with a PDF/CSV/JPEG attachment), delivers it into a fresh Dovecot
maildir, then runs the real CLI (`python -m tix fetch`) in a child process against a
fresh store and reports wall time, messages/s and the child's peak RSS.
Peer figure (issue 3): django-helpdesk 2.6.1 `get_email` ≈ 30 msg/s, 70 MB.
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.dovecot import Dovecot  # noqa: E402

PARAS = [
    "Halo kak, saya sudah melakukan pembayaran untuk pesanan {inv} lewat transfer bank BCA tetapi status "
    "pesanan masih menunggu pembayaran. Mohon dicek ya, bukti transfer saya lampirkan.",
    "Paket saya dengan nomor resi JNE {resi} belum sampai padahal sudah lewat 7 hari kerja. Di aplikasi "
    "tertulis paket tertahan di gudang Surabaya. Kapan kira-kira sampai?",
    "Saya ingin mengajukan pengembalian dana (refund) untuk pesanan {inv} karena barang yang diterima "
    "rusak. Foto kondisi barang sudah saya kirim. Terima kasih atas bantuannya.",
    "Hi, I ordered a pair of shoes ({inv}) two weeks ago and received the wrong size. Could you arrange an "
    "exchange? I am happy to send them back with the courier of your choice.",
    "My card was charged twice for order {inv}. Please refund the duplicate charge as soon as possible; "
    "the bank statement shows both transactions on the same day.",
    "Apakah bisa ganti alamat pengiriman? Saya baru pindah ke Jl. Merdeka No. {n}, Bandung 40115.",
]
NAMES = ["Sari Wulandari", "Budi Hartono", "Dewi Lestari", "Agus Salim", "Rina Kurnia", "John Smith",
         "Maria Garcia", "Putu Ayu", "Andi Pratama", "Siti Rahma"]


def make_message(i: int, rng: random.Random) -> bytes:
    name = rng.choice(NAMES)
    addr = f"{name.split()[0].lower()}.{i % 2000}@pelanggan.example"
    inv = f"INV-{100000 + i}"
    target = rng.randint(5_000, 50_000)
    paras = []
    while sum(len(p) for p in paras) < target * 0.8:
        paras.append(rng.choice(PARAS).format(inv=inv, resi=f"JN{rng.randint(10**9, 10**10)}", n=rng.randint(1, 200)))
    body = "\n\n".join(paras[:3])
    if len(paras) > 3:  # the rest as quoted history of an earlier exchange
        body += "\n\nPada Sen, 23 Nov 2026 10.00, Toko Support <support@toko.example> menulis:\n"
        body += "\n".join("> " + line for p in paras[3:] for line in (p, ""))
    msg = EmailMessage()
    msg["From"] = f"{name} <{addr}>"
    msg["To"] = "support@toko.example"
    msg["Subject"] = rng.choice(["Pesanan belum sampai", "Refund pesanan", "Pembayaran belum terverifikasi",
                                 "Wrong size received", "Double charge", "Ganti alamat"]) + f" {inv}"
    msg["Date"] = format_datetime(datetime(2026, 11, 1, tzinfo=timezone.utc) + timedelta(minutes=i))
    msg["Message-ID"] = f"<bench.{i}.{rng.getrandbits(32):x}@pelanggan.example>"
    msg.set_content(body)
    if rng.random() < 0.2:
        kind = rng.choice([("bukti-transfer.pdf", "application", "pdf"), ("orders.csv", "text", "csv"),
                           ("foto-barang.jpg", "image", "jpeg")])
        data = rng.randbytes(rng.randint(2_000, 20_000))
        if kind[1] == "text":
            msg.add_attachment(data.hex()[:8000], subtype="csv", filename=kind[0])
        else:
            msg.add_attachment(data, maintype=kind[1], subtype=kind[2], filename=kind[0])
    return bytes(msg)


def run(n: int, batch: int, seed: int) -> dict:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="tix-bench-email-"))
    dc = Dovecot(users=1).start()
    try:
        t0 = time.perf_counter()
        total = 0
        for i in range(n):
            raw = make_message(i, rng)
            total += len(raw)
            dc.deliver("user1", raw)
        gen = time.perf_counter() - t0
        store = work / "store"
        env = dict(os.environ, TIX_STORE=str(store), TIX_BENCH_IMAP_PASSWORD="secret")
        subprocess.run([sys.executable, "-m", "tix", "init", str(store)], env=env, check=True,
                       capture_output=True)
        with open(store / "tix.yaml", "a", encoding="utf-8") as fh:
            fh.write(f"\nchannels:\n  - name: support\n    type: imap\n    host: 127.0.0.1\n    port: {dc.port}\n"
                     f"    security: plain\n    user: user1\n    password_env: TIX_BENCH_IMAP_PASSWORD\n"
                     f"    address: support@toko.example\n    batch: {batch}\n")
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t1 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "tix", "-v", "fetch", "--no-send"], env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - t1
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode != 0:
            raise SystemExit(f"tix fetch failed ({proc.returncode}): {proc.stderr}")
        return {"messages": n, "mbytes": total / 1e6, "generate_s": gen, "fetch_s": wall, "msg_per_s": n / wall,
                "peak_rss_mb": max(peak, before) / 1024, "summary": proc.stdout.strip()}
    finally:
        dc.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20_000, help="messages in the mailbox (default 20000)")
    ap.add_argument("--batch", type=int, default=200, help="UIDs per FETCH / messages per fsync")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"tix email intake benchmark: {args.n} messages from a local Dovecot, batch {args.batch}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for r in range(args.runs):
        res = run(args.n, args.batch, args.seed + r)
        print(f"run {r + 1}: {res['messages']} msgs ({res['mbytes']:.0f} MB) in {res['fetch_s']:.1f} s = "
              f"{res['msg_per_s']:.0f} msg/s, peak RSS {res['peak_rss_mb']:.0f} MB  [{res['summary']}]")


if __name__ == "__main__":
    main()
