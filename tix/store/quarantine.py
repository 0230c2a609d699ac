"""`quarantine/`: inputs that could not be processed, kept raw with the error beside them.

Layout (one directory per entry)::

    quarantine/<kind>/<id>/item.<ext>     the input exactly as received (e.g. an .eml)
    quarantine/<kind>/<id>/error.json     {"id", "kind", "source", "key", "error", "ts",
                                           "attempts", "meta"}

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
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tix.errors import NotFound, UsageError
from tix.store.files import atomic_write
from tix.store.log import fsync_path, iso, utcnow


def _root(store) -> Path:
    return store.path("quarantine")


def put(store, kind: str, payload: bytes, error: str, *, source: str | None = None, key: str | None = None,
        meta: dict | None = None, ext: str = "eml", now=None) -> str:
    """Write one entry durably (file, error, fsync) and return its id."""
    ts = iso(now or utcnow())
    digest = hashlib.sha256(payload).hexdigest()[:12]
    qid = f"{ts[:19].replace('-', '').replace(':', '')}-{digest}"
    d = _root(store) / kind / qid
    atomic_write(d / f"item.{ext}", payload, sync_dir=False)
    info = {"id": qid, "kind": kind, "source": source, "key": key, "error": _one_line(error), "ts": ts,
            "attempts": 1, "meta": meta or {}, "file": f"item.{ext}", "size": len(payload)}
    atomic_write(d / "error.json", json.dumps(info, ensure_ascii=False, indent=1))
    fsync_path(d.parent)
    return qid


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:2000]


def entries(store) -> list[dict]:
    """Every entry, oldest first (torn log tails included as kind `torn`)."""
    out = []
    root = _root(store)
    if not root.is_dir():
        return out
    for kind_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for d in sorted(p for p in kind_dir.iterdir() if p.is_dir()):
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
