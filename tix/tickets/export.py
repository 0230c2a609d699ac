"""`tix contact export`: one customer's data in one zip (UU PDP rights of access and portability).

The zip holds `tix-export.json` and `attachments/<sha256>` (the files as received or sent).
The JSON document (format 1, documented in README "Personal data")::

    {"format": "tix-contact-export/1", "exported_at": UTC, "contact": {id, name, emails, phones,
     fields, created_at, updated_at, merged: [ids merged into it]},
     "tickets": [{number, subject, status, channel, created_at, updated_at, resolved_at, closed_at,
                  "messages": [{ts, direction: "in"|"out", channel, from, to, cc, subject, text,
                                auto, attachments: [{name, type, size, file}]}],
                  "notes": [{ts, body}]}]}

Times are UTC (ISO 8601). `notes` holds only what the customer told an agent that the agent
typed in (`intake` notes: a phone call, a walk-in); internal notes between agents, rules'
and SLA bookkeeping are not the customer's data and are left out. An attachment over the
size limit was never stored: it is listed with `file: null`.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import orjson

from tix.errors import NotFound, UsageError
from tix.store.log import iso, utcnow

FORMAT = "tix-contact-export/1"
TICKET_KEYS = ("number", "subject", "status", "channel", "created_at", "updated_at", "resolved_at", "closed_at")


class ExportExists(UsageError):
    """The output file exists and --force was not given (exit 2, nothing written)."""


def export_contact(store, cid: int, out: str | os.PathLike, force: bool = False) -> dict:
    """Write the zip of contact `cid` to `out` (0600, atomically); returns counts."""
    out = Path(out)
    if out.exists() and not force:
        raise ExportExists(f"{out} exists; use --force to replace it")
    if out.exists() and not out.is_file():
        raise UsageError(f"{out} is not a regular file")
    reader = store.read()
    doc = export_document(store, reader, cid)
    files = {a["file"]: a["sha256"] for t in doc["tickets"] for m in t["messages"] for a in m["attachments"]
             if a["file"]}
    for t in doc["tickets"]:
        for m in t["messages"]:
            for a in m["attachments"]:
                a.pop("sha256", None)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("tix-export.json", orjson.dumps(doc, option=orjson.OPT_INDENT_2))
            for name, digest in sorted(files.items()):
                blob = store.path("blobs", "sha256", digest[:2], digest)
                if blob.is_file():
                    z.write(blob, name)
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"tickets": len(doc["tickets"]), "messages": sum(len(t["messages"]) for t in doc["tickets"]),
            "attachments": len(files)}


def export_document(store, reader, cid: int) -> dict:
    """The JSON document of the export (attachments still carrying their `sha256`)."""
    row = reader.contact(cid)
    if row is None:
        raise NotFound(f"contact {cid} not found")
    con = reader.connect()
    merged = [r[0] for r in con.execute("SELECT id FROM contacts WHERE merged_into = ? ORDER BY id", [cid]).fetchall()]
    ids = [cid, *merged]
    marks = ",".join("?" * len(ids))
    cols = ", ".join(TICKET_KEYS)
    trows = con.execute(f"SELECT {cols} FROM tickets WHERE contact IN ({marks}) ORDER BY number", ids).fetchall()
    tickets = {r[0]: {**{k: _time(v) for k, v in zip(TICKET_KEYS, r, strict=True)}, "messages": [], "notes": []}
               for r in trows}
    for ev, _pos in store.log.read():
        t = tickets.get(ev.get("ticket"))
        if t is None:
            continue
        _add(store, t, ev)
    for t in tickets.values():
        for m in t["messages"]:
            m.pop("_key", None)
            for a in m["attachments"]:
                a.pop("_media", None)
                digest = a.get("sha256") or ""
                if not (len(digest) == 64 and store.path("blobs", "sha256", digest[:2], digest).is_file()):
                    a.update(file=None, sha256=None)  # never stored (too large), or WhatsApp media not fetched
    contact = {"id": row["id"], "name": row.get("name"), "emails": list(row.get("emails") or []),
               "phones": list(row.get("phones") or []), "fields": orjson.loads(row.get("fields") or "{}"),
               "created_at": _time(row.get("created_at")), "updated_at": _time(row.get("updated_at")),
               "merged": merged}
    return {"format": FORMAT, "exported_at": iso(utcnow()), "contact": contact, "tickets": list(tickets.values())}


def _add(store, ticket: dict, ev: dict) -> None:
    kind, d = ev["type"], ev.get("data") or {}
    if kind in ("message.received", "message.sent"):
        ticket["messages"].append({
            "ts": ev["ts"], "direction": "in" if kind == "message.received" else "out",
            "channel": d.get("channel"), "from": d.get("from"), "to": d.get("to"), "cc": d.get("cc"),
            "subject": d.get("subject"), "text": _full_text(store, d), "auto": bool(d.get("auto")),
            "attachments": [_attachment(a) for a in d.get("attachments") or () if isinstance(a, dict)],
            "_key": d.get("message")})
    elif kind == "message.media" and d.get("status") == "stored" and d.get("sha256"):
        # a WhatsApp attachment downloaded after its message: it joins that message's attachments
        for m in ticket["messages"]:
            if m.get("_key") == d.get("message"):
                got = _attachment({"name": d.get("name"), "type": d.get("type"), "size": d.get("size"),
                                   "sha256": d["sha256"]})
                same = next((a for a in m["attachments"] if a.get("_media") == d.get("media_id")), None)
                if same is None:
                    m["attachments"].append(got)
                else:
                    same.update(file=got["file"], sha256=got["sha256"], size=got["size"] or same["size"])
    elif kind == "ticket.note" and d.get("kind") == "intake":
        ticket["notes"].append({"ts": ev["ts"], "body": d.get("body")})


def _full_text(store, d: dict) -> str | None:
    """A message's whole text, quoted history included (an email's from its raw message)."""
    if d.get("channel") == "email" and "text_full" not in d and d.get("raw"):
        from tix.channels.mail.parse import stored_text

        return stored_text(store, d)
    return d.get("text_full") or d.get("text")


def _attachment(a: dict) -> dict:
    digest = a.get("sha256")
    return {"name": a.get("name"), "type": a.get("type"), "size": a.get("size"),
            "file": f"attachments/{digest}" if digest else None, "sha256": digest, "_media": a.get("media_id")}


def _time(value):
    if hasattr(value, "strftime"):
        from datetime import timezone

        return iso(value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value)
    return value
