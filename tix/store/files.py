"""Files of the store: the one durable atomic write, fsync of files and directories.

Every file tix writes whole (cursors, counters, caches, snapshot metadata, spool and
quarantine entries, reports) goes through `atomic_write`: a temp file beside the target
(`.NAME.PID.tmp`), written in full, fsynced, renamed over the target, and the directory
fsynced so that the rename itself survives a crash. A reader sees the old file or the new
one, never a part; a crash leaves at most a temp file, which `clean_temp` removes later.

Permissions follow DESIGN invariant 10: files 0640 by default, secrets and caches 0600
(`mode=`), directories 0750.
"""
from __future__ import annotations

import errno
import functools
import os
import re
import shutil
import stat
import time
from pathlib import Path

from tix.errors import StoreWriteError
from tix.store.log import fsync_path

FILE_MODE = 0o640
DIR_MODE = 0o750
TEMP_GLOB = ".*.tmp"


def temp_name(path: Path) -> Path:
    """The temp file `atomic_write` uses for `path` (per process, beside the target)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a large write may be partial)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write(path: str | os.PathLike, data: bytes | str, mode: int = FILE_MODE,
                 sync_dir: bool = True) -> Path:
    """Replace `path` with `data` durably and atomically; returns the path.

    Args:
        path: the target; its directory is created (0750) when missing.
        data: bytes, or text written as UTF-8.
        mode: permissions of a new file (0640; pass 0o600 for secrets and caches).
        sync_dir: fsync the directory after the rename (leave True unless the caller
            syncs the directory once for many files).
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    tmp = temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    except OSError as exc:
        raise write_error(exc, path, len(data)) from None
    try:
        write_all(fd, data)
    except BaseException as exc:
        os.close(fd)
        _unlink(tmp)
        if isinstance(exc, OSError):
            raise write_error(exc, path, len(data)) from None
        raise
    os.close(fd)
    return commit_temp(tmp, path, sync_dir=sync_dir, needed=len(data))


def commit_temp(tmp: str | os.PathLike, path: str | os.PathLike, mode: int | None = None,
                sync_dir: bool = True, needed: int | None = None) -> Path:
    """Finish an atomic write whose data another writer put in `tmp`; returns the path.

    For files a library writes itself (Parquet by pyarrow or DuckDB `COPY`): write to
    `temp_name(path)`, then call this. It fsyncs the temp file, sets `mode` (when given;
    a library creates files by the umask), renames it over `path` and fsyncs the
    directory (unless `sync_dir` is False). On failure the temp file is removed; a full
    disk or an I/O error raises StoreWriteError (`write_error`; `needed`: the bytes written).
    `atomic_write` ends here too: this is the one place a whole file replaces another.
    """
    tmp, path = Path(tmp), Path(path)
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        _unlink(tmp)
        if isinstance(exc, OSError):
            raise write_error(exc, path, needed) from None
        raise
    if sync_dir:
        try:
            fsync_path(path.parent)
        except OSError as exc:
            raise write_error(exc, path, needed) from None
    return path


class NotRegular(OSError):
    """A path that is a symbolic link or not a regular file: tix does not read it."""


def read_regular(path: str | os.PathLike) -> bytes:
    """The bytes of a regular file, never following a symbolic link (DESIGN invariant 10).

    A link in a maildir or the spool could otherwise make `tix fetch` copy any file the
    cron user can read (`/etc/shadow`, another store) into the store. Raises NotRegular.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular(f"{path}: a symbolic link, not read") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(f"{path}: not a regular file, not read")
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


# errnos that mean "the disk" rather than "the caller": full, over quota, failing, read-only
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG}
_DISK_TEXT = re.compile(r"no space left|disk quota|input/output error|read-only file system|database or disk is full|"
                        r"disk I/O error", re.I)  # the last two: SQLite's words
MB = 1 << 20


def is_disk_error(exc: BaseException) -> bool:
    """A full disk or an I/O error, also as libraries report them (DuckDB and pyarrow raise
    their own exceptions, with the system's message in the text)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno in DISK_ERRNOS
    return bool(_DISK_TEXT.search(str(exc)))


def write_error(exc: BaseException, path: str | os.PathLike, needed: int | None = None,
                outcome: str = "nothing of it was written: run the command again") -> BaseException:
    """The one line a failed store write ends with; the caller has already undone the write.

    A full disk or an I/O error becomes StoreWriteError (exit 1), e.g. `store /srv/hd: no
    space left on device writing events/2026-11.jsonl: free at least 13 MB (2 MB free now);
    nothing of it was written: run the command again`. `outcome` says what became of the
    command. Any other error is returned as it is (the caller raises what it gets).
    """
    if not is_disk_error(exc):
        return exc
    path = Path(path)
    root = _store_root(path)
    shown = path.relative_to(root) if root else path
    where = f"store {root}: " if root else ""
    full = (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)) \
        or any(w in str(exc).lower() for w in ("space", "quota", "disk is full"))
    if full:
        try:
            free = shutil.disk_usage(root or path.parent).free
        except OSError:
            free = None
        need = f"free at least {_mb((needed or 0) + MB)}" if needed is not None else "free some space"
        have = f" ({_mb(free)} free now)" if free is not None else ""
        what = f"no space left on device writing {shown}: {need}{have}"
    else:
        what = f"{exc.strerror if isinstance(exc, OSError) and exc.strerror else 'I/O error'} writing " \
               f"{shown} (check the disk: dmesg)"
    return StoreWriteError(f"{where}{what}; {outcome}", path, needed, head=f"{where}{what}")


