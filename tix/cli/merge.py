"""Merge and split: tix merge N INTO M, tix split N --messages SEQ…"""
from __future__ import annotations

from typing import List, Optional

import typer

from tix.cli.common import actor, info, open_store, ticket_arg
from tix.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("merge")(merge)
    app.command("split")(split)


def merge(
    number: str = typer.Argument(..., help="The ticket to merge (it is closed, with a link)."),
    into: str = typer.Argument(..., metavar="INTO", help="The word INTO."),
    target: str = typer.Argument(..., help="The ticket that receives its messages, notes, attachments and tags."),
    why: Optional[str] = typer.Option(None, "--why", help="Reason, recorded in the audit trail."),
) -> None:
    """Merge ticket N into ticket M: its conversation shows on M, N is closed and linked, and the
    customer's later replies to N land on M. Undone only by a split.

    Example: tix merge 1041 INTO 1042 --why "same parcel"
    """
    from tix.tickets.merge import merge as merge_core

    if into.lower() != "into":
        raise UsageError(f"write: tix merge {number} INTO {target} (got {into!r})")
    source, dest = ticket_arg(number), ticket_arg(target)
    store = open_store()
    with store.writing(actor=actor(), via="tix merge") as batch:
        merge_core(batch, source, dest, why=why)
    info(f"#{source}: merged into #{dest}")


def split(
    number: str = typer.Argument(..., help="The ticket to split."),
    seqs: Optional[List[str]] = typer.Argument(None, metavar="SEQ...",
                                               help="Messages to move, as tix show shows them: [msg SEQ]."),
    messages: bool = typer.Option(False, "--messages", help="The SEQs that follow are messages (required)."),
    why: Optional[str] = typer.Option(None, "--why", help="Reason, recorded in the audit trail."),
) -> None:
    """Split messages out of a ticket into a new linked ticket; prints the new ticket number.

    Example: tix split 1042 --messages 5120 5127
    """
    from tix.tickets.merge import split as split_core

    if not messages:
        raise UsageError(f"name the messages: tix split {number} --messages SEQ… (tix show shows [msg SEQ])")
    ids = []
    for tok in ",".join(seqs or []).split(","):
        tok = tok.strip()
        if tok:
            if not tok.isdigit():
                raise UsageError(f"not a message seq: {tok!r} (tix show {number} shows [msg SEQ])")
            ids.append(int(tok))
    n = ticket_arg(number)
    store = open_store()
    with store.writing(actor=actor(), via="tix split") as batch:
        new = split_core(batch, n, ids, why=why)
    typer.echo(f"#{new}")
