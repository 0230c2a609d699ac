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
import os
import stat
import time
from pathlib import Path

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
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        write_all(fd, data)
    except BaseException:
        os.close(fd)
        _unlink(tmp)
        raise
    os.close(fd)
    return commit_temp(tmp, path, sync_dir=sync_dir)


def commit_temp(tmp: str | os.PathLike, path: str | os.PathLike, mode: int | None = None,
                sync_dir: bool = True) -> Path:
    """Finish an atomic write whose data another writer put in `tmp`; returns the path.

    For files a library writes itself (Parquet by pyarrow or DuckDB `COPY`): write to
    `temp_name(path)`, then call this. It fsyncs the temp file, sets `mode` (when given;
    a library creates files by the umask), renames it over `path` and fsyncs the
    directory (unless `sync_dir` is False). On failure the temp file is removed.
    `atomic_write` ends here too: this is the one place a whole file replaces another.
    """
    tmp, path = Path(tmp), Path(path)
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    if sync_dir:
        fsync_path(path.parent)
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


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
