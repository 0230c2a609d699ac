"""Merging and splitting tickets, recorded as events that the readers fold (the log is never rewritten).

`merge(batch, N, M)` (`tix merge N INTO M`) writes, in one batch::

    ticket.merged  ticket=N  {"into": M}                       what happened (the audit trail)
    ticket.tagged  ticket=M  {"add": N's tags M lacks}
    ticket.note    ticket=M  {"kind": "merged", "merged": N, "body": "#N was merged into this ticket"}
    ticket.note    ticket=N  {"kind": "merged", "into": M, "body": "Merged into #M"}
    ticket.updated ticket=N  {"set": {"status": "closed", "fields.merged_into": M}}

N's messages, notes and attachments stay where the log put them; every reader that shows a
conversation (`conversation`: `tix show`, `tix attachment`), the search index
(tix.store.search) and the message index (tix.ingest.index: a Message-ID, wamid or `[#N]`
of N now threads to M) fold the merge, so they appear on M. A merged ticket cannot be
merged again, nor be merged into; a merge is undone only by a new split.

`split(batch, N, seqs)` (`tix split N --messages SEQ…`) moves messages (named by the seq of
their event, shown by `tix show` as `[msg SEQ]`) to a new ticket of the same contact and
channel::

    ticket.created ticket=NEW {… , "fields": {"split_from": N}}
    ticket.split   ticket=N   {"into": NEW, "messages": [SEQ…], "message_ids": [Message-IDs, wamids]}
    ticket.note    ticket=NEW {"kind": "split", "split_from": N, "messages": [SEQ…], "body": …}
    ticket.note    ticket=N   {"kind": "split", "into": NEW, "body": …}

Replies to a split-out message then thread to NEW. Splitting out every message is refused.
"""
from __future__ import annotations

import orjson

from tix.errors import UsageError
from tix.store import Batch
from tix.tickets.core import create_ticket, get_ticket, set_fields, tag

MESSAGES = ("message.received", "message.sent")
CARRIED = (*MESSAGES, "ticket.note", "message.media")  # what moves with a merge


def merged_into(row: dict) -> int | None:
    value = orjson.loads(row.get("fields") or "{}").get("merged_into")
    return int(value) if value is not None else None


def merge(batch: Batch, source: int, target: int, why: str | None = None) -> None:
    """Merge ticket `source` into `target` (see the module docstring); UsageError when refused."""
    if source == target:
        raise UsageError(f"cannot merge #{source} into itself")
    src, dst = get_ticket(batch, source), get_ticket(batch, target)
    done = merged_into(src)
    if done is not None:
        raise UsageError(f"#{source} was already merged into #{done}")
    further = merged_into(dst)
    if further is not None:
        raise UsageError(f"cannot merge into #{target}: it was merged into #{further} (merge into #{further})")
    batch.emit("ticket.merged", ticket=source, data={"into": target}, why=why)
    tag(batch, dst, add=[t for t in src.get("tags") or () if t not in (dst.get("tags") or ())],
        why=f"merged from #{source}")
    batch.emit("ticket.note", ticket=target, data={"kind": "merged", "merged": source,
                                                   "body": f"#{source} was merged into this ticket."})
    batch.emit("ticket.note", ticket=source, data={"kind": "merged", "into": target,
                                                   "body": f"Merged into #{target}."})
    set_fields(batch, src, {"status": "closed", "fields.merged_into": target}, why=why or f"merged into #{target}")


def split(batch: Batch, source: int, seqs: list[int], why: str | None = None) -> int:
    """Move the messages `seqs` of ticket `source` to a new linked ticket; returns its number."""
    row = get_ticket(batch, source)
    events = conversation(batch.store, source)
    messages = {ev["seq"]: ev for ev in events if ev["type"] in MESSAGES}
    wanted = list(dict.fromkeys(seqs))
    unknown = [s for s in wanted if s not in messages]
    if unknown:
        shown = ", ".join(str(s) for s in sorted(messages)) or "none"
        raise UsageError(f"#{source} has no message {unknown[0]} (its messages: {shown}; see tix show {source})")
    if not wanted:
        raise UsageError("name the messages to split out: --messages SEQ (tix show shows [msg SEQ])")
    if len(wanted) == len(messages):
        raise UsageError(f"cannot split out every message of #{source}: nothing would be left on it")
    first = messages[min(wanted)]
    subject = (first.get("data") or {}).get("subject") or row.get("subject") or "(no subject)"
    number = create_ticket(batch, subject, channel=row.get("channel") or "other", contact=row.get("contact"),
                           priority=row.get("priority") or "normal", status="open", team=row.get("team"),
                           inbox=row.get("inbox"), fields={"split_from": source},
                           why=why or f"split from #{source}")
    ids = [m for m in (_message_id(messages[s]) for s in wanted) if m]
    batch.emit("ticket.split", ticket=source, data={"into": number, "messages": wanted, "message_ids": ids}, why=why)
    batch.emit("ticket.note", ticket=number, data={
        "kind": "split", "split_from": source, "messages": wanted,
        "body": f"Split from #{source}: {len(wanted)} message(s)."})
    batch.emit("ticket.note", ticket=source, data={"kind": "split", "into": number,
                                                   "body": f"{len(wanted)} message(s) split out to #{number}."})
    return number


def _message_id(ev: dict) -> str | None:
    data = ev.get("data") or {}
    if data.get("message_id"):
        return data["message_id"]
    return data.get("message") if data.get("channel") == "whatsapp" else None


# -- reading: the conversation as people see it ------------------------------------------------
def conversation(store, number: int, own: list[dict] | None = None, _depth: int = 0,
                 _keep_split: bool = False) -> list[dict]:
    """The events of ticket `number` with merges and splits folded, in log order: its own
    (`own`, when the caller has read them already), those of each ticket merged into it (up
    to the merge), the messages split into it (and their media), without the messages split
    out of it. A ticket without merges or splits costs no more than its own events."""
    own = store.events_for(ticket=number) if own is None else own
    out: dict[int, dict] = {}
    gone: set[int] = set()
    for ev in own:
        data = ev.get("data") or {}
        out[ev["seq"]] = ev
        if ev["type"] == "ticket.split":
            gone.update(data.get("messages") or ())
        elif ev["type"] == "ticket.note" and data.get("kind") == "merged" and data.get("merged") and _depth < 20:
            for sub in conversation(store, int(data["merged"]), None, _depth + 1):
                if sub["seq"] < ev["seq"] and sub["type"] in CARRIED:
                    out.setdefault(sub["seq"], sub)
        elif ev["type"] == "ticket.note" and data.get("kind") == "split" and data.get("split_from"):
            moved = set(data.get("messages") or ())
            there = conversation(store, int(data["split_from"]), None, _depth + 1, True) if _depth < 20 else []
            wamids = {(sub.get("data") or {}).get("message") for sub in there if sub["seq"] in moved}
            for sub in there:
                if sub["seq"] in moved or (sub["type"] == "message.media"
                                           and (sub.get("data") or {}).get("message") in wamids):
                    out.setdefault(sub["seq"], sub)
    return [out[s] for s in sorted(out) if _keep_split or s not in gone]


def other_open_tickets(reader, row: dict) -> list[dict]:
    """The contact's other open tickets (new, open, pending), newest first."""
    if row.get("contact") is None:
        return []
    con = reader.connect()
    try:
        cur = con.execute("SELECT number, status, subject, updated_at FROM tickets WHERE contact = ? AND number != ? "
                          "AND status IN ('new', 'open', 'pending') ORDER BY number DESC LIMIT 20",
                          [row["contact"], row["number"]])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
