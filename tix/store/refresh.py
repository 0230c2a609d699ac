"""The snapshot refresh: the log's tail folded into the snapshot in steps of bounded memory.

The one refresh there is. A writer that leaves `snapshot_every` events or more in the tail
folds them when it lets the lock go (`Store.maybe_refresh_snapshot`: the first route over an
imported history writes 2.3M events at a million tickets, an import or a bulk update as
many), and a long intake run has a child process do it while it stores (`start`,
`python -m tix.store.refresh`; see `tix.ingest.intake`). Both come here (`run`): the tail is
cut into steps of at most `STEP` events (`cuts`, counting lines in large blocks), and each
step is folded (`Reader.write_snapshot`: DuckDB under `REFRESH_MEMORY`, spilling to
state/duckdb-tmp) into a snapshot generation of its own, so no fold holds more than a step.
Folded in one go, those 2.3M events took 1.8 GB on top of the route (its fold materializes
about 0.8 KB an event); in steps of 250,000 the refresh peaks near 350 MB whatever the tail.

A kill between steps leaves a consistent store: each generation is whole (meta.json is
written last, atomically), and the next refresh folds the rest from its position. A step
ends after a committed line (a position inside a committed batch is one a reader can start
from: readers see every line up to the log's end). A refresh that fails costs nothing (the
snapshot is only a cache): the tail stays for the next one.

A child refresh runs under the lock its parent holds and takes none: it is given the locked
descriptor, so the lock stays held should the parent die first, and the parent waits for it
before letting the lock go.

    python -m tix.store.refresh STORE [SEGMENT:OFFSET ...] [--end]   # the steps, [the log's end]
"""
from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

from tix.store.log import Position

if TYPE_CHECKING:
    from tix.store.store import Store

# Events folded at most in one step (one snapshot generation). Measured on the first route's
# 2.27M events at a million tickets (2 cores): one step 1.8 GB and 15 s of CPU; steps of
# 250,000 350 MB and about 10 s more CPU (each step scans the base and rewrites the delta,
# and the delta outgrows a quarter of the base every third step: a compaction); steps of
# 100,000 would hold ~200 MB for twice that CPU.
STEP = 250_000


def run(store: Store, upto: list[Position] | tuple = (), end: bool = True, step: int | None = None) -> dict | None:
    """Fold the tail into the snapshot up to each of `upto` (committed positions, in log
    order) in turn and, with `end`, to the log's end; each in steps of at most `step`
    events (default STEP), a generation each. The caller holds the lock. Returns the last
    meta written (None when there was nothing to fold)."""
    from tix.store.reader import Reader

    step = step or STEP
    targets = list(upto) + ([store.log.end()] if end else [])
    meta = None
    for target in targets:
        for pos in cuts(store, target, step):
            reader = Reader(store, fold_tickets=False, upto=pos)
            if reader.tail_lines:
                meta = reader.write_snapshot()
            del reader
    return meta


def cuts(store: Store, upto: Position, step: int = STEP, block: int = 8 << 20) -> list[Position]:
    """Positions after every `step`-th line from the snapshot's position to `upto`, and
    `upto` itself (the last cut): lines counted in large blocks, never decoded. Empty when
    the snapshot is at `upto` or past it."""
    from tix.store.reader import _leased_meta

    log = store.log
    start = store.snapshot.position(_leased_meta(store.snapshot))  # where a reader starts (damaged: the log's start)
    if not upto.segment or (start is not None and (start.segment, start.offset) >= (upto.segment, upto.offset)):
        return []
    out: list[Position] = []
    count = 0
    for name, pos, data in log.blocks(start, upto, block):
        n = data.count(b"\n")
        while count + n >= step:  # the step's last line ends in this block
            at = -1
            for _ in range(step - count):
                at = data.index(b"\n", at + 1)
            out.append(Position(name, pos + at + 1))
            data, pos = data[at + 1:], pos + at + 1
            n -= step - count
            count = 0
        count += n
    if not out or out[-1] != upto:
        out.append(upto)
    return out


def start(store: Store, steps: list[Position], end: bool = False) -> subprocess.Popen | None:
    """A child process doing `run(store, steps, end)`, then the reports' history cache; the
    caller holds the lock. None if it cannot start."""
    args = [f"{p.segment}:{p.offset}" for p in steps] + (["--end"] if end else [])
    fd = store.lock().fileno()
    try:
        return subprocess.Popen([sys.executable, "-m", "tix.store.refresh", str(store.root), *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                close_fds=True, pass_fds=(fd,) if fd is not None else ())
    except OSError:
        return None


def main(argv: list[str]) -> int:
    from tix.store import Store, history

    store = Store(argv[0])
    steps = []
    for arg in argv[1:]:
        if arg != "--end":
            segment, _, offset = arg.rpartition(":")
            steps.append(Position(segment, int(offset)))
    run(store, steps, end="--end" in argv[1:])
    history.catch_up(store)  # the reports' history cache follows, as after any refresh
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
