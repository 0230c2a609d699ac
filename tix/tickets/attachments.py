"""Attachments of a ticket: listing them, and getting one out of the store (`tix attachment`).

Attachments are blobs (`blobs/sha256/ab/<hex>`, stored once) named by the message events:
`message.received` (email: `name`, `type`, `size`, `sha256`, or `too_large`; WhatsApp:
`media_id`, status `pending` until a `message.media` event records the download) and
`message.sent` (what `tix reply --attach` sent: `name`, `type`, `size`, `sha256`). The list
follows the conversation as `tix show` prints it, merges and splits folded
(tix.tickets.merge.conversation); attachment INDEX counts from 1 in that order.

A file name comes from the customer: `safe_name` keeps only its last path component, drops
control and format characters and leading dots, so that saving it can never write outside
the chosen directory, hide the file or put escape sequences on a terminal.
"""
from __future__ import annotations

import hashlib
import mimetypes
import unicodedata

from tix.errors import NotFound, UsageError
from tix.store.files import read_regular

COLUMNS = ["index", "name", "type", "size", "direction", "msg", "ts", "status"]


def ticket_attachments(store, number: int) -> list[dict]:
    """The attachments of ticket `number` in conversation order (NotFound for an unknown ticket)."""
    from tix.tickets.merge import conversation

    if store.read().ticket(number) is None:
        raise NotFound(f"ticket #{number} not found")
    events = conversation(store, number)
    media = {}
    for ev in events:
        data = ev.get("data") or {}
        if ev["type"] == "message.media":
            media[(data.get("message"), data.get("media_id"))] = data
    rows = []
    for ev in events:
        if ev["type"] not in ("message.received", "message.sent"):
            continue
        data = ev.get("data") or {}
        for att in data.get("attachments") or ():
            if isinstance(att, dict):
                rows.append(_row(len(rows) + 1, ev, data, att, media))
    return rows


def _row(index: int, ev: dict, data: dict, att: dict, media: dict) -> dict:
    got = media.get((data.get("message"), att.get("media_id"))) if att.get("media_id") else None
    sha = att.get("sha256") if not att.get("media_id") else (got or {}).get("sha256")
    if sha:
        status = "stored"
    elif att.get("too_large"):
        status = "too large (not stored)"
    else:
        status = (got or {}).get("status") or att.get("status") or "not stored"
    size = att.get("size") if att.get("size") is not None else (got or {}).get("size")
    return {"index": index, "name": safe_name(att.get("name"), index, att.get("type")),
            "original_name": att.get("name"), "type": att.get("type") or (got or {}).get("type"), "size": size,
            "direction": "in" if ev["type"] == "message.received" else "out", "msg": ev["seq"], "ts": ev["ts"],
            "ticket": ev.get("ticket"), "status": status, "sha256": sha if status == "stored" else None}


def safe_name(name, index: int, mime: str | None = None) -> str:
    """A file name safe to create: no path separators, control characters or leading dots."""
    text = str(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C")
    text = text.strip().lstrip(".").strip()
    if len(text.encode("utf-8")) > 200:
        stem, dot, ext = text.rpartition(".")
        ext = ext[:16] if dot else ""
        keep = text if not dot else stem
        while len((keep + "." + ext).encode("utf-8")) > 200:
            keep = keep[:-1]
        text = keep + ("." + ext if ext else "")
    if not text:
        ext = mimetypes.guess_extension(mime or "") or ""
        text = f"attachment-{index}{ext}"
    return text


def pick(rows: list[dict], key: str, number: int) -> dict:
    """The attachment named by INDEX (1-based) or by name; NotFound / UsageError with the choices."""
    if not rows:
        raise NotFound(f"#{number} has no attachments")
    if key.isdigit() and 1 <= int(key) <= len(rows):
        return rows[int(key) - 1]
    hits = [r for r in rows if key in (r["name"], r["original_name"])]
    if not hits:
        hits = [r for r in rows if key.lower() in (r["name"].lower(), str(r["original_name"] or "").lower())]
    if len(hits) > 1:
        raise UsageError(f"{len(hits)} attachments of #{number} are named {key!r}: give its index "
                         f"({', '.join(str(r['index']) for r in hits)})")
    if not hits:
        names = ", ".join(f"{r['index']} {r['name']}" for r in rows)
        raise NotFound(f"#{number} has no attachment {key!r}; its attachments: {names}")
    return hits[0]


def blob_path(store, sha256: str):
    return store.path("blobs", "sha256", sha256[:2], sha256)


def read_blob(store, row: dict, number: int) -> bytes:
    """The bytes of a stored attachment, checked against its sha256."""
    if not row.get("sha256"):
        raise NotFound(f"#{number}: attachment {row['index']} ({row['name']}) is {row['status']}: no bytes to get")
    sha = str(row["sha256"])
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise NotFound(f"#{number}: attachment {row['index']} has no valid sha256")
    try:
        data = read_regular(blob_path(store, sha))
    except OSError as exc:
        raise NotFound(f"#{number}: the blob of attachment {row['index']} is missing from blobs/ ({exc})") from None
    if hashlib.sha256(data).hexdigest() != sha:
        raise NotFound(f"#{number}: the blob of attachment {row['index']} is damaged (sha256 differs); "
                       f"run tix check")
    return data
