"""Email intake benchmark: `tix fetch` from a local Dovecot mailbox; prints msg/s and peak RSS.

    .venv/bin/python bench/bench_email.py                 # 20,000 messages
    .venv/bin/python bench/bench_email.py -n 5000 --runs 2
    .venv/bin/python bench/bench_email.py --history 5000 --replies 0.3   # into a store with tickets
    .venv/bin/python bench/bench_email.py -n 0 --store /work/bench-stores/1m-COPY   # only the small runs

After the big run it measures the fixed cost of a cron run: `--small` (default 50) messages
fetched into a small store (a fresh one that took one `--small` batch before, untimed) and,
with `--store DIR`, into that existing store (e.g. a copy of a 1M-ticket store): wall, CPU
(user+sys of the process and its parse workers) and peak RSS, `--small-runs` times each
(median quoted). `--store DIR` CHANGES that store: it adds an IMAP channel `bench-email` to its
tix.yaml for the runs (the file is put back afterwards) and the runs' messages and tickets
stay in it, so give it a copy. Its first run is reported apart ("first fetch"): it may
build caches the store never had (the message index of a store that never fetched).

Needs root and /usr/sbin/dovecot (Debian package dovecot-imapd), like the tests. Builds
realistic support mail (5–50 KB, English and Indonesian, replies with quoted history,
about one in five with a PDF/CSV/JPEG attachment), delivers it into a fresh Dovecot
maildir, settles it (sync, one SELECT: as mail delivered before a cron run), then runs the
real CLI (`python -m tix fetch`) in a child process against a
fresh store and reports wall time, messages/s, the child's peak RSS (wait4: the largest of
the process and the children it reaped, e.g. the snapshot refresh), the peak of the whole
process tree (the sum of the processes alive at once: the intake, its parse workers, its
snapshot-refresh child; sampled every 20 ms, with each kind's share at that peak and each
kind's own peak) and the CPU (user+sys) of the whole run. tix's bytecode is compiled first, as an installed tix has it.
Peer figure (issue 3): django-helpdesk 2.6.1 `get_email` ≈ 30 msg/s, 70 MB.
"""
from __future__ import annotations

import argparse
import email
import os
import random
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


def set_headers(raw: bytes, headers: dict[str, str]) -> bytes:
    """`raw` with these headers replaced (or added)."""
    head, _, body = raw.partition(b"\n\n")
    names = {k.lower().encode() + b":" for k in headers}
    lines, skip = [], False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not skip:
                lines.append(line)
            continue
        skip = line.split(b":", 1)[0].lower() + b":" in names
        if not skip:
            lines.append(line)
    lines += [f"{k}: {v}".encode() for k, v in headers.items()]
    return b"\n".join(lines) + b"\n\n" + body


def history_message(k: int) -> bytes:
    """Message k of the store's history, from a fixed customer of its own."""
    return set_headers(make_message(k, random.Random(k)), {"Message-ID": f"<hist.{k}@pelanggan.example>"})


def make_reply(i: int, rng: random.Random, k: int, number: int) -> bytes:
    """The same customer answering history message k: threads by In-Reply-To, or, one
    in four, only by the `[#N]` subject tag (as some mail clients do)."""
    first = email.message_from_bytes(make_message(k, random.Random(k)))
    headers = {"From": first["From"], "Message-ID": f"<reply.{i}.{rng.getrandbits(32):x}@pelanggan.example>"}
    if rng.random() < 0.25:
        headers["Subject"] = f"Re: {first['Subject']} [#{number}]"
    else:
        headers.update({"Subject": f"Re: {first['Subject']}", "In-Reply-To": f"<hist.{k}@pelanggan.example>"})
    return set_headers(make_message(i, rng), headers)


def make_subject(rng: random.Random, i: int) -> str:
    return rng.choice(["Pesanan belum sampai", "Refund pesanan", "Pembayaran belum terverifikasi",
                       "Wrong size received", "Double charge", "Ganti alamat"]) + f" INV-{100000 + i}"


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
    msg["Subject"] = make_subject(rng, i)
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


