"""The files intake writes beside the events: raw messages and blobs, synced once per chunk.

Every other file tix writes whole goes through `tix.store.files.atomic_write` (temp
file, fsync, rename, fsync the directory). Intake deliberately does not, for speed
(issue 3: a file and an fsync per message measured 3 ms a message): what it writes is
either appended to this chunk's pack or named by its content, so it is written in place
and made durable by one `sync()` per chunk, *before* the chunk's events are appended.
A file a crash leaves half-written is therefore never referenced by an event (its event
comes only after the sync), and the re-run writes it again whole:

- `write_raw`: a message exactly as received, appended to the chunk's pack
  `messages/email/Y/M/D/<ms>-<pid>-<random>.pack`; the event holds `raw` (the pack) and
  `raw_span` ([offset, length]; see `tix.channels.base.read_raw`). Bytes of an item
  rolled back are never referenced.
- `write_blob`: an attachment at `blobs/sha256/ab/<hex>`, stored once.
- `keep`: a file at a content-addressed path (e.g. a WhatsApp payload under
  `messages/whatsapp/YYYY-MM/<sha256>.json`), hard-linked from a source file that is
  already durable when there is one, else written in place.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import secrets
import time
from datetime import datetime
from pathlib import Path

from tix.store.files import DIR_MODE, FILE_MODE, write_all
from tix.store.log import fsync_path, iso, utcnow


def _syncfs():
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _syncfs()


class Files:
    """This run's files not yet synced (and the directories it already made)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._root = str(root)
        self.files: list = []  # written since the last sync
        self.dirs: set = set()  # directories with entries made since the last sync
        self._pack: list | None = None  # [fd, store-relative path, size] of this chunk's pack

    def _open(self, path: str, flags: int) -> int:
        """os.open, making the parent directories when they are missing (tried first, not
        remembered: a store's directories may go away under a long-running process)."""
        parent = os.path.dirname(path)
        self.dirs.add(parent)
        try:
            return os.open(path, flags | os.O_NOFOLLOW, FILE_MODE)
        except FileNotFoundError:
            os.makedirs(parent, mode=DIR_MODE, exist_ok=True)
            return os.open(path, flags | os.O_NOFOLLOW, FILE_MODE)

    def write_raw(self, raw: bytes, now: datetime | None = None) -> tuple[str, list[int]]:
        """Append a message to this chunk's pack (dated `now`, default the clock); return (path, span)."""
        if self._pack is None:
            day = iso(now or utcnow())
            name = f"{time.time_ns() // 1_000_000}-{os.getpid()}-{secrets.token_hex(4)}.pack"
            rel = f"messages/email/{day[:4]}/{day[5:7]}/{day[8:10]}/{name}"
            path = os.path.join(self._root, rel)
            fd = self._open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            self._pack = [fd, rel, 0]
            self.files.append(path)
        fd, rel, offset = self._pack
        write_all(fd, raw)
        self._pack[2] = offset + len(raw)
        return rel, [offset, len(raw)]

    def write_blob(self, data: bytes, digest: str | None = None) -> str:
        """Store an attachment once; returns its hex sha256."""
        digest = digest or hashlib.sha256(data).hexdigest()
        path = f"{self._root}/blobs/sha256/{digest[:2]}/{digest}"
        try:
            whole = os.stat(path).st_size == len(data)  # a crash may have left a part of it
        except FileNotFoundError:
            whole = False
        if not whole:
            self.write_in_place(path, data)
        return digest

    def keep(self, rel: str, data: bytes, source: str | None = None) -> str:
        """A content-addressed file at `rel`: a hard link to `source` (a path, already
        durable) when possible, else written in place. Kept once: an existing file is left
        alone. (Paths as strings: this runs once per WhatsApp payload.)"""
        target = os.path.join(self._root, rel)
        parent = os.path.dirname(target)
        self.dirs.add(parent)
        if source is not None:
            try:
                try:
                    os.link(source, target)
                except FileNotFoundError:
                    if not os.path.exists(source):
                        raise
                    os.makedirs(parent, mode=DIR_MODE, exist_ok=True)
                    os.link(source, target)
                return rel
            except FileExistsError:
                return rel
            except OSError:
                pass  # another file system, links not allowed, the source gone: write a copy
        if not os.path.exists(target):
            self.write_in_place(target, data)
        return rel

    def write_in_place(self, path: str, data: bytes) -> None:
        """Write a content-addressed file in place, to be made durable by `sync`."""
        fd = self._open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
        self.files.append(path)

    def sync(self) -> None:
        """Make every file written since the last sync, and its directory entry, durable."""
        sync_files(self.root, *self.hand_over())

    def hand_over(self) -> tuple[list, set]:
        """The files written since the last sync and the directories with new entries (the
        chunk's pack closed), for `sync_files` (in the intake's committer thread), while this
        goes on with the next chunk's files."""
        self.close()
        out = (self.files, self.dirs)
        self.files, self.dirs = [], set()
        return out

    def close(self) -> None:
        if self._pack is not None:
            os.close(self._pack[0])
            self._pack = None


def sync_files(root: Path, files: list, dirs: set) -> None:
    """Make `files` (written in place) and the new entries of `dirs` durable.

    Files written: Linux `syncfs` flushes the store's whole file system in one call (data
    and metadata; elsewhere each file and directory is fsynced). Only new directory entries
    (hard links): their directories are fsynced.
    """
    if not files or not _syncfs_ok(root):
        for path in files:
            fsync_path(path)
        for d in dirs:  # only new entries (hard links) need just their directory
            fsync_path(d)


def _syncfs_ok(root: Path) -> bool:
    if _SYNCFS is None:
        return False
    fd = os.open(root, os.O_RDONLY)
    try:
        return _SYNCFS(fd) == 0
    finally:
        os.close(fd)
