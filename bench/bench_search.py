"""Search benchmark: query time, index build time, and what incremental indexing adds to `tix fetch`.

    .venv/bin/python bench/bench_search.py                       # 100,000 tickets in a temp dir
    .venv/bin/python bench/bench_search.py --tickets 20000 --store /tmp/gen20k --fetch 1000

Generates a store (bench/generate.py; its first customer messages carry product, city,
courier and tracking-number words) unless --store names one already generated, then:

1. builds the search index from the whole log (state/search.sqlite, tix.store.search);
2. times queries: `tix search` (ranked, with snippets) and a `tix list` filter with a bare
   word (which searches bodies through the same index), for a rare word, a common word,
   two words and a phrase; the median of 5 runs each;
3. times `tix fetch` of realistic mail (bench/bench_email.py's messages, from a maildir
   source, in this process) into the store, alternating runs without the index (the cache
   file absent: writers skip it) and with it (writers bring it up to date after each
   commit), and prints the difference per message.
"""
from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

QUERIES = [("order number", None), ("tracking number", None), ("common word", "surabaya"),
           ("two words", "blender rusak"), ("phrase", '"never arrived"'), ("accent-free", "creme brulee"),
           ("prefix", "smart*")]


def sample_words(store) -> dict:
    """An order number and a tracking number that occur in the store (from a message in its middle)."""
    import orjson

    want = store.read().meta["seq"] // 2
    for raw, _seg, _off in store.log.read_raw():
        if b'"message.received"' in raw and b" resi " in raw:
            ev = orjson.loads(raw)
            if ev["seq"] >= want:
                words = ev["data"]["text"].replace(":", " ").replace(".", " ").split()
                return {"order number": next(w for w in words if w.startswith("INV-")),
                        "tracking number": words[words.index("resi") + 1]}
    return {"order number": "INV-12345", "tracking number": "J1234567890"}


def median_time(fn, runs: int = 5) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def queries(store) -> None:
    from tix.store.search import SearchIndex
    from tix.tickets.core import select

    index = SearchIndex(store)
    picked = sample_words(store)
    print(f"{'query':<18} {'text':<18} {'search (top 20)':>16} {'matches':>8} {'list filter':>12} {'rows':>6}")
    t_plain, rows = median_time(lambda: select(store.read(), "status:open", limit=100))
    print(f"{'(no words)':<18} {'status:open':<18} {'':>16} {'':>8} {t_plain * 1000:>9.1f} ms {len(rows):>6}")
    for label, text in QUERIES:
        text = text or picked[label]
        t_search, hits = median_time(lambda t=text: index.search(t, limit=20))
        total = len(index.tickets(text))
        word = text if " " not in text or text.startswith('"') else text.split()[0]
        t_list, rows = median_time(lambda w=word: select(store.read(), w.strip('"') if '"' in w else w,
                                                         limit=100, default_open=False))
        print(f"{label:<18} {text:<18} {t_search * 1000:>13.1f} ms {total:>8} {t_list * 1000:>9.1f} ms {len(rows):>6}")


def fetch_cost(store, n: int, rounds: int) -> None:
    from bench_email import make_message

    from tix.ingest import fetch_all
    from tix.store.search import SearchIndex

    md = Path(tempfile.mkdtemp(prefix="tix-bench-md-"))
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir()
    cfg = store.path("tix.yaml")
    text = cfg.read_text()
    if "name: bench-inbox" in text:  # a store this bench ran on before: point its source here
        text = re.sub(r"path: \S*tix-bench-md-\S+", f"path: {md}", text)
    else:
        text += (f"\nchannels:\n  - name: bench-inbox\n    type: maildir\n    path: {md}\n"
                 f"    after: seen\n    address: support@toko.example\n")
    cfg.write_text(text)
    store.reload_config()
    rng = random.Random(time.time_ns())
    base = 10**6 + store.log.last_event()["seq"] * 10  # message numbers (and Message-IDs) new to this store
    index = SearchIndex(store)
    index.catch_up()
    files = [index.path.with_name(index.path.name + suffix) for suffix in ("", "-wal", "-shm")]
    results: dict[str, list[float]] = {"without": [], "with": [], "catch_up": []}
    i = 0
    for r in range(rounds):
        for with_index in (False, True) if r % 2 == 0 else (True, False):
            for k in range(n):
                (md / "new" / f"{base}.{i}.{k}.bench").write_bytes(make_message(base + i * n + k, rng))
            i += 1
            if not with_index:  # the index file set aside: writers skip it; then it catches up alone
                for p in files:
                    if p.exists():
                        p.rename(p.with_name(p.name + ".aside"))
            t = time.perf_counter()
            rep = fetch_all(store, now=datetime.now(timezone.utc))
            results["with" if with_index else "without"].append((time.perf_counter() - t) / max(rep.stored, 1))
            assert rep.stored == n, (rep.stored, rep.errors)
            if not with_index:
                for p in files:
                    if p.with_name(p.name + ".aside").exists():
                        p.with_name(p.name + ".aside").rename(p)
                t = time.perf_counter()
                index.catch_up()
                results["catch_up"].append((time.perf_counter() - t) / n)
    without, with_, catch = (statistics.median(results[k]) for k in ("without", "with", "catch_up"))
    print(f"tix fetch of {n} messages, {rounds} runs each (median): without the index {without * 1000:.2f} ms/msg "
          f"({1 / without:.0f} msg/s), with it {with_ * 1000:.2f} ms/msg ({1 / with_:.0f} msg/s)")
    print(f"incremental indexing alone (the catch-up after a fetch): {catch * 1000:.3f} ms/msg = "
          f"{catch / without * 100:.1f}% of the fetch cost")
    shutil.rmtree(md, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tickets", type=int, default=100000)
    ap.add_argument("--store", help="an existing generated store (default: generate one in a temp dir)")
    ap.add_argument("--fetch", type=int, default=500, help="messages per tix fetch run")
    ap.add_argument("--rounds", type=int, default=4, help="fetch runs with and without the index")
    ap.add_argument("--keep-index", action="store_true", help="do not rebuild an index the store already has")
    args = ap.parse_args()
    from generate import generate

    from tix.store import Store
    from tix.store.search import SearchIndex

    tmp = None
    if args.store and Path(args.store, "tix.yaml").exists():
        store = Store.open(args.store)
    else:
        tmp = args.store or tempfile.mkdtemp(prefix="tix-bench-search-")
        t = time.perf_counter()
        store = generate(Path(tmp) / "store" if not args.store else tmp, args.tickets)
        print(f"generated {args.tickets} tickets, {store.read().meta['seq']} events in "
              f"{time.perf_counter() - t:.1f} s")
    index = SearchIndex(store)
    if not (args.keep_index and index.exists()):
        index.remove()
    t = time.perf_counter()
    index.catch_up()
    size = sum(p.stat().st_size for p in store.path("state").glob("search.sqlite*") if not p.name.endswith(".aside"))
    what = "caught up" if args.keep_index else "built from the whole log"
    print(f"index {what} in {time.perf_counter() - t:.1f} s, {size / 2**20:.0f} MB")
    queries(store)
    if args.fetch:
        fetch_cost(store, args.fetch, args.rounds)
    if tmp and not args.store:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