def _role(pid: int, root: int) -> str:
    """What a process of the fetch's tree is: the intake itself, a parse worker, the
    snapshot-refresh child, or another (named by its module)."""
    if pid == root:
        return "intake"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return "other"
    if b"tix.channels.mail.parseworker" in argv:
        return "parse workers"
    if b"tix.store.refresh" in argv:
        return "refresh child"
    return "other"


def tree_rss(pid: int) -> dict[int, int]:
    """Resident memory (KB) of a process and each of its descendants (Linux /proc)."""
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                out[p] = next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{p}/task"):  # children of every thread (a prefetch
                with open(f"/proc/{p}/task/{task}/children") as fh:  # thread starts the parse workers)
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
    return out


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants, in KB (Linux /proc)."""
    return sum(tree_rss(pid).values())


SAMPLES: list | None = None  # --samples: every sample of the big run's tree, (seconds, {kind: KB})


def timed_fetch(env: dict, usage_out: dict | None = None) -> tuple[float, int, int, subprocess.CompletedProcess]:
    """Run `tix fetch`; return wall seconds, its own peak RSS (KB, wait4) and the peak of
    the sum over its process tree (the parse workers and the snapshot-refresh child
    included: the sum of the processes alive at once, sampled every 20 ms).
    `usage_out` gets `cpu`: user+sys seconds of the process and the workers it reaped,
    and `roles`: the peak RSS (KB) of each kind of process of the tree (the sum over
    the parse workers alive at once), and `at_peak`: the same at the tree's peak."""
    import threading

    t1 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tix", "-v", "fetch", "--no-send"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_tree = [0]
    roles: dict[str, int] = {}
    at_peak: dict[str, int] = {}

    def sample():
        while proc.returncode is None:
            now: dict[str, int] = {}
            for p, kb in tree_rss(proc.pid).items():
                role = _role(p, proc.pid)
                now[role] = now.get(role, 0) + kb
            for role, kb in now.items():
                roles[role] = max(roles.get(role, 0), kb)
            if SAMPLES is not None:
                SAMPLES.append((time.perf_counter() - t1, now))
            if sum(now.values()) > peak_tree[0]:
                peak_tree[0] = sum(now.values())
                at_peak.clear()
                at_peak.update(now)
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t1
    proc.returncode = os.waitstatus_to_exitcode(status)
    th.join()
    if usage_out is not None:
        usage_out["cpu"] = usage.ru_utime + usage.ru_stime
        usage_out["roles"] = roles
        usage_out["at_peak"] = at_peak
    return wall, usage.ru_maxrss, peak_tree[0], subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def roles_text(roles: dict[str, int]) -> str:
    order = ["intake", "parse workers", "refresh child", "other"]
    return ", ".join(f"{r} {roles[r] / 1024:.0f}" for r in order if roles.get(r, 0) >= 512)


def settle_mailbox(port: int) -> float:
    """Flush the just-delivered mail to disk and let Dovecot index the folder, as mail that
    arrived over the minutes before a cron run would be: else the fetch's first file-system
    sync (tix syncs a batch with syncfs) writes the 500 MB the generator just wrote, and
    its first SELECT makes Dovecot scan 20,000 new files. Returns the seconds it took."""
    from imapclient import IMAPClient

    t0 = time.perf_counter()
    os.sync()
    client = IMAPClient("127.0.0.1", port=port, ssl=False)
    client.login("user1", "secret")
    client.select_folder("INBOX")
    client.logout()
    return time.perf_counter() - t0


def history_tickets(store: Path) -> dict[int, int]:
    """History message k -> its ticket number (Dovecot numbers a maildir in its own order)."""
    import orjson

    out = {}
    for seg in sorted((store / "events").glob("*.jsonl")):
        with open(seg, "rb") as fh:
            for line in fh:
                if b'"message.received"' in line:
                    ev = orjson.loads(line)
                    mid = ev["data"].get("message_id") or ""
                    if mid.startswith("<hist."):
                        out[int(mid[6:].split("@")[0])] = ev["ticket"]
    return out


