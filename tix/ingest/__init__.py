"""Intake: every inbound item, from any channel, becomes a ticket, a reply on the right
ticket, a status, or a quarantine entry. Never lost, never duplicated, whatever the item.

`fetch_all()` reads like the pipeline, for each source (the `channels:` of tix.yaml, then
the WhatsApp spool), one chunk at a time::

    source.chunks()                     fetch       tix.channels.mail.{imap,maildir,mbox}, tix.channels.whatsapp.spool
      -> step.decode()                  decode      parse workers (mail), payload envelope (WhatsApp)
      -> Intake.take(item)              intake      de-duplicate, contacts, thread/reopen, events (all or nothing)
      -> Intake.commit()                store       raw files + blobs synced, then the events appended (log fsync)
      -> source.ack(chunk)              acknowledge flag / move / delete / cursor / spool file removed

then downloads pending WhatsApp media (outside the lock) and records it. Fetch runs in the
prefetch thread, a chunk or two ahead; store and acknowledge in the committer thread (one
chunk at a time, in order), while this thread takes the next chunk in.

Modules: `intake` (the run and the rules every channel shares: keys, contacts, threading,
the reopen window, savepoint/rollback, quarantine), `mail` and `whatsapp` (each channel's
step), `index` (the message index: keys, Message-IDs/wamids -> tickets, statuses),
`savepoint`, `files` (raw packs and blobs, one sync per chunk), `parsing` (parse workers
and the prefetch thread).

Crash safety (DESIGN.md invariants 1, 2, 6): an item is acknowledged at its source only
after its events are fsynced; the idempotency keys make a re-fetch after a crash a no-op;
an item that cannot be taken in is quarantined (fsynced) and then acknowledged like any
other, so it is never retried forever and never blocks the batch. The whole run holds the
store's write lock: an overlapping cron run waits, then exits 75 (StoreLocked).
"""
from __future__ import annotations

import functools
from datetime import datetime

from tix.channels import base
from tix.channels.base import FetchReport, RawItem
from tix.channels.mail import own_addresses
from tix.errors import ConfigError, Problem, StoreLocked, TixError
from tix.ingest.intake import Intake
from tix.store import quarantine

__all__ = ["fetch_all", "fetch_spool", "own_addresses", "replay", "replay_quarantined"]


def fetch_all(store, now: datetime | None = None, limit: int | None = None, sources=None,
              progress=None, media: bool = True) -> FetchReport:
    """Fetch every source (or those named in `sources`) into the store.

    Args:
        now: the time recorded on the events (default: the clock, `tix.store.log.utcnow`).
        limit: at most this many new messages in this run; the rest are counted in `left`.
        sources: names of sources to fetch (`channels:` names, `whatsapp`; default: all).
        progress: called as progress(source name, items done, total or None) after
            every chunk (the CLI draws a progress line with it on a terminal).
        media: also download pending WhatsApp media.
    Returns a FetchReport; a source that failed adds a line to `errors` (it never looks
    like an empty source). Raises StoreLocked when another writer holds the store.
    """
    report = FetchReport()
    specs = base.sources(store.config, sources)
    with store.writing(actor="system", via="tix fetch") as batch:
        run = Intake(store, batch, now, progress)
        try:
            failed = True
            try:
                budget = limit
                for spec in specs:
                    sub = fetch_source(run, spec, budget)
                    report.merge(sub, spec["name"])
                    if budget is not None:
                        budget -= sub.stored + sub.quarantined
                failed = False
            finally:
                run.close(failed)
            run.index.save(store, upto=batch)
            run.clean_quarantine()
            run.finish_refresh()  # a long run's tail, in a child (not in this process)
        finally:
            run.index.close()
    if media and any(spec["type"] == "whatsapp" for spec in specs):
        _media(store, report, now)
    return report


