"""Rewriting stored files in place: the one mechanism erasure and retention share (DESIGN invariant 7).

Everything else in the store is only ever appended to or replaced whole by `atomic_write`.
An erasure (`tix contact erase`) or a purge (`tix purge`) must change several files at once
(log segments, message packs, WhatsApp payloads, blobs, quarantine entries, caches) and a
kill -9 at any moment must leave the old state or the new one, never a mix. So a rewrite is
journaled, under the write lock:

1. prepare: each new file content is written to `state/rewrite/N.new` and fsynced; nothing
   the store reads has changed yet. A crash here leaves the old state (the next writer
   removes the temp files: `resume`).
2. commit: `state/rewrite/plan.json` (atomic write) lists every operation (replace a file by
   its temp, delete a file or a directory), the events to append (e.g. `contact.erased`)
   and the caches to drop. Once it is on disk the new state is decided.
3. apply: the operations are idempotent (a temp already renamed is not there any more, a
   deleted file is gone), then the events are appended (once: they carry the plan's id in
   `data.rewrite`), then the caches are dropped, then the plan is removed. A crash anywhere
   in this step is completed by the next writer, which runs `resume` first thing when it
   takes the lock (`Store.heal`), before it could append to a segment being replaced.

Log lines keep their length. A rewritten event line is padded with spaces after its `{` to
the byte length it had (JSON allows the whitespace), and keeps its commit mark, so every
saved log position stays valid: the snapshot's, the outbox's, the message index's, the SLA
and history caches' and `state/log-format.json`'s. Caches that hold the data itself are
dropped (rebuilt from the log when next used) or patched (the snapshot, by the caller).
A reader that finds a committed plan (`Store.read`) finishes it first when it can take the
write lock without waiting; when a writer holds the lock (it is applying or finishing it) or
the user may not write, it says so in one line and reads on, and may then see some files
already redacted and others not yet. No reader ever sees a torn file.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson

from tix.store.files import DIR_MODE, FILE_MODE, atomic_write, write_all
from tix.store.log import COMMIT_MARK, fsync_path

REWRITE_DIR = ("state", "rewrite")
PLAN = "plan.json"
KILL_ENV = "TIX_TEST_KILL_AT"  # tests: SIGKILL this process at a named point (`kill_point`)


def kill_point(name: str) -> None:
    """For the kill -9 tests: die here, as a crash would, when TIX_TEST_KILL_AT names this point."""
    if os.environ.get(KILL_ENV) == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def same_length_line(old: bytes, ev: dict) -> bytes:
    """The event `ev` encoded as a log line exactly as long as `old` (a whole line with its
    newline, with or without the commit mark, which it keeps). Raises ValueError when the
    new encoding is longer (a rewrite only ever removes data)."""
    marked = old.endswith(COMMIT_MARK)
    body = orjson.dumps(ev)
    if marked:
        body = body[:-1] + COMMIT_MARK[:-1]
    pad = len(old) - 1 - len(body)
    if pad < 0:
        raise ValueError(f"event {ev.get('seq')}: the rewritten line would be longer than the original")
    return b"{" + b" " * pad + body[1:] + b"\n"


class Rewrite:
    """One journaled rewrite being prepared (lock held): add operations, then `commit`, then `apply`."""

    def __init__(self, store, label: str):
        self.store = store
        self.dir = store.path(*REWRITE_DIR)
        self.id = os.urandom(8).hex()
        self.label = label
        self.ops: list[list[str]] = []
        self.events: list[dict] = []  # {"type", "contact"?, "ticket"?, "data", "why"?} appended after the files
        self.caches: list[str] = []  # store-relative cache files to drop (rebuilt from the log)
        self.extra: dict = {}  # what the caller's `finish` needs (e.g. the snapshot patch)
        self._n = 0

    def replace(self, rel: str, data: bytes, mode: int = FILE_MODE) -> None:
        """Replace the file at store-relative `rel` with `data` (prepared now, done by `apply`);
        `mode`: 0o600 for caches."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        self._n += 1
        tmp = self.dir / f"{self._n}.new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.ops.append(["replace", str(tmp.relative_to(self.store.root)), rel])

    def delete(self, rel: str) -> None:
        self.ops.append(["delete", rel])

    def rmtree(self, rel: str) -> None:
        self.ops.append(["rmtree", rel])

    def commit(self) -> None:
        """Make the plan durable: from here on the rewrite is done, by us or by the next writer."""
        kill_point("rewrite-prepared")
        plan = {"id": self.id, "label": self.label, "ops": self.ops, "events": self.events,
                "caches": self.caches, "extra": self.extra}
        self.dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        fsync_path(self.dir)
        atomic_write(self.dir / PLAN, orjson.dumps(plan), mode=0o600)

    def apply(self, actor: str, via: str) -> dict:
        plan = orjson.loads((self.dir / PLAN).read_bytes())
        plan.setdefault("actor", actor)
        plan.setdefault("via", via)
        return _apply(self.store, plan, actor, via)