def run(n: int, batch: int, seed: int, history: int = 0, replies: float = 0.0) -> dict:
    """A fresh store (first fed `history` messages, untimed), then a timed fetch of `n`
    messages of which a share `replies` answer history messages."""
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="tix-bench-email-"))
    dc = Dovecot(users=1).start()
    try:
        store = work / "store"
        env = dict(os.environ, TIX_STORE=str(store), TIX_BENCH_IMAP_PASSWORD="secret")
        subprocess.run([sys.executable, "-m", "tix", "init", str(store)], env=env, check=True,
                       capture_output=True)
        with open(store / "tix.yaml", "a", encoding="utf-8") as fh:
            fh.write(f"\nchannels:\n  - name: support\n    type: imap\n    host: 127.0.0.1\n    port: {dc.port}\n"
                     f"    security: plain\n    user: user1\n    password_env: TIX_BENCH_IMAP_PASSWORD\n"
                     f"    address: support@toko.example\n    batch: {batch}\n")
        if history:
            for k in range(history):
                dc.deliver("user1", history_message(k))
            subprocess.run([sys.executable, "-m", "tix", "fetch", "--no-send"], env=env, check=True)
            tickets = history_tickets(store)
        t0 = time.perf_counter()
        total = n_replies = 0
        for i in range(n):
            if history and rng.random() < replies:
                k = rng.randrange(history)
                raw = make_reply(i, rng, k, tickets[k])
                n_replies += 1
            else:
                raw = make_message(i, rng)
            total += len(raw)
            dc.deliver("user1", raw)
        gen = time.perf_counter() - t0
        settle = settle_mailbox(dc.port)
        usage: dict = {}
        load = os.getloadavg()[0]
        wall, peak, tree, proc = timed_fetch(env, usage)
        if proc.returncode != 0:
            raise SystemExit(f"tix fetch failed ({proc.returncode}): {proc.stderr}")
        return {"messages": n, "replies": n_replies, "mbytes": total / 1e6, "generate_s": gen, "fetch_s": wall,
                "msg_per_s": n / wall, "peak_rss_mb": peak / 1024, "tree_rss_mb": tree / 1024,
                "cpu_s": usage["cpu"], "load": load, "settle_s": settle,
                "roles": usage["roles"], "at_peak": usage["at_peak"],
                "summary": proc.stdout.strip()}
    finally:
        dc.stop()
        shutil.rmtree(work, ignore_errors=True)


CHANNEL = ("  - name: bench-email\n    type: imap\n    host: 127.0.0.1\n    port: {port}\n    security: plain\n"
           "    user: user1\n    password_env: TIX_BENCH_IMAP_PASSWORD\n    address: support@toko.example\n"
           "    batch: {batch}\n")


def with_channel(text: str, port: int, batch: int) -> str:
    """tix.yaml text with the bench's IMAP channel added (to its `channels:` list, if any)."""
    entry = CHANNEL.format(port=port, batch=batch)
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.rstrip() in ("channels:", "channels: []"):
            lines[i] = "channels:\n" + entry
            return "".join(lines)
    return text.rstrip("\n") + "\n\nchannels:\n" + entry


def small_runs(store: Path, n: int, runs: int, batch: int, seed: int, fresh: bool) -> dict:
    """`runs` timed fetches of `n` new messages each into `store` (made with `tix init` when
    `fresh`, else an existing store whose tix.yaml gets the bench channel meanwhile), after
    one fetch of `n` reported as `first`. Returns {"first": figures, "runs": [figures…]}."""
    rng = random.Random(seed)
    dc = Dovecot(users=1).start()
    conf = store / "tix.yaml"
    env = dict(os.environ, TIX_STORE=str(store), TIX_BENCH_IMAP_PASSWORD="secret")
    if fresh:
        subprocess.run([sys.executable, "-m", "tix", "init", str(store)], env=env, check=True, capture_output=True)
    saved = conf.read_bytes()
    out: dict = {"runs": []}
    try:
        conf.write_text(with_channel(saved.decode("utf-8"), dc.port, batch), encoding="utf-8")
        for r in range(runs + 1):
            for _ in range(n):
                dc.deliver("user1", make_message(rng.randrange(1_000_000), rng))
            settle_mailbox(dc.port)
            usage: dict = {}
            load = os.getloadavg()[0]
            wall, peak, tree, proc = timed_fetch(env, usage)
            if proc.returncode != 0:
                raise SystemExit(f"tix fetch failed ({proc.returncode}): {proc.stderr}")
            fig = {"wall": wall, "cpu": usage["cpu"], "rss_mb": peak / 1024, "load": load}
            if r == 0:
                out["first"] = fig
            else:
                out["runs"].append(fig)
    finally:
        conf.write_bytes(saved)
        dc.stop()
    return out


