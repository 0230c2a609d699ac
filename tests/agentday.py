"""Shared fixture of the agent's-day tests (issue 13): a store with an outbound address (replies
are only queued: `--no-send`), a maildir the customer writes to, and ticket #1 from Sari by email.

A test module makes its `desk` fixture with `make_desk(store, tmp_path, tix)`.
"""
from __future__ import annotations

from tests.plugins.email import add_config, make_mail

T0 = "2026-11-20T03:00:00Z"  # every command runs at a fixed time unless a test says otherwise


def make_desk(store, tmp_path, tix):
    md = tmp_path / "maildir"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    add_config(store, "outbound:\n  host: 127.0.0.1\n  port: 9\n  security: plain\n"
                      "  from: \"Toko Support <support@toko.example>\"\n"
                      f"channels:\n  - name: inbox\n    type: maildir\n    path: {md}\n    after: seen\n"
                      "    address: support@toko.example\n    team: support\n")
    store.md, store.n = md, 0
    run(tix, "new", "Paket belum sampai", "--channel", "email", "--email", "sari@pelanggan.example",
        "--name", "Sari", "--team", "support")
    return store


def run(tix, *args, at: str = T0, check: int | None = 0, **kw):
    """`tix ARGS` at time `at` (TIX_NOW); asserts the exit code unless check=None."""
    env = {"TIX_NOW": at, **kw.pop("env", {})}
    return tix(*args, env=env, check=check, **kw)


def customer_writes(store, tix, number: int = 1, body: str = "Masih belum sampai.", at: str = T0,
                    frm: str = "Sari <sari@pelanggan.example>"):
    """The customer answers on ticket `number` (subject tag), fetched into the store."""
    store.n += 1
    raw = make_mail(subject=f"Re: Paket belum sampai [#{number}]", body=body, frm=frm)
    (store.md / "new" / f"{store.n:05d}.test").write_bytes(raw)
    run(tix, "fetch", "--no-send", at=at)


def events(store, kind=None) -> list[dict]:
    return [ev for ev, _ in store.log.read() if kind is None or ev["type"] == kind]


def status(store, number: int = 1) -> str:
    store.reload_config()
    return store.read().ticket(number)["status"]


def via(ev: dict) -> str:
    """The command of an event, without the `(admin X as Y)` note that `--as` adds (tix.access)."""
    return ev["via"].split(" (admin ")[0]
