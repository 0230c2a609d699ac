"""`quarantine/`: inputs that could not be processed, kept raw with the error beside them.

Layout (one directory per entry)::

    quarantine/<kind>/<id>/item.<ext>     the input exactly as received (e.g. an .eml)
    quarantine/<kind>/<id>/error.json     {"id", "kind", "source", "key", "error", "ts",
                                           "attempts", "meta"}

An entry's id is a digest of the source item (kind, source and the item's key at its
source, or the bytes when it has no key), so quarantining the same item again (a rerun
after a kill between the entry and its event) finds the entry it wrote before instead of
adding a second. An entry is built in a temp directory (`.tmp-<id>.<pid>`) and renamed into
place: a crash or a full disk leaves no entry without its `error.json`. Under the write
lock, `clean` removes temp directories of writers that are gone and entries of a kind whose
item no event references (`message.quarantined`): the intake calls it after its run.

`kind` is the channel (`email`, `whatsapp`, …). An entry is written and fsynced before
the input is acknowledged at its source, so a poison message is never lost and never
retried forever: the next fetch skips it (its key is recorded by a
`message.quarantined` event). `replay` hands it back to a replayer after a fix (the
intake's: `tix.ingest.replay_quarantined`); on success the entry is removed (the input
now lives under `messages/`), on failure its error and attempt count are updated.
Torn event-log tails cut off by the store (`torn-*.bin`) are listed as kind `torn`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tix.errors import NotFound, UsageError
from tix.store.files import atomic_write, pid_alive
from tix.store.log import fsync_path, iso, utcnow


def _root(store) -> Path:
    return store.path("quarantine")


def entry_id(kind: str, payload: bytes, source: str | None = None, key: str | None = None) -> str:
    """The id of a source item's entry: the same item always gets the same id."""
    item = f"{kind}\0{source or ''}\0{key}".encode() if key else hashlib.sha256(payload).digest()
    return hashlib.sha256(item).hexdigest()[:16]


