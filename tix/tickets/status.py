"""The ticket status state machine: how statuses follow the conversation.

This docstring is the one description of it (the README's "Agents" section repeats it for
people); the code that makes each move is named beside it.

Statuses: `new` (nobody has answered yet), `open` (being worked on), `pending` (waiting on
the customer: SLA clocks are paused, tix.sla.clock), `resolved` (solved; the customer may
still answer) and `closed` (done). `new`, `open` and `pending` are the open statuses.

    move                                   from                  to         made by
    an agent's reply                       new                   open       after_reply (tix reply)
    an agent's reply --pending             new, open, pending    pending    after_reply (tix reply --pending)
    an agent's reply --resolve             any but closed        resolved   after_reply (tix reply --resolve)
    an agent's reply (no flag)             open, pending, resolved  unchanged
    assigning an agent                     new                   open       tix.tickets.core.assign
    a customer message                     pending               open       tix.ingest.intake.Intake._continue
    a customer message within reopen_days  resolved, closed      open       tix.ingest.intake.Intake._continue
      of the resolution (settings: or the channel's own `reopen_days`)
    a customer message after the window    resolved, closed      (unchanged; a new linked ticket)
    tix close / tix close --resolved       any                   closed / resolved   tix.tickets.core.close
    tix reopen                             resolved, closed      open       tix.tickets.core.reopen
    tix set status=S, tix update --set     any                   S          (an admin's override)

Auto-replies (rules, SLA notifications) never change a status; passive customer messages
(auto-submitted mail, WhatsApp reactions and deletions) never reopen. Every move is a
`ticket.updated` event with the actor, the command (`via`) and why.
"""
from __future__ import annotations

from tix.errors import UsageError

OUTCOMES = ("pending", "resolved")


def after_reply(batch, row: dict, outcome: str | None = None) -> dict | None:
    """The status move an agent's reply makes (see the table above); the event or None.

    Args:
        batch: the batch the reply was queued in (the move is written with it, atomically).
        row: the ticket as the reply saw it (updated in place).
        outcome: None (a plain reply), `pending` (waiting on the customer) or `resolved`.
    """
    from tix.tickets.core import set_fields

    check_outcome(row, outcome)
    if outcome == "pending":
        return set_fields(batch, row, {"status": "pending"}, why="agent replied, waiting on the customer")
    if outcome == "resolved":
        return set_fields(batch, row, {"status": "resolved"}, why="agent replied and resolved it")
    if row.get("status") == "new":
        return set_fields(batch, row, {"status": "open"}, why="first agent reply")
    return None


def check_outcome(row: dict, outcome: str | None) -> None:
    """UsageError when the reply may not make that move (checked before anything is queued)."""
    status = row.get("status")
    if outcome is not None and outcome not in OUTCOMES:
        raise UsageError(f"unknown reply outcome {outcome!r}; one of: {', '.join(OUTCOMES)}")
    if outcome == "pending" and status in ("resolved", "closed"):
        raise UsageError(f"#{row['number']} is {status}: reopen it before setting it pending")
    if outcome == "resolved" and status == "closed":
        raise UsageError(f"#{row['number']} is closed: reopen it before resolving it")


def reply_outcome(pending: bool, resolve: bool) -> str | None:
    """`--pending` / `--resolve` -> the outcome for `after_reply`; both is a UsageError."""
    if pending and resolve:
        raise UsageError("give either --pending or --resolve, not both")
    return "pending" if pending else "resolved" if resolve else None
