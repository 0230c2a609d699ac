"""SLA clocks on business calendars, and escalation (`tix escalate`, `tix sla N`).

This package owns: business calendars (`calendar`: time zone, opening spans per weekday,
public holidays from the `holidays` package, site dates; vectorised business-time
arithmetic), SLA policies and their conditions and steps (`policy`), the clocks of each
ticket folded from its events (`clock`: first response, next response, resolution, paused
while pending), their persisted incremental state (`state`, Parquet under `snapshot/sla/`;
its cold start folds the whole log at once, vectorised: `coldfold`, which `state` uses and which needs
nothing of `state`), the escalation run (`escalate`), the explanation of one ticket's
clocks (`explain`) and the `sla` DuckDB view (`views`). Notifications go through the
outbox (`tix.outbox.notify`).

It reads the `calendars:` and `sla:` sections of tix.yaml and the `ticket.created`,
`ticket.updated` (status), `message.received`, `message.sent` (not `auto`) events; it writes
`sla.breached` and `sla.step` events, field changes and tags with actor `sla:POLICY`.
"""
from __future__ import annotations

# No function here may share a submodule's name: importing the submodule rebinds the package's
# attribute to the module (a lazy `escalate()` wrapper here became the module `tix.sla.escalate`
# after its first call, so a second run in the same process failed). Call tix.sla.escalate.escalate.
