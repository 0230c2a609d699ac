"""A longer fuzz of the mail parser than the suite's property tests (tests/test_fuzz_mailparse.py).

Mutates the corpus in tests/data/email/ (byte flips, inserted hostile tokens, repeated and
folded headers, inflated whitespace) and feeds every input to `mailparse.parse`. Prints how
many inputs it tried, what they raised (anything but `Unparseable` is a bug), header values
that kept a control character, and the slowest parse per KB of input, with the input's size,
so a super-linear case shows up as a large figure.

    python bench/fuzz_mailparse.py --seconds 120 --seed 1
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tix.channels.mail.parse import Unparseable, parse  # noqa: E402 - after the path is set

CORPUS = REPO / "tests" / "data" / "email"
TOKENS = [b"\r\n ", b"\r\n\t", b" " * 900, b"=?utf-8?q?", b"?=", b"=0D=0A", b"\x0b", b"\xe2\x80\xa8", b"\x1b]0;x\x07",
          b"<", b">", b'"', b"(", b")", b",", b";", b":", b"@", b"\\", b"\x00", b"\xff", b"--", b"boundary=",
          b"Content-Type: multipart/mixed; boundary=x\r\n", b"\r\n--x\r\n", b"=?gb2312?b?", b"begin 644 x\r\n"]
FORBIDDEN = {chr(c) for c in range(32) if c != 9} | {"\x7f", "\x85", "\u2028", "\u2029"}


def seeds() -> list[bytes]:
    skip = {"README.md", "LICENSE", "NOTICE"}
    return [p.read_bytes() for p in sorted(CORPUS.rglob("*")) if p.is_file() and p.name not in skip]


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data[: rng.choice([2_000, 20_000, 200_000])])
    for _ in range(rng.randint(1, 12)):
        op = rng.random()
        pos = rng.randint(0, len(buf)) if buf else 0
        if op < 0.35:
            buf[pos:pos] = rng.choice(TOKENS) * rng.choice([1, 1, 2, 50, 2_000])
        elif op < 0.55 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op < 0.7:
            name = rng.choice([b"To", b"Cc", b"From", b"Subject", b"References", b"Content-Type"])
            buf[0:0] = name + b": " + rng.choice(TOKENS) * rng.choice([1, 100, 5_000]) + b" x\r\n"
        elif op < 0.85 and buf:
            del buf[pos:pos + rng.randint(1, 500)]
        else:
            end = data.find(b"\r\n\r\n")
            if end > 0:
                buf[0:0] = data[:end + 2] * rng.choice([2, 20])
    return bytes(buf)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    pool = seeds()
    tried, outcomes, dirty = 0, Counter(), []
    worst = (0.0, 0, b"")
    total_bytes = 0
    slowest = (0.0, 0)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        raw = mutate(rng, rng.choice(pool))
        total_bytes += len(raw)
        t0 = time.perf_counter()
        try:
            p = parse(raw)
            outcomes["parsed"] += 1
            for v in [p.subject, p.from_name or "", p.from_addr or "", *p.to, *p.cc]:
                if FORBIDDEN & set(v):
                    dirty.append(v[:80])
        except Unparseable:
            outcomes["unparseable"] += 1
        except Exception as exc:  # noqa: BLE001 - counted and shown: any other exception is a bug
            outcomes[f"BUG {type(exc).__name__}: {exc}"[:120]] += 1
        took = time.perf_counter() - t0
        per_kb = took / (len(raw) / 1024) if len(raw) >= 16_384 else 0.0  # small inputs: start-up noise
        slowest = max(slowest, (took, len(raw)))
        if per_kb > worst[0]:
            worst = (per_kb, len(raw), raw[:60])
        tried += 1
    print(f"inputs tried: {tried:,} ({total_bytes / 1e6:,.1f} MB) in {args.seconds:.0f} s, seed {args.seed}")
    for what, n in outcomes.most_common():
        print(f"  {what}: {n:,}")
    print(f"header values with a control character: {len(dirty)}")
    print(f"slowest parse per KB (inputs of 16 KB or more): {worst[0] * 1000:.3f} ms/KB "
          f"(input of {worst[1]:,} bytes, starting {worst[2]!r})")
    print(f"slowest parse: {slowest[0] * 1000:.1f} ms (input of {slowest[1]:,} bytes)")


if __name__ == "__main__":
    main()
