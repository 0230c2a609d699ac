"""The store: a directory of plain files that holds everything tix knows.

This package owns every byte under a store directory: finding and creating it
(`store`), the event log and its times (`log`), the one atomic file write (`files`), the
write lock (`lock`), writing events (`batch`), folding them into current state (`fold` in
Python, `sqlfold` in DuckDB), the Parquet snapshot (`snapshot`), reading state back
(`reader`), the DuckDB views every report and query reads (`views`), and verifying the
whole store (`check`: `tix check`, and `tix rebuild` naming damaged lines).

This docstring is a contract. Other tools (DuckDB, Spark, a backup script, a future
tix) read these files; changing anything below needs a new `format` and a migration.

Layout::

    tix.yaml                   configuration (secrets by env var or 0600 file name only)
    rules/ templates/ reports/ the site's own copies, created from the package's examples
    events/YYYY-MM.jsonl       the event log, append-only monthly segments (UTC month)
    messages/…                 raw inbound/outbound messages exactly as received/sent
    blobs/sha256/ab/<hex>      attachments, content-addressed, stored once
    snapshot/                  Parquet cache of current state (see tix.store.snapshot)
    snapshot/history/          Parquet cache of ticket history for reports, one row per event
                               that matters to them (see tix.store.history: its own meta.json,
                               parts and format; rebuilt from the log when missing or damaged)
    snapshot/charts/<sha256>.svg   the HTML reports' charts by a digest of what they show (a cache:
                               tix.reports.charts; any file may be removed at any time)
    state/                     channel cursors, counters, `lock` (the write lock),
                               `log-format.json` (where the log's commit marks begin: "Batches"),
                               `seen/LOGIN.json` (what each agent last showed: tix.tickets.seen),
                               `search.sqlite` (the full-text index, a cache: tix.store.search),
                               `rewrite/` (an erasure or purge under way: tix.store.rewrite)
    spool/whatsapp/            webhook payloads waiting for `tix fetch`
    quarantine/                inputs that could not be processed, with the error beside them
    access/YYYY-MM.jsonl       with `audit_reads: true`: who read what, one JSON line per read,
                               appended without the lock (format: tix.accesslog)

Event lines. Each line of a segment is one JSON object followed by `\\n`::

    {"seq": 1043, "ts": "2026-11-24T07:57:05.123456Z", "actor": "user:alice",
     "via": "tix set", "type": "ticket.updated", "ticket": 1042,
     "data": {"set": {"status": "pending"}, "old": {"status": "open"}}, "why": "…"}

- `seq`: integer, strictly increasing by one across the whole log (all segments).
- `ts`: UTC, ISO 8601 with microseconds and `Z`.
- `actor`: `user:NAME`, `rule:NAME`, `sla:POLICY`, `channel:NAME` or `system`.
- `via`: the command (or rule/job) that made the change; under `--as` it ends with
  ` (admin NAME as OTHER)`, the admin who acted for `actor` (tix.access).
- `type`: what happened; `ticket` and/or `contact` name what it happened to;
  `data` is the change itself; `why` (optional) the reason given by the actor.
- `commit`: `true` on the last line of each batch only, as its last key (see "Batches");
  readers take it off (`tix.store.log.unmark`): it is not part of the event.
- Types folded into state (`tix.store.fold`): `ticket.created` (data: initial fields),
  `ticket.updated` (`set` new values, `old` previous ones; custom fields as
  `fields.NAME`), `ticket.tagged` (`add`, `remove`), `ticket.note` (`body`),
  `message.received` / `message.sent` (one message; `auto: true` for auto-replies),
  `ticket.routed` (`upto`: the seq routed up to), `contact.created`, `contact.updated`
  (`set`, `add_emails`, `remove_emails`, `add_phones`, `remove_phones`),
  `contact.merged` (`into`), `contact.erased` (the contact's name, emails and phones
  emptied, `fields` becomes `{"erased": TS}`; data: counts and `rewrite`, the id of the
  rewrite that erased it; see tix.tickets.erase). `ticket.merged` (`into`) and `ticket.split`
  (`into`, `messages`: seqs, `message_ids`) change no field themselves (the merge's status
  and `fields.merged_into` are a `ticket.updated`); readers fold them (tix.tickets.merge).
  Other types are kept in the log and the
  `events` view but change no ticket field (they do bump `updated_at`, except the
  bookkeeping types `ticket.routed`, `outbox.sent`, `outbox.failed`, `message.status`).
- Data of the message events, as written by the channels: `message.received` has
  `message` (the idempotency key), `channel`, `message_id`, `from`, `from_name`, `to`,
  `cc`, `subject`, `text` (new text; the whole text is the raw message's: `parse.stored_text`;
  events before issue 16 also carry `text_full`), `html`, `raw` (path under `messages/`;
  with `raw_span` [offset, length] a byte range of a pack file: `channels.base.read_raw`),
  `attachments` (`name`, `type`, `size`, `sha256` or null when over the size limit),
  `auto`/`auto_reason`, `language`, `inbox`, `date`, `source`, `source_key`, `reply_to`,
  `calendar`, `text_truncated`; WhatsApp adds `wa_type`, `context`, `from_user_id`.
  `message.sent` has `outbox`, `state`, `channel`, `message_id`, `from`, `to`, `cc`,
  `subject`, `text`, `raw`, `auto`, `template`, `payload`, `attachments` (as inbound, each
  with its `sha256` blob: `tix reply --attach`) (`state: queued`: written to
  the outbox, counted as sent from then on). Imported history (`tix.importers`): both
  carry `imported: true`; an imported `message.sent` has no `outbox` (it was never sent
  by tix), and the event's `ts` is the message's own time. `message.quarantined` (no
  ticket: `channel`, `source`, `source_key`, `message`, `quarantine`, `error`),
  `message.unmatched` (a bounce of no known ticket), `message.media` (a WhatsApp download);
  `message.sent` with `from_phone: true` and no `outbox` is a WhatsApp message the business
  sent from the phone app. WhatsApp notices `whatsapp.system`, `whatsapp.preference`,
  `whatsapp.call` (on the contact, and the ticket of its conversation if any) and
  `whatsapp.account`, `whatsapp.error` (no ticket): data in `tix.ingest.whatsapp`.
  `ticket.note` kinds: `intake` (typed in by an agent), `bounce`, `linked`, `send_failed`,
  `merged` (`merged`: the ticket merged in, or `into`), `split` (`split_from`, `messages`, or `into`),
  `agent_mail` (an agent's `#note` by mail), `agent_mail_refused` (an agent's mail not acted on).
  `agentmail.received` (actor `user:AGENT`): an agent's reply by mail (tix.ingest.agentmail):
  `message`/`source_key` (its idempotency keys), `source`, `channel`, `message_id`, `from`,
  `subject`, `agent`, `seq` (of its reply token), `command`, `outcome`, `text`, `raw`, `raw_span`.
- Stage events: `rule.auto_reply`, `rule.failed` (rules), `sla.step` (`history: true`:
  a breach older than `act_within`, recorded, nobody notified), `sla.breached` (SLA).
  The outbox (everything tix sends; the full vocabulary is in `tix.outbox`):
  `outbox.queued` (a notification or report mail; no ticket: `outbox`, `purpose`, `kind`
  (the channel), `key`, `target`, `subject`, `body`, `payload`, `ticket`, `raw`),
  `outbox.sent` (`outbox`, `channel`, `attempt`, and what the channel answered),
  `outbox.failed` (`outbox`, `channel`, `attempt`, `error`, `permanent`, `next_try`);
  the last two name the ticket of a customer message. Older stores wrote `id` for
  `outbox` and `next_retry` for `next_try`; readers accept both.

Segments are named after the UTC month of the first event written to them and are only
ever appended to; a writer appends to the newest segment, or starts the segment of the
current month when that is newer. Writers hold `state/lock` (see tix.store.lock) and fsync
every batch before acknowledging anything at a source.

Batches. The events one command commits together form a batch, written at the end of one
segment; its last line ends with `,"commit":true}` and a newline (the commit mark), and the
whole batch is fsynced with it. A batch is committed once its mark is on disk, and only
then: readers see the log up to the last commit mark (`EventLog.end`), never a part of a
batch. A command too large to hold in memory (a bulk update of a million tickets) writes
its batch in parts without marks, fsynced before the last part, which carries the mark;
until then no reader sees any of it. A crash at any point leaves the log's last committed
batch, then at most some whole lines without a mark and a torn line without a newline:
the next writer, as soon as it holds the lock, cuts all of that off (`EventLog.repair`;
up to 1 MB of the bytes is kept in `quarantine/torn-SEGMENT-TIME-FROM-TO.bin`). A command that commits more
than once (intake commits each chunk before acknowledging it at the source, escalate the
steps of each SLA policy, the outbox each outcome before the next send) says so, and a
rerun goes on from its last commit without doing anything twice. `store.purged` (no ticket;
data: the counts of a `tix purge`) records a retention run.
`state/log-format.json` (`{"format": 2, "marked_since": {"segment": S, "offset": O}}`)
says from where lines carry marks: the lines before that position were written before
commit marks existed and each whole line of them is committed. A log without that file (an
older store, or a copy of `events/` alone) is read that way throughout, and its first
writer records where marks begin. A tool that rewrites the log (an erasure, a purge:
tix.store.rewrite) keeps each line's mark where it was and each line's byte length (a
shorter event is padded with spaces after its `{`), so `marked_since` and every saved log
position stay valid; it is journaled in `state/rewrite/` and finished by the next writer
if a crash cuts it short.

Damage. A whole line that is not a JSON event (a disk error, a bad edit) is damaged:
readers skip it and say so once, in one line on stderr (`events/2026-11.jsonl:123: damaged
line skipped (…); run tix check`); `tix rebuild` leaves it out, copies it to
`quarantine/damaged-SEGMENT-LLINE-OFFSET.bin`, names it and exits 1; `tix check` verifies
every line and the seq's contiguity; `tix rebuild --replace-damaged` puts an event of type
`log.damaged` (`data`: `segment`, `line`, `why`, `quarantine`) in its place when the lines
around it leave exactly its seq free. An unreadable `snapshot/meta.json` or snapshot file
is taken as missing: readers read the log instead, the next writer rebuilds the snapshot.

Writes that fail. A full disk or an I/O error is undone (the log cut back to where the
batch began, temp files removed) and ends the command with one line naming the store, the
file and the free space needed (`tix.errors.StoreWriteError`, exit 1). Temp files of
writers that were killed (`tix.store.files.STALE_TEMPS`) are removed by the next writer.
"""
from __future__ import annotations

from tix.store.batch import Batch, DryBatch
from tix.store.reader import Reader
from tix.store.store import CONFIG_NAME, SUBDIRS, Store, default_actor, examples_dir, find_store

__all__ = ["CONFIG_NAME", "SUBDIRS", "Batch", "DryBatch", "Reader", "Store", "default_actor", "examples_dir",
           "find_store"]
