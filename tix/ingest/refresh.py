"""The snapshot refresh of a long intake run, in a child process: `python -m tix.ingest.refresh`.

A refresh imports DuckDB and pyarrow and folds the tail (`Reader.write_snapshot`, the one
refresh there is): about 180 MB over its tail, on top of whatever the process holds. Run in
the intake process, that set the peak of a 20,000-message fetch (issue 16: 295 MB, the
intake itself under 100 MB). In a child it is freed when the child exits, and a long tail is
folded in steps (`upto`: one generation per `snapshot_every` events) so that no fold holds
all of it.

The intake starts a child every `snapshot_every` events of its run and goes on storing
while it folds up to that committed position (`Intake._bound_tail`); at the end of the run
it waits for it, and folds what is left only when that is `snapshot_every` events or more.
The child runs under the lock the intake holds for it and takes none: it is given the
locked descriptor, so the lock stays held should the intake die first, and the intake
waits for it before letting the lock go. A refresh that fails costs nothing (the snapshot
is only a cache): the tail stays for the next refresh.

    python -m tix.ingest.refresh STORE [SEGMENT:OFFSET ...] [--end]   # the steps, [the log's end]
"""
from __future__ import annotations

import subprocess
import sys


def start(store, steps: list, end: bool = False) -> subprocess.Popen | None:
    """A child refreshing the snapshot up to each of `steps` (committed `Position`s) and,
    with `end`, to the log's end; the caller holds the lock. None if it cannot start."""
    args = [f"{p.segment}:{p.offset}" for p in steps] + (["--end"] if end else [])
    fd = store.lock().fileno()
    try:
        return subprocess.Popen([sys.executable, "-m", "tix.ingest.refresh", str(store.root), *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                close_fds=True, pass_fds=(fd,) if fd is not None else ())
    except OSError:
        return None


def main(argv: list[str]) -> int:
    from tix.store import Store, history
    from tix.store.log import Position
    from tix.store.reader import Reader

    store = Store(argv[0])
    for arg in argv[1:]:
        if arg == "--end":
            Reader(store, fold_tickets=False).write_snapshot()
        else:
            segment, _, offset = arg.rpartition(":")
            Reader(store, fold_tickets=False, upto=Position(segment, int(offset))).write_snapshot()
    history.catch_up(store)  # the reports' history cache follows, as after any refresh
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
