"""The WhatsApp webhook spool as a source: `spool/whatsapp/*.json`, one payload per file.

Meta only pushes (there is no API to fetch past messages), so `tix webhook serve`
(`tix.channels.whatsapp.webhook`) writes every signed POST body, byte for byte, into
`spool/whatsapp/<time_ns>-<pid>-<n>.json`, and `tix fetch` reads the spool through this
source like any other: `chunks()` yields the payloads (oldest name first) as `RawItem`s
(`key` `spool:<name>`; the idempotency keys are the wamids inside, see `payload`), and
`ack()` removes the files once the intake has fsynced what it made of them (or
quarantined them). `close()` removes temp files a crashed receiver left (it never
answered 200, so Meta delivers those again).
"""
from __future__ import annotations

import os
from pathlib import Path

from tix.channels.base import RawItem, Source, as_list
from tix.channels.whatsapp.config import load_settings
from tix.errors import ConfigError, Problem
from tix.store.files import NotRegular, atomic_write, clean_temp, read_regular
from tix.store.log import fsync_path

SPOOL = ("spool", "whatsapp")
CHUNK = 500  # payloads per fsync of the log


class SpoolSource(Source):
    type = "whatsapp"
    channel = "whatsapp"

    def __init__(self, store, spec: dict, known=None):
        super().__init__(store, spec, known)
        self.settings = load_settings(store)  # validated here: a config mistake consumes nothing
        if self.settings is None:
            raise ConfigError([Problem(str(store.config.path), None, "no whatsapp: section in tix.yaml")])
        self.dir = store.path(*SPOOL)

    @property
    def batch_size(self) -> int:
        return int(self.spec.get("batch") or CHUNK)

    def names(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(n for n in os.listdir(self.dir) if n.endswith(".json") and not n.startswith("."))

    def chunks(self, limit=None):
        names = self.names()
        self.left = 0
        if limit is not None and len(names) > limit:
            self.left = len(names) - max(limit, 0)
            names = names[:max(limit, 0)]
        self.total = len(names)
        d = str(self.dir)
        for i in range(0, len(names), self.batch_size):
            chunk = []
            for name in names[i:i + self.batch_size]:
                path = f"{d}/{name}"
                try:
                    body = read_regular(path)
                except FileNotFoundError:  # another fetch took it
                    continue
                except NotRegular as exc:
                    self.refused.append(f"source {self.name}: {exc} (tix follows no link out of the spool)")
                    continue
                meta = {"path": path, "where": f"spool/whatsapp/{name}"}
                chunk.append(RawItem(self.name, f"spool:{name}", body, meta))
            yield chunk

    def ack(self, items) -> None:
        items = as_list(items)
        for it in items:
            try:
                os.unlink(it.meta["path"])
            except FileNotFoundError:
                pass
        if items:
            fsync_path(self.dir)

    def close(self) -> None:
        if self.dir.is_dir():
            clean_temp(self.dir)


def demo_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "data" / "demo" / "whatsapp"


def load_demo(store) -> int:
    """For `tix demo`: add the demo `whatsapp:` section (if none) and spool the demo payloads.

    Returns the number of payloads spooled; `tix fetch` then ingests them.
    """
    src = demo_dir()
    if store.config.section("whatsapp") is None:
        cfg = store.path("tix.yaml")
        cfg.write_text(cfg.read_text(encoding="utf-8").rstrip("\n") + "\n\n" +
                       (src / "config.yaml").read_text(encoding="utf-8"), encoding="utf-8")
        store.reload_config()
    spool = store.path(*SPOOL)
    files = sorted(src.glob("*.json"))
    for i, f in enumerate(files):
        atomic_write(spool / f"{i:020d}-demo-{f.name}", f.read_bytes(), mode=0o600, sync_dir=False)
    if files:
        fsync_path(spool)
    return len(files)
