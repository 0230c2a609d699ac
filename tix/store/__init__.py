"""The store: a directory of plain files that holds everything tix knows.

This package owns every byte under a store directory: finding and creating it
(`store`), the event log and its times (`log`), the one atomic file write (`files`), the
write lock (`lock`), writing events (`batch`), folding them into current state (`fold` in
Python, `sqlfold` in DuckDB), the Parquet snapshot (`snapshot`), reading state back
(`reader`) and the DuckDB views every report and query reads (`views`).

This docstring is a contract. Other tools (DuckDB, Spark, a backup script, a future
tix) read these files; changing anything below needs a new `format` and a migration.

Layout::

    tix.yaml                   configuration (secrets by env var or 0600 file name only)
    rules/ templates/ reports/ the site's own copies, created from the package's examples
    events/YYYY-MM.jsonl       the event log, append-only monthly segments (UTC month)
    messages/…                 raw inbound/outbound messages exactly as received/sent
    blobs/sha256/ab/<hex>      attachments, content-addressed, stored once
    snapshot/                  Parquet cache of current state (see tix.store.snapshot)
    state/                     channel cursors, counters, `lock` (the write lock)
    spool/whatsapp/            webhook payloads waiting for `tix fetch`
    quarantine/                inputs that could not be processed, with the error beside them

Event lines. Each line of a segment is one JSON object followed by `\\n`::

    {"seq": 1043, "ts": "2026-11-24T07:57:05.123456Z", "actor": "user:alice",
     "via": "tix set", "type": "ticket.updated", "ticket": 1042,
     "data": {"set": {"status": "pending"}, "old": {"status": "open"}}, "why": "…"}

- `seq`: integer, strictly increasing by one across the whole log (all segments).
- `ts`: UTC, ISO 8601 with microseconds and `Z`.
- `actor`: `user:NAME`, `rule:NAME`, `sla:POLICY`, `channel:NAME` or `system`.
- `via`: the command (or rule/job) that made the change.
- `type`: what happened; `ticket` and/or `contact` name what it happened to;
  `data` is the change itself; `why` (optional) the reason given by the actor.
- Types folded into state (`tix.store.fold`): `ticket.created` (data: initial fields),
  `ticket.updated` (`set` new values, `old` previous ones; custom fields as
  `fields.NAME`), `ticket.tagged` (`add`, `remove`), `ticket.note` (`body`),
  `message.received` / `message.sent` (one message; `auto: true` for auto-replies),
  `ticket.routed` (`upto`: the seq routed up to), `contact.created`, `contact.updated`
  (`set`, `add_emails`, `remove_emails`, `add_phones`, `remove_phones`),
  `contact.merged` (`into`), `contact.erased`. Other types are kept in the log and the
  `events` view but change no ticket field (they do bump `updated_at`, except the
  bookkeeping types `ticket.routed`, `outbox.sent`, `outbox.failed`, `message.status`).
- Data of the message events, as written by the channels: `message.received` has
  `message` (the idempotency key), `channel`, `message_id`, `from`, `from_name`, `to`,
  `cc`, `subject`, `text` (new text), `text_full`, `html`, `raw` (path under `messages/`;
  with `raw_span` [offset, length] a byte range of a pack file: `channels.base.read_raw`),
  `attachments` (`name`, `type`, `size`, `sha256` or null when over the size limit),
  `auto`/`auto_reason`, `language`, `inbox`, `date`, `source`, `source_key`, `reply_to`,
  `calendar`, `text_truncated`; WhatsApp adds `wa_type`, `context`, `from_user_id`.
  `message.sent` has `outbox`, `state`, `channel`, `message_id`, `from`, `to`, `cc`,
  `subject`, `text`, `raw`, `auto`, `template`, `payload` (`state: queued`: written to
  the outbox, counted as sent from then on). `message.quarantined` (no
  ticket: `channel`, `source`, `source_key`, `message`, `quarantine`, `error`),
  `message.unmatched` (a bounce of no known ticket), `message.media` (a WhatsApp download).
  `ticket.note` kinds: `intake` (typed in by an agent), `bounce`, `linked`, `send_failed`.
- Stage events: `rule.auto_reply`, `rule.failed` (rules), `sla.step`, `sla.breached`
  (SLA). The outbox (everything tix sends; the full vocabulary is in `tix.outbox`):
  `outbox.queued` (a notification or report mail; no ticket: `outbox`, `purpose`, `kind`
  (the channel), `key`, `target`, `subject`, `body`, `payload`, `ticket`, `raw`),
  `outbox.sent` (`outbox`, `channel`, `attempt`, and what the channel answered),
  `outbox.failed` (`outbox`, `channel`, `attempt`, `error`, `permanent`, `next_try`);
  the last two name the ticket of a customer message. Older stores wrote `id` for
  `outbox` and `next_retry` for `next_try`; readers accept both.

Segments are named after the UTC month of the first event written to them and are only
ever appended to; a writer appends to the newest segment, or starts the segment of the
current month when that is newer. A line without its trailing newline is a torn write:
readers ignore it, and the next writer moves its bytes to `quarantine/` and truncates it
before appending. Writers hold `state/lock` (see tix.store.lock) and fsync every batch
before acknowledging anything at a source.
"""
from __future__ import annotations

from tix.store.batch import Batch, DryBatch
from tix.store.reader import Reader
from tix.store.store import CONFIG_NAME, SUBDIRS, Store, default_actor, examples_dir, find_store

__all__ = ["CONFIG_NAME", "SUBDIRS", "Batch", "DryBatch", "Reader", "Store", "default_actor", "examples_dir",
           "find_store"]
