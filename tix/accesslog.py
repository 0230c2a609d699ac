"""The access log: who read what, when (`audit_reads: true`; issue 14, UU PDP accountability).

Format (stable; `tix audit` and scripts read it): `access/YYYY-MM.jsonl` in the store, one
JSON object per line, appended, never rewritten:

    {"ts": "2026-11-24T07:57:05.123456Z", "actor": "user:budi", "login": "budi", "role": "agent",
     "sudo": true, "command": "show", "args": {"number": "1042", "history": true}}

`ts` is UTC (tix.store.log.utcnow); `actor` is the event actor the same user would write
(`user:NAME`, or the --as name with `as_by` naming the admin); `login` the OS login
(SUDO_USER through sudo); `command` the tix command; `args` its arguments as given (what
was read: a ticket number, a contact id, a query; long values are clipped).

No write lock: each line is one `write(2)` on a file opened O_APPEND, under PIPE_BUF
(4096 bytes), so concurrent readers' lines never interleave and a writer holding the store
lock never waits for them. Not fsynced (a read costs well under 10 ms; see the README for
figures): a machine crash may lose the last lines. If the line cannot be written, the read
is refused (the access log is the accountability, not a best effort).
"""
from __future__ import annotations

import os
from pathlib import Path

import orjson

from tix.errors import TixError, UsageError

DIRNAME = "access"
MAX_LINE = 4000  # under PIPE_BUF (4096): one write(2), never interleaved with another process's
_CLIP = 1000


class AccessLogError(TixError):
    """The access log could not be written: the read is refused (exit 2)."""

    exit_code = UsageError.exit_code


def entry(ident, command: str, args: dict, ts: str) -> dict:
    doc = {"ts": ts, "actor": ident.actor(), "login": ident.login, "role": ident.role, "sudo": ident.sudo,
           "command": command, "args": {k: _plain(v) for k, v in args.items()}}
    if ident.as_user:
        doc["as_by"] = ident.agent or ident.login
    return doc


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    text = str(value)
    return text if len(text) <= _CLIP else text[:_CLIP] + "…"


def line_of(doc: dict) -> bytes:
    """One line, at most MAX_LINE bytes: a longer one keeps its arguments clipped to 100 characters."""
    data = orjson.dumps(doc) + b"\n"
    if len(data) > MAX_LINE:
        doc = {**doc, "args": {k: (str(v)[:100] + "…") for k, v in doc["args"].items()}, "clipped": True}
        data = orjson.dumps(doc) + b"\n"
    return data[:MAX_LINE - 1] + b"\n" if len(data) > MAX_LINE else data


def record(store, ident, command: str, args: dict) -> None:
    """Append who read what to the store's access log (one O_APPEND write; no lock)."""
    from tix.store.log import iso, utcnow

    ts = iso(utcnow())
    path = Path(store.root) / DIRNAME / f"{ts[:7]}.jsonl"
    data = line_of(entry(ident, command, args, ts))
    try:
        path.parent.mkdir(mode=0o750, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        raise AccessLogError(f"cannot write the access log {path}: {exc.strerror or exc}; "
                             f"with audit_reads: true the read is refused") from None


def read(store, actor: str | None = None, since=None) -> list[dict]:
    """Every access log entry, oldest first; `actor` (user:NAME, NAME or a login) and `since`
    (an aware datetime) filter. A damaged line (a torn write after a crash) is skipped."""
    from tix.store.log import iso

    root = Path(store.root) / DIRNAME
    floor = iso(since) if since is not None else None
    out = []
    for seg in sorted(root.glob("*.jsonl")) if root.is_dir() else ():
        if floor and seg.name[:7] < floor[:7]:
            continue
        for raw in seg.read_bytes().splitlines():
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if floor and str(doc.get("ts", "")) < floor:
                continue
            if actor and not _by(doc, actor):
                continue
            out.append(doc)
    return out


def _by(doc: dict, actor: str) -> bool:
    """`--actor budi` matches user:budi, the login budi, and an admin budi acting --as someone."""
    return actor in (doc.get("actor"), doc.get("login"), doc.get("as_by")) or doc.get("actor") == f"user:{actor}"
