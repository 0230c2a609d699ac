"""Maildir source: the messages in `new/` and `cur/` of a maildir, for imports and the demo.

The source key is `maildir:<source>:<unique name>` (the file name without its `:2,`
flags). `after:` decides what happens once a message is fsynced in the store: `keep`
(the default: the maildir is only read, e.g. the bundled demo), `seen` (move from
`new/` to `cur/` with the `S` flag, as a mail client would) or `delete`.
"""
from __future__ import annotations

import os
from pathlib import Path

from tix.channels.base import RawItem, Source, as_list
from tix.errors import UsageError
from tix.store.files import NotRegular, read_regular

# The bundled sample maildir (English and Indonesian support mail) used by `tix demo`;
# read with `after: keep`, so the package's files are never changed.
DEMO_MAILDIR = Path(__file__).resolve().parents[2] / "data" / "demo" / "maildir"
DEMO_SOURCE = {"name": "demo", "type": "maildir", "path": str(DEMO_MAILDIR), "after": "keep",
               "address": "support@toko.example"}


class MaildirSource(Source):
    type = "maildir"

    @property
    def root(self) -> Path:
        p = Path(os.path.expanduser(str(self.spec["path"])))
        if not p.is_absolute():
            p = self.store.root / p
        return p

    def files(self) -> list[Path]:
        root = self.root
        if not (root / "cur").is_dir() and not (root / "new").is_dir():
            raise UsageError(f"source {self.name}: {root} is not a maildir (no cur/ or new/)")
        out = []
        for sub in ("new", "cur"):
            d = root / sub
            if d.is_dir():
                out += [p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")]
        return sorted(out, key=lambda p: p.name)

    def chunks(self, limit=None):
        todo = []
        for path in self.files():
            key = f"maildir:{self.name}:{path.name.split(':2,')[0]}"
            if self.seen_key(key) and (self.after == "keep" or path.parent.name == "cur"):
                continue  # stored and already acknowledged (a known one in new/ still needs its ack)
            todo.append((path, key))
        self.left = 0
        if limit is not None and len(todo) > limit:
            self.left = len(todo) - limit
            todo = todo[:limit]
        self.total = len(todo)
        for i in range(0, len(todo), self.batch_size):
            chunk = []
            for path, key in todo[i:i + self.batch_size]:
                try:
                    raw = b"" if self.seen_key(key) else read_regular(path)
                except FileNotFoundError:  # taken by another reader meanwhile
                    continue
                except NotRegular as exc:
                    self.refused.append(f"source {self.name}: {exc} (tix follows no link out of a source)")
                    continue
                chunk.append(RawItem(self.name, key, raw, {"path": str(path), "known": self.seen_key(key)}))
            yield chunk

    def ack(self, items):
        items = as_list(items)
        after = self.after
        if after == "keep":
            return
        for it in items:
            path = Path(it.meta["path"])
            try:
                if after == "delete":
                    path.unlink()
                elif path.parent.name == "new":
                    base = path.name.split(":2,")[0]
                    os.replace(path, path.parent.parent / "cur" / f"{base}:2,S")
            except FileNotFoundError:
                pass
