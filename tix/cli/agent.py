"""An agent's day: `tix mine`, `tix next`, `tix macro list|show|preview`.

"Me" is the actor: `--as NAME`, else the login name (an agent of tix.yaml).
"""
from __future__ import annotations

import sys
from typing import Optional

import typer

from tix.cli.common import FormatOpt, actor, check_format, error, open_store, ticket_arg
from tix.errors import EXIT_PARTIAL


def register(app: typer.Typer) -> None:
    app.command("mine")(mine)
    app.command("next")(next_)
    group = typer.Typer(help="Canned replies (templates/macros/): list, show, preview.", no_args_is_help=True)
    group.command("list")(macro_list_cmd)
    group.command("show")(macro_show_cmd)
    group.command("preview")(macro_preview_cmd)
    app.add_typer(group, name="macro")


def mine(
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="At most this many."),
    fmt: str = FormatOpt,
) -> None:
    """My queue: my open tickets (new, open, pending), the one due first (SLA) at the top.

    Due times are those of the last tix escalate run; tickets without one follow, oldest first.

    Example: tix mine --as ani
    """
    from tix.render import render
    from tix.tickets.work import QUEUE_COLUMNS, agent_login, my_queue

    check_format(fmt)
    store = open_store()
    rows = my_queue(store.read(), agent_login(store.config, actor()), limit)
    if fmt == "table":
        from tix.cli.tickets import _clip

        for r in rows:
            r["number"], r["subject"] = f"#{r['number']}", _clip(r["subject"], 50)
    render(rows, fmt, tz=store.config.setting("timezone"), columns=list(QUEUE_COLUMNS),
           headers={"due_at": "due", "created_at": "created"})


def next_(
    show: bool = typer.Option(False, "--show", help="Then show it, as tix show N does (and record it as seen)."),
) -> None:
    """Take the next ticket: the oldest unassigned new or open ticket of my teams, now assigned to me.

    Prints its number and subject (or, with --show, the whole ticket); exit 1 when there is none.
    Two agents running it at the same time never get the same ticket (it is chosen and assigned
    under the store's write lock).

    Examples:
      tix next --as ani
      tix next --show --as ani
    """
    from tix.tickets.work import agent_login, take_next

    store = open_store()
    who = actor()
    login = agent_login(store.config, who)
    with store.writing(actor=who, via="tix next") as batch:
        row = take_next(batch, login)
    if row is None:
        error(f"no unassigned ticket in your teams ({', '.join(store.config.agents[login].teams)})")
        raise typer.Exit(EXIT_PARTIAL)
    if show:
        from tix.cli.tickets import show as show_cmd

        return show_cmd(str(row["number"]), history=False, fmt="text")
    typer.echo(f"#{row['number']}  {row.get('subject') or ''}")


def macro_list_cmd(fmt: str = FormatOpt) -> None:
    """List the macros (templates/macros/ of the store, then the package's examples).

    Example: tix macro list
    """
    from tix.macros import macro_list
    from tix.render import render

    check_format(fmt)
    render(macro_list(open_store()), fmt, columns=["name", "where", "path"])


def macro_show_cmd(name: str = typer.Argument(..., help="Macro name (as in tix reply --macro NAME).")) -> None:
    """Print a macro's template text, after a line naming its file.

    Example: tix macro show terima-kasih
    """
    from tix.macros import macro_source

    path, text = macro_source(open_store(), name)
    sys.stdout.write(f"# {path}\n{text}" + ("" if text.endswith("\n") else "\n"))


def macro_preview_cmd(
    name: str = typer.Argument(..., help="Macro name."),
    number: str = typer.Argument(..., help="Ticket number."),
) -> None:
    """Print a macro rendered for a ticket, as you would send it (nothing is written or sent).

    Example: tix macro preview terima-kasih 1042 --as ani
    """
    from tix.macros import preview

    sys.stdout.write(preview(open_store(), ticket_arg(number), name, actor()))
