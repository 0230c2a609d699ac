"""`tix route`, `tix rules check`, `tix rules test`: the dispatcher and its tooling."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from tix.cli.common import TIME_HELP, FormatOpt, check_format, info, local_time, open_store, state, ticket_arg


def register(app: typer.Typer) -> None:
    app.command("route")(route)
    group = typer.Typer(help="Check and try the routing rules in rules/*.yaml.", no_args_is_help=True)
    group.command("check")(rules_check)
    group.command("test")(rules_test)
    app.add_typer(group, name="rules")


def route(
    tickets: Optional[List[str]] = typer.Argument(None, metavar="[TICKET]...",
                                                  help="Only these tickets (default: every ticket with new input)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show what would happen; write nothing."),
    explain_: Optional[str] = typer.Option(None, "--explain", metavar="N",
                                           help="For ticket N: each rule, whether it matched and why."),
    reroute: bool = typer.Option(False, "--reroute", "--all",
                                 help="Route again tickets already routed (the given ones, else every open one)."),
    fmt: str = FormatOpt,
) -> None:
    """Apply the rules to every ticket and customer message not yet routed.

    Each action is recorded as an event by `rule:NAME`; running it again changes nothing.
    Refuses to run on invalid rules (exit 2, nothing written); exit 1 if a rule failed on
    a ticket (the others are still routed).

    Examples:
      tix fetch; tix route          # from cron (route even when a source failed)
      tix route --explain 1042
    """
    from tix import idle, rules
    from tix.render import render

    check_format(fmt)
    store = open_store()
    if explain_ is not None:
        for line in rules.explain(store, ticket_arg(explain_)):
            if line:
                typer.echo(line)
        return
    numbers = [ticket_arg(t) for t in tickets] if tickets else None
    whole = not (numbers or dry_run or reroute)
    sig = idle.taken(store, "route") if whole else None
    def said(lines) -> None:
        for ln in lines:
            info(f"#{ln.ticket} {ln.rule}: {ln.text}")

    result = rules.route(store, dry_run=dry_run, reroute=reroute, numbers=numbers,
                         record=dry_run or state.verbose > 0, on_lines=said)
    for err in result.errors:
        typer.echo(err, err=True)
    if dry_run:
        rows = [{"ticket": f"#{ln.ticket}", "rule": ln.rule, "action": ln.text} for ln in result.lines]
        if fmt == "table" and rows:
            render(rows, fmt)
        elif fmt != "table":
            render(rows, fmt, columns=["ticket", "rule", "action"])
        typer.echo(f"dry run: would route {result.routed} tickets with {result.events} events; nothing written",
                   err=fmt != "table")
        if result.skipped_line():
            typer.echo(result.skipped_line(), err=fmt != "table")
    else:
        said(result.lines)
        info(f"routed {result.routed} tickets, {result.events} events")
        if result.skipped_line():
            info(result.skipped_line())
    if whole:  # a complete run: nothing left for an identical next one (tix.idle)
        idle.stamp(store, "route", sig, idle=not result.exit_code)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def rules_check() -> None:
    """Validate every rule file: fields, operators, actions, agents, teams, regexes, templates.

    Prints every problem as `file:line: message` (with a suggestion where one is obvious)
    and exits 2 if there is any; silent with exit 0 when all is well (-v: a summary).

    Example: tix rules check
    """
    from tix import rules
    from tix.rules.text import ENGINE

    store = open_store()
    count, problems = rules.check(store)
    for p in problems:
        typer.echo(str(p), err=True)
    if problems:
        typer.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in rules/", err=True)
        raise typer.Exit(2)
    info(f"{count} rules OK (regular expressions: {ENGINE}, linear time)")


def rules_test(
    message: Path = typer.Argument(
        ..., help="A message: an .eml file, or .json (WhatsApp webhook payload or message fields)."),
    reply: bool = typer.Option(False, "--reply",
                               help="Treat it as a customer reply on an existing ticket (when: reply)."),
    at: Optional[str] = typer.Option(None, "--at", help=f"Pretend it arrived at this time, {TIME_HELP}."),
) -> None:
    """Show what the rules would do to a message, without touching the store.

    Example: tix rules test samples/refund.eml

    Example: tix rules test wa.json --at 2026-11-24T21:30
    """
    from tix import rules

    store = open_store()
    when = local_time(at, store, "--at")
    for line in rules.test_message(store, message, reply=reply, at=when):
        sys.stdout.write(line + "\n")
