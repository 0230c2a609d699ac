"""`tix import`: a shop's history, taken in through THE intake, without mailing anyone.

    source (importer)  ->  step.decode  ->  Intake.take  ->  Intake.commit  ->  (no ack: read only)

Each importer is a `tix.channels.base.Source` over an export (mbox, maildir, an IMAP folder
since a date, a WhatsApp chat export, another helpdesk's CSV/JSON) plus, where the export is
not mail, a small intake step; all of them go through `tix.ingest.intake.Intake`, so
contacts, threading, de-duplication, savepoints and quarantine are the live intake's.

What an import adds to live intake:

- **Original times.** Every item is taken in `at` its own time (the Date header, the chat
  line's time, the export's timestamps): its events carry it, and the reopen window is
  measured from it. Reports over imported history read those times.
- **Both sides.** A message from the shop (an address of the store, an agent, `--address`;
  in a chat export the shop's name) is an agent's reply: a `message.sent` event with
  `imported: true`, never an outbox item, so nothing is ever sent.
- **Idempotent and resumable.** Items carry the live intake's keys (Message-ID + content
  hash; a chat line's hash; the export's ticket and message ids); each chunk is fsynced
  before the next, so a rerun after kill -9 stores only what is missing.
- **Resolved history.** With `resolve_answered`, a ticket this import created whose last
  message is the shop's is set `resolved` at the time of that reply.
- **Nothing reaches people.** Imported tickets are tagged `imported`; `tix route` classifies
  and assigns them but sends nothing for messages older than `act_within` (issue 17).

Errors (a malformed line, an unknown date format, a mapping naming a missing column) are
one line each, `FILE:LINE: message`; the rest is imported and the command exits 1.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime

from tix.channels.base import FetchReport
from tix.errors import UsageError

KINDS = ("mbox", "maildir", "imap", "whatsapp", "helpdesk")
TAG = "imported"


class ExportStep:
    """The intake step of an export that is not mail (a chat, another helpdesk's rows): its
    items arrive already decoded by their Source, so decoding passes them through; a subclass
    sets `channel`, `ext`, `replay_type` and writes `take`."""

    channel = ext = replay_type = ""

    def __init__(self, run, source):
        self.run = run
        self.source = source
        self.last: dict[int, tuple[str, str]] = {}  # ticket -> ("in" | "out", time of its last message)

    def decode(self, source, budget):
        for chunk in source.chunks(budget):
            yield chunk, [(item, None) for item in chunk]

    def decode_one(self, item):
        return None

    def key_of(self, item, decoded) -> str:
        return item.key

    def replay_spec(self, entry: dict) -> dict:
        return {"name": entry.get("source") or f"import-{self.replay_type}", "type": self.replay_type}

    def finish(self, source) -> None:
        source.close()

    def close(self, failed: bool = False) -> None:
        pass


@dataclass
class ImportReport(FetchReport):
    replies: int = 0  # the shop's own messages, recorded as sent
    resolved: int = 0  # answered tickets set resolved
    dry_run: bool = False
    planned: list[dict] = field(default_factory=list)  # with dry_run: the tickets it would create

    def summary(self) -> str:
        verb = "would create" if self.dry_run else "created"
        return (f"{verb} {self.tickets_created} tickets, {self.stored - self.replies} customer messages, "
                f"{self.replies} replies; {self.resolved} resolved; {self.duplicates} already imported"
                + (f"; {self.quarantined} quarantined" if self.quarantined else ""))


class _DryRun(Exception):
    """Raised inside the batch of a dry run: it is taken back whole."""


def run_import(store, kind: str, path: str | None = None, *, since: datetime | None = None,
               mapping: str | None = None, address: str | None = None, folder: str | None = None,
               me: str | None = None, phone: str | None = None, resolve_answered: bool = False,
               dry_run: bool = False, now: datetime | None = None, progress=None) -> ImportReport:
    """Import one export into the store (see the module docstring).

    Args:
        kind: mbox, maildir, imap (then `path` names a `channels:` imap source, `since` the
            first day, `folder` the folder), whatsapp (a chat .txt or the .zip with media;
            `me`: the shop's name in it, `phone`: the customer's number), helpdesk (a CSV or
            JSON export; `mapping`: the YAML mapping file).
        address: the shop's own address in a mail export (mail from it is a reply).
        resolve_answered: set answered tickets of this import resolved.
        dry_run: do everything, write nothing; `planned` lists the tickets it would create.
        progress: called as progress(name, items done, total or None) after each chunk.
    Returns an ImportReport; its errors are one line each (exit 1 when any).
    """
    from tix.importers import sources

    if kind not in KINDS:
        raise UsageError(f"unknown import kind {kind!r}; kinds: {', '.join(KINDS)}")
    source, step_factory, spec = sources.open_import(store, kind, path, since=since, mapping=mapping,
                                                     address=address, folder=folder, me=me, phone=phone)
    report = ImportReport(dry_run=dry_run)
    try:
        _run(store, source, step_factory, spec, report, resolve_answered, dry_run, now, progress)
    except _DryRun:
        pass
    return report


def _run(store, source, step_factory, spec, report, resolve_answered, dry_run, now, progress) -> None:
    from tix.ingest import take_source
    from tix.ingest.files import Files
    from tix.ingest.intake import Intake

    with store.writing(actor="system", via="tix import") as batch:
        run = Intake(store, batch, now, progress)
        run.report = report
        source._known = run.index.skip  # the intake's keys: a known item is not read again
        tmp = None
        if dry_run:
            tmp = tempfile.TemporaryDirectory(prefix="tix-import-dry-")
            run.files = Files(tmp.name)  # raw copies and blobs go nowhere
            run.commit = lambda ack=None: None  # events stay pending, then are taken back (nothing acknowledged)
            run.quarantine = _dry_quarantine(report)  # named, not kept
        step = step_factory(run)
        if resolve_answered and hasattr(step, "resolve_gap"):  # a chat: split it where answered long ago
            from datetime import timedelta

            step.resolve_gap = timedelta(days=run.reopen_days("whatsapp"))
        run.use_step(step)
        failed = True
        try:
            take_source(run, source, spec)
            if resolve_answered:
                report.resolved = resolve(run, step)
            failed = False
        finally:
            run.close(failed)
            if tmp is not None:
                tmp.cleanup()
        if dry_run:
            report.planned = [_planned(ev) for ev in batch.pending if ev["type"] == "ticket.created"]
            run.index.close()  # nothing saved
            raise _DryRun()
        run.commit()
        run.index.save(store, upto=batch)
        run.index.close()


def _dry_quarantine(report):
    def quarantine(step, item, error: str, key: str | None = None) -> None:
        report.quarantined += 1
        report.errors.append(f"{item.where}: {' '.join(error.split())} (would be quarantined)")

    return quarantine


def _planned(ev: dict) -> dict:
    d = ev.get("data") or {}
    from tix.store.log import parse_ts

    return {"ticket": ev["ticket"], "created": parse_ts(ev["ts"]), "channel": d.get("channel"),
            "subject": d.get("subject"), "tags": ",".join(d.get("tags") or [])}


def resolve(run, step) -> int:
    """Set resolved every open ticket of the import whose last message is the shop's, at the
    time of that reply (an answered thread of the history). Tickets an interrupted earlier
    run imported are found by their tag, so a rerun finishes its work."""
    from tix import tickets
    from tix.store.log import parse_ts

    last = {n: ts for n, ts in _answered_before(run)}
    for number, (side, ts) in step.last.items():
        if side == "out":
            last[number] = ts
        else:
            last.pop(number, None)
    done = 0
    for number in sorted(last):
        row = run.row(number)
        if row is None or row["status"] not in ("new", "open", "pending"):
            continue
        since = len(run.batch.pending)
        run.at(parse_ts(last[number]))
        run.actor = "system"
        if tickets.set_fields(run.batch, row, {"status": "resolved"}, why="imported: the thread was answered"):
            run.stamp(since)
            done += 1
    return done


def _answered_before(run) -> list[tuple]:
    con = run.batch.reader.connect()
    try:
        return con.execute(
            "SELECT number, last_agent_at FROM tickets WHERE list_contains(tags, ?) AND status IN ('new', 'open', "
            "'pending') AND last_agent_at IS NOT NULL AND last_agent_at >= coalesce(last_customer_at, created_at)",
            [TAG]).fetchall()
    finally:
        con.close()


def env_path(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))
