"""The store's exclusive write lock: `state/lock`, an flock held for the whole write.

Readers never take it. A writer waits up to a timeout (default 30 s; `TIX_LOCK_TIMEOUT`
or the `lock_timeout` setting) and then gives up with `StoreLocked`, which the CLI turns
into exit code 75 (EX_TEMPFAIL) so that cron simply tries again next time. Once it holds
the lock (the outermost hold), `on_acquire` runs: the store's repair (`Store.lock`).
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from tix.errors import StoreLocked


class WriteLock:
    def __init__(self, path: Path, timeout: float = 30.0, on_acquire=None):
        self.path = Path(path)
        self.timeout = timeout
        self.on_acquire = on_acquire
        self._fd: int | None = None
        self._depth = 0

    def acquire(self) -> None:
        if self._fd is not None:
            self._depth += 1
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StoreLocked(
                        f"store is locked by another tix process ({self.path}); "
                        f"gave up after {self.timeout:g} s"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        try:  # who holds it, for a person looking; a full disk must not stop the writer
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        self._fd = fd
        self._depth = 1
        if self.on_acquire is not None:
            try:
                self.on_acquire()
            except BaseException:
                self._depth = 0
                self._fd = None
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                raise

    def release(self) -> None:
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth:
            return
        fd, self._fd = self._fd, None
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def fileno(self) -> int | None:
        """The locked descriptor while held: a child process given it (pass_fds) keeps the
        lock held should this process die first (tix.store.refresh)."""
        return self._fd

    @property
    def depth(self) -> int:
        """How many `acquire`s are holding the lock now (0: not held). 1 is the outermost
        hold, where a writer repairs a torn last line and, when done, refreshes the snapshot."""
        return self._depth

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
