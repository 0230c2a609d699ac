"""The one outbox: everything that leaves tix is written first, then sent, then marked sent.

Four kinds of item (`purpose`) share one queue, one index, one flush, one backoff policy
and one set of senders (one per channel):

    purpose        queued by                               channels         event that queues it
    reply          `tix reply` (an agent)                  email, whatsapp  message.sent (ticket)
    auto_reply     rules (`auto_reply` action)             email, whatsapp  message.sent (ticket)
    notification   SLA steps, rules (`notify` action)      email, webhook   outbox.queued
    report         `tix report … --mail-to`                email            outbox.queued

Event vocabulary (the format contract of `tix.store` refers here)::

    message.sent   ticket=N  {"outbox": ID, "state": "queued", "channel", "message_id", "from", "to", "cc",
                              "subject", "text", "raw", "auto", "template", "payload", …}
    outbox.queued            {"outbox": ID, "purpose": "notification"|"report", "kind": "email"|"webhook",
                              "key", "target", "subject", "body", "payload", "ticket"?, "raw"?, "message_id"?}
    outbox.sent    ticket=N? {"outbox": ID, "channel", "attempt", …what the channel answered: email
                              `provider_id`, `refused`; WhatsApp `message` (the wamid), `to`, …}
    outbox.failed  ticket=N? {"outbox": ID, "channel", "attempt", "error", "permanent", "next_try"?}
    ticket.note    ticket=N  {"kind": "send_failed", "outbox": ID, "body"}   (a customer message given up)

- A customer message is queued by its `message.sent` event (`state: "queued"`): the fold counts
  it as answered from then on (first response, unless `auto`). Notifications and report mail
  are queued by `outbox.queued`, which names no ticket at the top level (it changes no ticket;
  `data.ticket` says what a notification is about). `kind` is the channel.
- `outbox.sent` and `outbox.failed` carry the item's ticket only for customer messages.
  `next_try` (UTC) is when the item is due again; it is absent when `permanent` (given up).
  `attempt` 0 with `permanent` means the item could not be made at all (e.g. its template raised).
- IDs: `o…` customer messages, `n` + 16 hex of sha256(key) notifications (a key is queued at
  most once, ever), `r…` report mail.
- Older stores wrote `id` instead of `outbox` in `outbox.*` events, `next_retry` for customer
  messages' retry time and no `purpose` (= notification) in `outbox.queued`; the index reads
  both shapes, so an old store's queue is listed and flushed as it is (no migration).

Raw messages are stored under `messages/<channel>/out/YYYY/MM/DD/<ID>.eml|json` (replies
and report mail; a notification is made from its event when it is sent).

Sending (`flush`): one run at a time (`state/outbox.lock`; the store lock is taken only to
record each outcome). Each item is sent, then its outcome is recorded (fsynced) before the
next is sent; delivery is at least once (a crash between a send and its record sends it
again). Any exception while making or sending one item fails that item (making it: for good;
sending it: retried), and the run goes on. `ChannelStopped` (server down, TLS not trusted,
login refused, token revoked) also leaves that channel's remaining items untouched for this
run. Failures retry after `backoff(attempt)` (1 min doubling, at most 1 h) and are given up
after `MAX_ATTEMPTS` (about a day). `state/outbox.json` indexes the queue; it is a cache,
rebuilt from the log when missing or stale.
"""
from __future__ import annotations

from tix.outbox.enqueue import auto_reply_cap, notify, queue, queue_mail
from tix.outbox.index import OutboxIndex
from tix.outbox.sending import BACKOFF_MAX, MAX_ATTEMPTS, FlushReport, backoff, flush, items

__all__ = ["BACKOFF_MAX", "MAX_ATTEMPTS", "FlushReport", "OutboxIndex", "auto_reply_cap", "backoff", "flush",
           "items", "notify", "queue", "queue_mail"]
