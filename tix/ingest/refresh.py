"""The snapshot refresh of a long intake run, in a child process: `python -m tix.ingest.refresh`.

A refresh imports DuckDB and pyarrow and folds the tail (`Reader.write_snapshot`, the one
refresh there is): about 180 MB over its tail, on top of whatever the process holds. Run in
the intake process, that set the peak of a 20,000-message fetch (issue 16: 295 MB, the
intake itself under 100 MB). In a child it is freed when the child exits, and a long tail is
folded in steps (`upto`: one generation per `snapshot_every` events) so that no fold holds
all of it: about 235 MB for 53,000 events.

The child runs under the lock its parent (the intake) holds for it, and takes none: the
parent waits for it, so nothing else writes meanwhile. A refresh that fails costs nothing
(the snapshot is only a cache): the tail stays, and the store's own refresh at the end of
the command, or the next writer's, folds it.

    python -m tix.ingest.refresh STORE [SEGMENT:OFFSET ...]   # the steps, then the log's end
"""
from __future__ import annotations

import subprocess
import sys


def in_child(store, steps: list) -> bool:
    """Refresh the snapshot up to each of `steps` (committed `Position`s), then to the log's
    end, in a child process; the caller holds the lock. True when it succeeded."""
    args = [f"{p.segment}:{p.offset}" for p in steps]
    try:
        proc = subprocess.run([sys.executable, "-m", "tix.ingest.refresh", str(store.root), *args],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              close_fds=True, check=False)
    except OSError:
        return False
    return proc.returncode == 0


def main(argv: list[str]) -> int:
    from tix.store import Store, history
    from tix.store.log import Position
    from tix.store.reader import Reader

    store = Store(argv[0])
    for arg in argv[1:]:
        segment, _, offset = arg.rpartition(":")
        Reader(store, fold_tickets=False, upto=Position(segment, int(offset))).write_snapshot()
    Reader(store, fold_tickets=False).write_snapshot()
    history.catch_up(store)  # the reports' history cache follows, as after any refresh
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
