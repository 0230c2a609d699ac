"""Files an agent attaches to a reply (`tix reply --attach FILE`): checked, then stored as blobs.

Everything is checked before anything is queued (`load`): each file must exist and be a
regular file, and the channel's size limits hold:

    email      the files together at most `outbound.attachment_limit_mb` (default 25 MB, what
               the common mail providers accept)
    whatsapp   each file at most its media type's limit (Meta's documented limits, in MB,
               overridable per type by `whatsapp.media_limits_mb`): image 5 (JPEG, PNG),
               video 16 (MP4, 3GPP), audio 16 (AAC, AMR, MP3, M4A, OGG), sticker 0.5 (WebP),
               document 100 (anything else)

A missing, unreadable or oversized file is a UsageError (exit 2) naming it: nothing queued.
The bytes are stored once as blobs (`blobs/sha256/ab/<hex>`, like inbound attachments) and the
outbox item carries references to them (`attachments`: `name`, `type`, `size`, `sha256`): the
email composer puts them in the .eml it stores; WhatsApp uploads each one to the Cloud API's
media endpoint when the item is sent (tix.channels.whatsapp.send), one message per file.
"""
from __future__ import annotations

import hashlib
import mimetypes
import os
from dataclasses import dataclass

from tix.errors import UsageError
from tix.store.files import atomic_write

MB = 1024 * 1024
EMAIL_TOTAL_MB = 25
WHATSAPP_MB = {"image": 5, "video": 16, "audio": 16, "sticker": 0.5, "document": 100}
WHATSAPP_KINDS = {"image/jpeg": "image", "image/png": "image", "image/webp": "sticker",
                  "video/mp4": "video", "video/3gpp": "video",
                  "audio/aac": "audio", "audio/amr": "audio", "audio/mpeg": "audio", "audio/mp4": "audio",
                  "audio/ogg": "audio"}


@dataclass
class Outgoing:
    name: str
    type: str
    data: bytes
    sha256: str

    @property
    def size(self) -> int:
        return len(self.data)

    def info(self) -> dict:
        return {"name": self.name, "type": self.type, "size": self.size, "sha256": self.sha256}


def whatsapp_kind(mime: str) -> str:
    return WHATSAPP_KINDS.get(mime, "document")


def limits(config, channel: str) -> dict:
    """{kind: bytes} for WhatsApp, {"total": bytes} for email."""
    if channel == "whatsapp":
        own = (config.section("whatsapp", {}) or {}).get("media_limits_mb") or {}
        return {k: float(own.get(k, v)) * MB for k, v in WHATSAPP_MB.items()}
    own = (config.section("outbound", {}) or {}).get("attachment_limit_mb")
    return {"total": float(own if own is not None else EMAIL_TOTAL_MB) * MB}


def load(paths, channel: str, config) -> list[Outgoing]:
    """Read and check the files to attach; UsageError (nothing queued) for the first problem."""
    files = [_read(p) for p in paths or ()]
    if not files:
        return files
    if channel not in ("email", "whatsapp"):
        raise UsageError(f"cannot attach files on channel {channel!r} (email and whatsapp can)")
    lim = limits(config, channel)
    if channel == "email":
        total = sum(f.size for f in files)
        if total > lim["total"]:
            raise UsageError(f"attachments total {_mb(total)}, over the email limit of {_mb(lim['total'])} "
                             f"(outbound.attachment_limit_mb)")
        return files
    for f in files:
        kind = whatsapp_kind(f.type)
        if f.size > lim[kind]:
            raise UsageError(f"{f.name}: {_mb(f.size)}, over WhatsApp's {_mb(lim[kind])} limit for {kind} "
                             f"(whatsapp.media_limits_mb.{kind})")
        if f.size == 0:
            raise UsageError(f"{f.name}: empty file; WhatsApp does not send empty media")
    return files


def _read(path: str) -> Outgoing:
    try:
        with open(path, "rb") as fh:
            if not os.path.isfile(path):
                raise UsageError(f"--attach {path}: not a regular file")
            data = fh.read()
    except FileNotFoundError:
        raise UsageError(f"--attach {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--attach {path}: a directory, not a file") from None
    except OSError as exc:
        raise UsageError(f"--attach {path}: {exc.strerror}") from None
    name = os.path.basename(path)
    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Outgoing(name, mime, data, hashlib.sha256(data).hexdigest())


def store_blobs(store, files: list[Outgoing]) -> list[dict]:
    """Store each file once under blobs/ (durably: before the event that names it); their references."""
    for f in files:
        path = store.path("blobs", "sha256", f.sha256[:2], f.sha256)
        if not (path.exists() and path.stat().st_size == f.size):
            atomic_write(path, f.data)
    return [f.info() for f in files]


def _mb(n: float) -> str:
    return f"{n / MB:.1f} MB" if n >= MB / 10 else f"{n / 1024:.0f} KB"


def queue_reply(batch, row: dict, channel: str, text: str, paths=(), template: str | None = None) -> list[dict]:
    """Queue an agent's reply with the files at `paths` (checked first: `load`); the queued items.

    Email: one message with every file attached. WhatsApp: the text (when there is any), then
    one media message per file (the Cloud API sends one medium per message).
    """
    from tix.outbox.enqueue import queue

    files = load(paths, channel, batch.store.config)
    if channel != "whatsapp" or not files:
        return [queue(batch, row, channel, text, template=template, attachments=files)]
    items = [queue(batch, row, channel, text, template=template)] if (text or "").strip() or template else []
    return items + [queue(batch, row, channel, "", attachments=[f]) for f in files]