def put(store, kind: str, payload: bytes, error: str, *, source: str | None = None, key: str | None = None,
        meta: dict | None = None, ext: str = "eml", now=None) -> str:
    """Write one entry durably (temp directory, fsync, rename) and return its id.

    The same source item quarantined again keeps its one entry (its error is updated)."""
    qid = entry_id(kind, payload, source, key)
    parent = _root(store) / kind
    final = parent / qid
    info = {"id": qid, "kind": kind, "source": source, "key": key, "error": _one_line(error),
            "ts": iso(now or utcnow()), "attempts": 1, "meta": meta or {}, "file": f"item.{ext}",
            "size": len(payload)}
    if (final / "error.json").is_file():  # written by a run that was stopped before its event
        old = json.loads((final / "error.json").read_text(encoding="utf-8"))
        atomic_write(final / "error.json", json.dumps({**info, "ts": old.get("ts") or info["ts"]},
                                                      ensure_ascii=False, indent=1))
        return qid
    tmp = parent / f"{TEMP_PREFIX}{qid}.{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        atomic_write(tmp / f"item.{ext}", payload, sync_dir=False)
        atomic_write(tmp / "error.json", json.dumps(info, ensure_ascii=False, indent=1))
        if final.exists():  # a directory without error.json: written by a tix before entries were renamed in
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_path(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return qid


TEMP_PREFIX = ".tmp-"


def clean(store, kind: str, referenced: Callable[[dict], bool]) -> int:
    """Under the write lock: remove temp directories of writers that are gone, and the
    entries of `kind` for which `referenced(entry)` is false (no event records them).
    Returns how many entries were removed."""
    parent = _root(store) / kind
    if not parent.is_dir():
        return 0
    removed = 0
    for d in parent.iterdir():
        if d.name.startswith(TEMP_PREFIX):
            pid = d.name.rsplit(".", 1)[-1]
            if not pid.isdigit() or int(pid) != os.getpid() and not pid_alive(int(pid)):
                shutil.rmtree(d, ignore_errors=True)
            continue
        if not d.is_dir() or d.name.startswith("."):
            continue
        try:
            info = json.loads((d / "error.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # unreadable: left for a person (tix quarantine list shows it)
        if not referenced(info):
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
    return removed


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:2000]


def entries(store) -> list[dict]:
    """Every entry, oldest first (torn log tails included as kind `torn`)."""
    out = []
    root = _root(store)
    if not root.is_dir():
        return out
    for kind_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for d in sorted(p for p in kind_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                info = json.loads((d / "error.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                info = {"id": d.name, "kind": kind_dir.name, "error": f"unreadable error.json: {exc}", "ts": None}
            info["path"] = str(d)
            out.append(info)
    for torn in sorted(root.glob("torn-*.bin")):
        out.append({"id": torn.name, "kind": "torn", "source": "events", "key": None, "ts": None,
                    "error": "torn last line of the event log (cut off by a crash; kept for inspection)",
                    "attempts": 0, "path": str(torn), "size": torn.stat().st_size})
    for bad in sorted(root.glob("damaged-*.bin")):  # copied by tix rebuild (tix.store.check)
        out.append({"id": bad.name, "kind": "damaged", "source": "events", "key": None, "ts": None,
                    "error": "damaged line of the event log (see tix check)", "attempts": 0,
                    "path": str(bad), "size": bad.stat().st_size})
    return sorted(out, key=lambda e: (e.get("ts") or "", e["id"]))


def get(store, qid: str) -> dict:
    for e in entries(store):
        if e["id"] == qid or e["id"].startswith(qid) and len(qid) >= 6:
            return e
    raise NotFound(f"no quarantine entry {qid!r} (see: tix quarantine list)")


def older_than(store, seconds: float, now=None) -> list[dict]:
    """Entries quarantined more than `seconds` ago (a torn or damaged log line: by its file's time)."""
    from datetime import timedelta

    from tix.store.log import parse_ts

    cutoff = (now or utcnow()) - timedelta(seconds=seconds)
    out = []
    for e in entries(store):
        if e.get("ts"):
            when = parse_ts(e["ts"])
        else:
            from datetime import datetime, timezone

            when = datetime.fromtimestamp(Path(e["path"]).stat().st_mtime, timezone.utc)
        if when < cutoff:
            out.append(e)
    return out


def drop(batch, todo: list[dict], why: str) -> list[str]:
    """Remove entries for good, each recorded first by a `quarantine.dropped` event (who, when,
    why, and what it was: kind, source, key, error). Their keys stay recorded, so fetch still
    skips the items at their source. Returns the ids dropped."""
    for e in todo:
        batch.emit("quarantine.dropped", data={"quarantine": e["id"], "kind": e["kind"], "source": e.get("source"),
                                               "key": e.get("key"), "error": e.get("error")}, why=why)
    batch.flush()  # the record first: a kill after it leaves an entry to drop again, never an unrecorded drop
    for e in todo:
        p = Path(e["path"])
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return [e["id"] for e in todo]


def payload(entry: dict) -> bytes:
    p = Path(entry["path"])
    return p.read_bytes() if p.is_file() else (p / entry.get("file", "item.eml")).read_bytes()


@dataclass
class ReplayReport:
    replayed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def replay(store, ids: list[str] | None, replayer: Callable, now=None) -> ReplayReport:
    """Retry entries (all when `ids` is empty): `replayer(store, entry, payload, now=now)`
    takes one in again or raises why it still cannot."""
    rep = ReplayReport()
    todo = [get(store, i) for i in ids] if ids else [e for e in entries(store) if e["kind"] != "torn"]
    for entry in todo:
        if entry["kind"] == "torn":
            raise UsageError(f"{entry['id']}: a torn log line cannot be replayed; inspect it and delete it")
        try:
            replayer(store, entry, payload(entry), now=now)
        except Exception as exc:  # noqa: BLE001 - still broken: keep it, with the new error
            _record_failure(entry, f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc))
            rep.failed.append(entry["id"])
            rep.errors.append(f"quarantine {entry['id']}: {_one_line(str(exc))}")
            continue
        shutil.rmtree(entry["path"], ignore_errors=True)
        rep.replayed.append(entry["id"])
    return rep


def _record_failure(entry: dict, error: str) -> None:
    d = Path(entry["path"])
    info = {k: v for k, v in entry.items() if k != "path"}
    info["attempts"] = int(info.get("attempts") or 1) + 1
    info["error"] = _one_line(error)
    info["last_try"] = iso(utcnow())
    atomic_write(d / "error.json", json.dumps(info, ensure_ascii=False, indent=1))