def fetch_source(run: Intake, spec: dict, budget: int | None) -> FetchReport:
    """One source, chunk by chunk: fetch -> decode -> intake -> store (fsync) -> acknowledge."""
    run.report = report = FetchReport()
    cap = spec.get("limit")
    if cap is not None:
        budget = int(cap) if budget is None else min(budget, int(cap))
    try:
        source = base.open_source(run.store, spec, known=run.index.skip)
    except StoreLocked:
        raise
    except Exception as exc:  # noqa: BLE001 - a source that cannot open is an error line
        report.errors.append(source_error(spec, exc))
        return report
    return take_source(run, source, spec, budget)


def take_source(run: Intake, source, spec: dict, budget: int | None = None) -> FetchReport:
    """An opened source (a `channels:` one, or an importer's) through the intake, chunk by chunk."""
    report = run.report
    step = run.step(source.channel)
    done = 0
    try:
        for chunk, decoded in step.decode(source, budget):  # fetch, decode
            for item, value in decoded:
                run.take(step, item, value, spec)  # de-duplicate, contacts, tickets, events
            # files synced, events appended and fsynced, and only then the chunk acknowledged
            # (flag / move / delete / cursor / spool file): in the committer thread, while
            # the next chunk is taken in
            run.commit(ack=functools.partial(source.ack, chunk))
            done += len(chunk)
            if run.progress is not None:
                run.progress(spec["name"], done, source.total)
        run.wait_commit()  # the last chunk
        report.left = source.left
        report.errors += source.refused
    except StoreLocked:
        raise
    except Exception as exc:  # noqa: BLE001 - the source failed: say so, keep what is stored
        run.wait_commit(raise_errors=False)  # (its own error may be the one being handled)
        run.commit()  # raises when a chunk's write failed
        report.errors.append(source_error(spec, exc))
    finally:
        run.wait_commit(raise_errors=False)  # before the source closes (an exception on its way)
        step.finish(source)
    return report


def source_error(spec: dict, exc: Exception) -> str:
    """One line naming the source (a TixError is already worded for a person)."""
    text = " ".join(str(exc).split())
    if not isinstance(exc, TixError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    label = f"source {spec['name']}:"
    return text if text.startswith(label) else f"{label} {text}"


def _media(store, report: FetchReport, now) -> None:
    from tix.ingest.whatsapp import fetch_media

    try:
        fetch_media(store, report, now)
    except StoreLocked:
        raise
    except Exception as exc:  # noqa: BLE001 - media is retried by the next run: an error line, not a crash
        report.errors.append(f"whatsapp media: {type(exc).__name__}: {exc}")


def fetch_spool(store, now: datetime | None = None, media: bool = True) -> FetchReport:
    """Only the WhatsApp spool (as `tix fetch --source whatsapp`). Raises ConfigError
    when tix.yaml has no `whatsapp:` section."""
    if store.config.section("whatsapp") is None:
        raise ConfigError([Problem(str(store.config.path), None, "no whatsapp: section in tix.yaml")])
    return fetch_all(store, now=now, sources=[base.WHATSAPP["name"]], media=media)


def replay(store, entry: dict, raw: bytes, now=None) -> None:
    """Take one quarantined item in again (raises, with the reason, if it still fails)."""
    with store.writing(actor="system", via="tix quarantine replay") as batch:
        run = Intake(store, batch, now)
        try:
            try:
                step = run.step(entry["kind"])
                item = RawItem(entry.get("source") or entry["kind"], entry.get("key"), raw, {})
                run.take(step, item, step.decode_one(item), step.replay_spec(entry), replay=True)
                run.commit()
            finally:
                run.close()
            run.index.save(store, upto=batch)
        finally:
            run.index.close()


def replay_quarantined(store, ids: list[str] | None = None, now=None) -> quarantine.ReplayReport:
    """`tix quarantine replay`: retry entries (all when `ids` is empty) through `replay`."""
    return quarantine.replay(store, ids, replay, now=now)