def print_small(label: str, res: dict, n: int) -> None:
    def fmt(f):
        return f"wall {f['wall']:.2f} s, CPU {f['cpu']:.2f} s, peak RSS {f['rss_mb']:.0f} MB (load {f['load']:.1f})"

    runs = sorted(res["runs"], key=lambda f: f["wall"])
    print(f"{label}: first fetch of {n}: {fmt(res['first'])}")
    if runs:
        med = runs[len(runs) // 2]
        print(f"{label}: {n} messages, median of {len(runs)}: {fmt(med)}; "
              f"walls {' '.join(format(f['wall'], '.2f') for f in res['runs'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20_000, help="messages in the mailbox (default 20000)")
    ap.add_argument("--batch", type=int, default=200, help="UIDs per FETCH / messages per fsync")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--history", type=int, default=0,
                    help="messages fetched into the store first, untimed (e.g. 5000)")
    ap.add_argument("--replies", type=float, default=0.3,
                    help="with --history: share of the timed messages answering history messages")
    ap.add_argument("--small", type=int, default=50,
                    help="messages of each small run (the per-run cost of a cron fetch); 0: none")
    ap.add_argument("--small-runs", type=int, default=3, help="timed small runs per store (median quoted)")
    ap.add_argument("--store", type=Path, default=None,
                    help="also time the small runs into this existing store (CHANGED: give a copy)")
    ap.add_argument("--samples", type=Path, default=None,
                    help="write the big run's samples of its process tree (seconds, MB of each kind) to this file")
    args = ap.parse_args()
    global SAMPLES
    SAMPLES = [] if args.samples else None
    # An installed tix has its bytecode; a checkout run with PYTHONDONTWRITEBYTECODE=1 would
    # compile every module on each run (about 0.1 s of CPU in a 50-message run): write it once.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "tix")], check=False, capture_output=True)
    print(f"tix email intake benchmark: {args.n} messages from a local Dovecot, batch {args.batch}, "
          f"history {args.history}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for r in range(args.runs if args.n else 0):
        res = run(args.n, args.batch, args.seed + r, args.history, args.replies)
        print(f"run {r + 1}: {res['messages']} msgs "
              f"({res['replies']} replies to older tickets, {res['mbytes']:.0f} MB) "
              f"in {res['fetch_s']:.1f} s = {res['msg_per_s']:.0f} msg/s (after {res['settle_s']:.1f} s settling "
              f"the mailbox: sync, SELECT), CPU {res['cpu_s']:.1f} s "
              f"({res['messages'] / res['cpu_s']:.0f} msg per CPU-second), load {res['load']:.1f}, "
              f"peak RSS {res['peak_rss_mb']:.0f} MB "
              f"(wait4: the largest single process), process tree {res['tree_rss_mb']:.0f} MB at its peak "
              f"(sum of the processes alive at once, sampled: {roles_text(res['at_peak'])} MB); "
              f"peak of each kind: {roles_text(res['roles'])} MB  [{res['summary']}]")
        if args.samples:
            with open(args.samples, "w", encoding="utf-8") as fh:
                for t, now in SAMPLES:
                    fh.write(f"{t:7.2f} {sum(now.values()) / 1024:5.0f}  {roles_text(now)}\n")
            SAMPLES.clear()
    if args.small:
        work = Path(tempfile.mkdtemp(prefix="tix-bench-small-"))
        try:
            print_small("small store", small_runs(work / "store", args.small, args.small_runs, args.batch,
                                                  args.seed, fresh=True), args.small)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if args.store:
            print_small(f"store {args.store}", small_runs(args.store.resolve(), args.small, args.small_runs,
                                                           args.batch, args.seed + 1, fresh=False), args.small)


if __name__ == "__main__":
    main()
