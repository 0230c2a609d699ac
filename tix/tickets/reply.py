"""An agent's reply to the customer, as one core function every way of replying shares.

`tix reply` calls it; so can any other path by which an agent answers (for example a reply
mailed from the agent's own mail client): the same collision rule (tix.tickets.seen), the
same status moves (tix.tickets.status) and the one outbox (tix.outbox.attachments.queue_reply,
which checks the attached files and queues through tix.outbox.queue).
"""
from __future__ import annotations


def agent_reply(batch, row: dict, text: str, *, template: str | None = None, outcome: str | None = None,
                force: bool = False, attach=()) -> list[dict]:
    """Queue an agent's reply on ticket `row` in `batch` (under the write lock).

    Args:
        batch: the batch of the reply; its actor is the agent.
        row: the ticket as the batch reads it (its status is updated in place).
        text: the reply's text (already rendered, for a macro).
        template: the macro or WhatsApp template name, recorded with the message.
        outcome: None, `pending` or `resolved`: the status it leaves (tix.tickets.status).
        force: reply even if the customer or another agent wrote since the agent last
            showed the ticket (otherwise `tix.tickets.seen.Collision`, exit 1).
        attach: paths of files to attach (checked first: tix.outbox.attachments).

    Returns the queued items (one; on WhatsApp one more per file). Raises before anything is
    queued when the reply is refused (a collision, a status it may not set, a file too big, a
    channel that cannot send).
    """
    from tix.outbox.attachments import queue_reply
    from tix.tickets import seen
    from tix.tickets.status import after_reply, check_outcome

    if not force:
        seen.check(batch.store, row, batch.actor)
    check_outcome(row, outcome)
    items = queue_reply(batch, row, row.get("channel") or "email", text, attach, template=template)
    after_reply(batch, row, outcome)
    return items