def pending(store) -> dict | None:
    """The committed plan of a rewrite not finished yet, or None."""
    try:
        return orjson.loads(store.path(*REWRITE_DIR, PLAN).read_bytes())
    except FileNotFoundError:
        return None


def resume(store) -> dict | None:
    """Finish a rewrite a crash interrupted (lock held), or drop one that never committed.

    Returns the plan that was finished, or None. Called by `Store.heal`.
    """
    d = store.path(*REWRITE_DIR)
    if not d.is_dir():
        return None
    plan = pending(store)
    if plan is None:
        shutil.rmtree(d, ignore_errors=True)  # prepared, never committed: the old state stands
        return None
    return _apply(store, plan, plan.get("actor") or "system", plan.get("via") or "tix (resumed rewrite)")


def _apply(store, plan: dict, actor: str, via: str) -> dict:
    root = store.root
    touched: set[Path] = set()
    for i, op in enumerate(plan["ops"]):
        if op[0] == "replace":
            tmp, target = root / op[1], root / op[2]
            if tmp.exists():
                os.replace(tmp, target)
                touched.update((target.parent, tmp.parent))
        elif op[0] == "delete":
            try:
                (root / op[1]).unlink()
                touched.add((root / op[1]).parent)
            except FileNotFoundError:
                pass
        elif op[0] == "rmtree":
            target = root / op[1]
            if target.exists():
                shutil.rmtree(target, ignore_errors=True)
                touched.add(target.parent)
        if i == 0:
            kill_point("rewrite-applying")
    for d in touched:
        if d.is_dir():
            fsync_path(d)
    kill_point("rewrite-files-done")
    if plan["events"] and not _appended(store, plan["id"]):
        with store.writing(actor=actor, via=via) as batch:
            for ev in plan["events"]:
                data = dict(ev.get("data") or {}, rewrite=plan["id"])
                batch.emit(ev["type"], ticket=ev.get("ticket"), contact=ev.get("contact"), data=data,
                           why=ev.get("why"))
    kill_point("rewrite-events-done")
    for rel in plan["caches"]:
        try:
            (root / rel).unlink()
        except FileNotFoundError:
            pass
    finish = plan.get("extra", {}).get("finish")
    if finish:
        import importlib

        module, name = finish.split(":")
        getattr(importlib.import_module(module), name)(store, plan)
    store.path(*REWRITE_DIR, PLAN).unlink(missing_ok=True)
    shutil.rmtree(store.path(*REWRITE_DIR), ignore_errors=True)
    return plan


def _appended(store, plan_id: str) -> bool:
    """Are the plan's events in the log already? (They are the last thing before a crash, if any.)"""
    needle = b'"rewrite":"%s"' % plan_id.encode()
    segs = store.log.segments()
    if not segs:
        return False
    path = store.log.dir / segs[-1]
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(0, size - (4 << 20)))
        return needle in fh.read()
