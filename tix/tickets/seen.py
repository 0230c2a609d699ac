"""Collision detection: what each agent last saw of a ticket, and refusing to act on a stale view.

`tix show N` records, for the agent running it (the actor: `--as` or the login name), where
the event log ended when the ticket was shown. `tix reply`, `tix note` and `tix close` then
check, under the store's write lock, whether ticket N gained a customer message or another
agent's (not automatic) reply after that point; if so they refuse with one line naming who
did what and when (`Collision`, exit 1), unless `--force`. An agent who never showed the
ticket is not checked (scripts and the rules act without looking). After a checked action
the marker moves to the end of the log: the agent has now acted on everything before it.

The markers are per agent, one small file each, `state/seen/<login>.json` (not events: a
`show` is not a change to the ticket, and one event per look would swell the log):

    {"<ticket>": [seq, segment, offset], ...}

`seq` is the last event of the log when the ticket was shown; `segment`/`offset` the log
position after it, so that the check reads only the log written since (the position is
verified with `seq_before`; after a rewrite of the log it reads from the start). The file is
replaced atomically (tix.store.files.atomic_write) under its own lock file, and keeps the
`MAX_MARKERS` most recent tickets of that agent.
"""
from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import orjson

from tix.errors import EXIT_PARTIAL, TixError
from tix.model import fmt_phone
from tix.store.files import atomic_write
from tix.store.lock import WriteLock
from tix.store.log import Position, parse_ts, seq_before

MAX_MARKERS = 5000
_SAFE = re.compile(r"[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]{0,63}")


class Collision(TixError):
    """The ticket changed since the agent last showed it (exit 1; `--force` acts anyway)."""

    exit_code = EXIT_PARTIAL


def login_of(actor: str) -> str:
    """`user:ani` -> `ani`; any other actor as it is."""
    return actor.split(":", 1)[1] if actor.startswith("user:") else actor


def _path(store, actor: str):
    login = login_of(actor)
    name = login if _SAFE.fullmatch(login) else "x-" + login.encode().hex()[:120]
    return store.path("state", "seen", f"{name}.json")


def load(store, actor: str) -> dict:
    """The agent's markers ({} when there are none or the file is unreadable)."""
    try:
        data = orjson.loads(_path(store, actor).read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def log_end(store) -> list:
    """The end of the log now, as a marker: [seq of its last event, segment, offset]."""
    end = store.log.end()
    seq = seq_before(store.log.dir / end.segment, end.offset) if end.segment else None
    return [seq or 0, end.segment, end.offset]


def mark(store, actor: str, ticket: int, at: list | None = None, only_if_known: bool = False) -> None:
    """Record that `actor` has seen ticket `ticket` up to `at` (a `log_end`; default: now).

    `only_if_known`: only move a marker the agent already has (after an action)."""
    path = _path(store, actor)
    with WriteLock(path.with_suffix(".lock"), 10.0):
        data = load(store, actor)
        if only_if_known and str(ticket) not in data:
            return
        data.pop(str(ticket), None)
        data[str(ticket)] = at or log_end(store)
        if len(data) > MAX_MARKERS:
            data = dict(sorted(data.items(), key=lambda kv: kv[1][0])[-MAX_MARKERS:])
        atomic_write(path, orjson.dumps(data))


def flush_marker(batch) -> list | None:
    """Commit the batch of an agent's action now (still under the lock) and return the marker
    of the log's end after it (None if the batch had no events), for `mark(only_if_known=True)`."""
    pos = batch.flush()
    return [batch.seq, pos.segment, pos.offset] if pos is not None else None


def check(store, row: dict, actor: str) -> None:
    """Raise `Collision` if ticket `row` gained a customer message or another agent's reply
    since `actor` last showed it. Call it under the write lock, with the row as the action's
    batch reads it, so that nothing can arrive between the check and the action."""
    marker = load(store, actor).get(str(row["number"]))
    if not (isinstance(marker, list) and len(marker) == 3):
        return
    seen_seq, segment, offset = marker
    if (row.get("last_seq") or 0) <= seen_seq:
        return  # nothing about the ticket since
    since = Position(segment, offset)
    path = store.log.dir / str(segment)
    if not segment or not path.is_file() or seq_before(path, offset) != seen_seq:
        since = None  # the log was rewritten (an erasure): read it all
    key = b'"ticket":%d,' % row["number"]
    for raw, _seg, _off in store.log.read_raw(since):
        if key not in raw:
            continue
        try:
            ev = orjson.loads(raw)
        except ValueError:
            continue
        if ev.get("ticket") == row["number"] and ev.get("seq", 0) > seen_seq and _collides(ev, actor):
            raise Collision(_message(store, row["number"], ev))


def _collides(ev: dict, actor: str) -> bool:
    data = ev.get("data") or {}
    if ev["type"] == "message.received":
        if data.get("wa_type"):  # a WhatsApp reaction or deletion says nothing new to answer
            from tix.ingest.whatsapp import PASSIVE

            return data["wa_type"] not in PASSIVE
        return True
    return ev["type"] == "message.sent" and not data.get("auto") and ev.get("actor") != actor


def _message(store, number: int, ev: dict) -> str:
    data = ev.get("data") or {}
    when = parse_ts(ev["ts"]).astimezone(ZoneInfo(store.config.setting("timezone"))).strftime("%Y-%m-%d %H:%M")
    if ev["type"] == "message.received":
        sender = fmt_phone(data.get("from")) if data.get("channel") == "whatsapp" else data.get("from")
        who = f"the customer ({sender})" if sender else "the customer"
        did = "wrote"
    else:
        who, did = login_of(str(ev.get("actor") or "another agent")), "replied"
    return (f"#{number}: {who} {did} at {when}, after you last showed it; "
            f"read it with: tix show {number} (or use --force)")
