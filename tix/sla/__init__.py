"""SLA clocks on business calendars, and escalation (`tix escalate`, `tix sla N`).

This package owns: business calendars (`calendar`: time zone, opening spans per weekday,
public holidays from the `holidays` package, site dates; vectorised business-time
arithmetic), SLA policies and their conditions and steps (`policy`), the clocks of each
ticket folded from its events (`clock`: first response, next response, resolution, paused
while pending), their persisted incremental state (`state`, Parquet under `snapshot/sla/`;
its cold start folds the whole log in SQL: `coldfold`, which `state` uses and which needs
nothing of `state`), the escalation run (`escalate`), the explanation of one ticket's
clocks (`explain`) and the `sla` DuckDB view (`views`). Notifications go through the
outbox (`tix.outbox.notify`).

It reads the `calendars:` and `sla:` sections of tix.yaml and the `ticket.created`,
`ticket.updated` (status), `message.received`, `message.sent` (not `auto`) events; it writes
`sla.breached` and `sla.step` events, field changes and tags with actor `sla:POLICY`.
"""
from __future__ import annotations


def escalate(store, now=None, dry_run: bool = False, **kw):
    """See tix.sla.escalate.escalate."""
    from tix.sla.escalate import escalate as run

    return run(store, now=now, dry_run=dry_run, **kw)