def _mb(n: int) -> str:
    return f"{n / MB:.0f} MB" if n >= 10 * MB else f"{n / MB:.1f} MB"


def _store_root(path: Path) -> Path | None:
    for parent in path.parents:
        if (parent / "tix.yaml").is_file():
            return parent
    return None


def clean_temp(directory: str | os.PathLike, older_than: float = 3600.0) -> int:
    """Remove temp files of `atomic_write` left in `directory` by a crash; returns how many.

    Only files older than `older_than` seconds are removed, so a live writer's temp file
    is never taken from under it.
    """
    cutoff = time.time() - older_than
    removed = 0
    for tmp in Path(directory).glob(TEMP_GLOB):
        try:
            if tmp.is_file() and tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


# Temp files writers leave behind when killed: (directory under the store, glob, pattern of
# the writer's pid in the name or None). `clean_stale` removes them under the write lock.
STALE_TEMPS = (
    (".", TEMP_GLOB, r"\.(\d+)\.tmp$"),
    ("state", TEMP_GLOB, r"\.(\d+)\.tmp$"),
    ("state", "tail-*.jsonl", r"^tail-(\d+)-"),  # a snapshot refresh's copy of the tail
    ("state", "*.tmp[0-9]*", r"\.tmp(\d+)$"),  # channel cursors
    ("state", "rebuild-*.duckdb*", r"^rebuild-(\d+)\."),  # tix rebuild's working database
    ("state/seen", TEMP_GLOB, r"\.(\d+)\.tmp$"),  # what each agent has seen (tix.tickets.seen)
    ("snapshot", TEMP_GLOB, r"\.(\d+)\.tmp$"),
    ("snapshot", "*.parquet.tmp", None),
    ("snapshot/*", TEMP_GLOB, r"\.(\d+)\.tmp$"),
    ("events", TEMP_GLOB, r"\.(\d+)\.tmp$"),
    ("spool/whatsapp", TEMP_GLOB, r"\.(\d+)\.tmp$"),
    ("blobs/tmp", "wa-*", r"^wa-(\d+)-"),
)


def clean_stale(root: str | os.PathLike, unknown_age: float = 3600.0, live_age: float = 86400.0) -> int:
    """Remove the temp files killed writers left in the store (`STALE_TEMPS`); returns how many.

    Called by every writer when it takes the lock. A file whose name holds a pid is removed
    when that process is gone (or the file is older than `live_age`: the pid was reused);
    one without a pid when older than `unknown_age`. A live process's file is never taken.
    """
    root = Path(root)
    now = time.time()
    removed = 0
    for sub, patterns in _stale_patterns().items():
        for directory in root.glob(sub) if "*" in sub else (root / sub,):
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                for name_re, pid_re in patterns:
                    if not name_re.match(entry.name):
                        continue
                    m = pid_re.search(entry.name) if pid_re else None
                    pid = int(m.group(1)) if m else None
                    try:
                        if not entry.is_file(follow_symlinks=False):
                            break
                        age = now - entry.stat(follow_symlinks=False).st_mtime
                        if (pid is not None and pid != os.getpid() and not pid_alive(pid)) \
                                or age > (unknown_age if pid is None else live_age):
                            os.unlink(entry.path)
                            removed += 1
                    except (FileNotFoundError, PermissionError):
                        pass
                    break
    return removed


@functools.lru_cache(maxsize=1)
def _stale_patterns() -> dict[str, list]:
    """STALE_TEMPS compiled, by directory."""
    import fnmatch

    by_dir: dict[str, list] = {}
    for sub, pattern, pid_re in STALE_TEMPS:
        by_dir.setdefault(sub, []).append((re.compile(fnmatch.translate(pattern)),
                                           re.compile(pid_re) if pid_re else None))
    return by_dir


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
