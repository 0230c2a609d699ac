"""mbox source: every message of an mbox file, for one-off imports of exported mail.

mbox files are only read (`after: keep`); the source key is
`mbox:<source>:<sha256 of the message bytes>` so re-importing the same file, or a
longer export that contains it, stores each message once.
"""
from __future__ import annotations

import hashlib
import mailbox
import os
from pathlib import Path

from tix.channels.base import RawItem, Source
from tix.errors import UsageError


class MboxSource(Source):
    type = "mbox"

    @property
    def path(self) -> Path:
        p = Path(os.path.expanduser(str(self.spec["path"])))
        return p if p.is_absolute() else self.store.root / p

    def chunks(self, limit=None):
        if not self.path.is_file():
            raise UsageError(f"source {self.name}: no mbox file at {self.path}")
        box = mailbox.mbox(str(self.path), create=False)
        try:
            keys = list(box.iterkeys())
            chunk, taken = [], 0
            self.left = 0
            for n, k in enumerate(keys):
                raw = box.get_bytes(k)
                key = f"mbox:{self.name}:{hashlib.sha256(raw).hexdigest()[:40]}"
                if self.seen_key(key):
                    continue
                if limit is not None and taken >= limit:
                    self.left = sum(1 for k2 in keys[n:]
                                    if not self.seen_key(
                                        f"mbox:{self.name}:{hashlib.sha256(box.get_bytes(k2)).hexdigest()[:40]}"))
                    break
                chunk.append(RawItem(self.name, key, raw, {"index": n}))
                taken += 1
                if len(chunk) >= self.batch_size:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk
        finally:
            box.close()
