"""Idle cron runs cost nothing: `tix fetch`, `tix route`, `tix escalate` with nothing to do.

The console entry point (`main`) looks here first. A complete run of one of these commands
that succeeded leaves a stamp, `state/idle-COMMAND.json` (a cache): the signature of what it
read, taken BEFORE it ran (the log's last segment and size, tix.yaml, rules/, and for fetch
the maildir/mbox sources), and for escalate and fetch the earliest time anything could fall
due (an SLA clock warning or breaching, a WhatsApp window warning, an outbox retry). A later
run given nothing but global options (`--store`, `--as`) whose signature is the same, before
that time, exits 0 at once, before Typer, DuckDB, pyarrow, numpy or the mail parser load.

Anything else is a full run: a missing, unreadable or different stamp, any other option
(`-v`, `--dry-run`, `--now`, …), an IMAP source or a `whatsapp:` section (fetch: those need
the network to know), an access rule that refuses the user. Writes change the log's size,
so a stamp never outlives the state it was taken in. `TIX_IDLE_DEBUG=1` prints one line on
stderr when the idle exit is taken.
"""
from __future__ import annotations

import json
import os
import sys

COMMANDS = ("fetch", "route", "escalate")
VERSION = 1
_VALUE_OPTIONS = ("--store", "-s", "--as")


def main() -> None:
    """Console entry point: the idle exit when it applies, else the full command line."""
    if idle_exit(sys.argv[1:]):
        sys.exit(0)
    from tix.cli import main as cli_main

    cli_main()


def parse(argv: list[str]) -> tuple[str, str | None, str | None] | None:
    """(command, --store, --as) when argv is one idle command and global options only, else None."""
    cmd = store = as_user = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _VALUE_OPTIONS:
            if i + 1 >= len(argv):
                return None
            i += 1
            value = argv[i]
        elif arg.startswith(("--store=", "--as=")):
            arg, _, value = arg.partition("=")
        elif arg in COMMANDS and cmd is None:
            cmd, value = arg, None
        else:
            return None
        if arg == "--as":
            as_user = value
        elif arg in ("--store", "-s"):
            store = value
        i += 1
    return (cmd, store, as_user) if cmd else None


def idle_exit(argv: list[str]) -> bool:
    """True when the command in argv has nothing to do (its stamp is current)."""
    parsed = parse(argv)
    if parsed is None:
        return False
    cmd, path, as_user = parsed
    try:
        from tix import access
        from tix.store import Store

        store = Store.open(path)
        if not current(store, cmd):
            return False
        access.authorize(store, cmd, as_user)  # a refused user gets the full run and its error
        if access.rule_for(cmd).audit and store.config.setting("audit_reads"):
            return False
    except Exception:  # noqa: BLE001 - the idle exit is an optimisation: any doubt means the full run
        return False
    if os.environ.get("TIX_IDLE_DEBUG"):
        sys.stderr.write(f"tix {cmd}: nothing to do (idle)\n")
    return True


# -- the stamp ---------------------------------------------------------------------------------------
def _stat(path) -> list | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode]


def signature(store, cmd: str) -> dict | None:
    """What a run of `cmd` reads, as stats; None when the command cannot have an idle exit."""
    from tix.store.log import SEGMENT_SUFFIX

    events = store.path("events")
    try:
        segs = sorted(n for n in os.listdir(events) if n.endswith(SEGMENT_SUFFIX))
    except OSError:
        segs = []
    files = {"events/": _stat(events), "tix.yaml": _stat(store.path("tix.yaml")), "rules/": _stat(store.path("rules"))}
    if segs:
        files["events/" + segs[-1]] = _stat(events / segs[-1])
    try:
        rules = sorted(os.listdir(store.path("rules")))
    except OSError:
        rules = []
    for name in rules:
        files["rules/" + name] = _stat(store.path("rules", name))
    if cmd == "fetch":
        sources = _sources(store)
        if sources is None:
            return None
        files.update(sources)
    return {"segments": len(segs), "files": files}


def _sources(store) -> dict | None:
    """fetch: stats of the maildir and mbox sources; None with an IMAP source or WhatsApp."""
    from pathlib import Path

    cfg = store.config
    if cfg.section("whatsapp") is not None:
        return None
    out = {}
    for spec in cfg.section("channels", []) or []:
        kind = spec.get("type")
        if kind not in ("maildir", "mbox"):
            return None
        p = Path(os.path.expanduser(str(spec.get("path"))))
        p = p if p.is_absolute() else store.root / p
        if kind == "mbox":
            out[f"source:{p}"] = _stat(p)
        else:
            for sub in ("", "new", "cur"):
                out[f"source:{p / sub}"] = _stat(p / sub)
    return out


def _path(store, cmd: str):
    return store.path("state", f"idle-{cmd}.json")


def current(store, cmd: str) -> bool:
    """Is the stamp of `cmd` there, for the store as it is now, and not yet due?"""
    from tix.store.log import iso, utcnow

    try:
        data = json.loads(_path(store, cmd).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return False
    sig = signature(store, cmd)
    if sig is None or data.get("signature") != json.loads(json.dumps(sig)):
        return False
    until = data.get("until")
    return until is None or iso(utcnow()) < until


def taken(store, cmd: str) -> dict | None:
    """The signature to stamp with, taken before the run (None: no idle exit for this store).
    The old stamp goes first: a run killed half way leaves none, and the next run is full."""
    try:
        _path(store, cmd).unlink(missing_ok=True)
        return signature(store, cmd)
    except Exception:  # noqa: BLE001 - a cache: no stamp rather than a failed command
        return None


def stamp(store, cmd: str, sig: dict | None, until: str | None = None, idle: bool = True) -> None:
    """After a complete, successful run: record `sig` (taken before it) and the earliest time
    anything could fall due (ISO UTC, None: never without a new event). With `idle` False,
    or no `sig`, the stamp is removed so the next run is full."""
    from tix.store.files import atomic_write

    path = _path(store, cmd)
    try:
        if sig is None or not idle:
            path.unlink(missing_ok=True)
            return
        atomic_write(path, json.dumps({"version": VERSION, "signature": sig, "until": until}).encode())
    except OSError:
        pass  # a cache: the next run is simply a full one


def earliest(*times: str | None) -> str | None:
    given = [t for t in times if t]
    return min(given) if given else None


def outbox_until(store, purposes=None) -> tuple[bool, str | None]:
    """(stampable, earliest next try) of the items still queued: an item due now (no next try)
    leaves nothing to stamp; items given up wait for a person."""
    from tix.outbox import items

    tries = []
    for it in items(store, purposes=purposes):
        if not it.get("next_try"):
            return False, None
        tries.append(it["next_try"])
    return True, earliest(*tries)
