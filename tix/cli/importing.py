"""`tix import`: a shop's history (mail, an IMAP folder, a WhatsApp chat, another helpdesk)."""
from __future__ import annotations

from typing import Optional

import typer

from tix.cli.common import FormatOpt, Progress, check_format, error, info, local_time, open_store


def register(app: typer.Typer) -> None:
    app.command("import")(import_history)


def import_history(
    kind: str = typer.Argument(..., metavar="KIND", help="mbox, maildir, imap, whatsapp or helpdesk."),
    path: Optional[str] = typer.Argument(None, metavar="PATH",
                                         help="The export (for imap: the name of an imap source in tix.yaml)."),
    since: Optional[str] = typer.Option(None, "--since", metavar="DATE", help="imap: messages since this day."),
    folder: Optional[str] = typer.Option(None, "--folder", help="imap: this folder (default: the source's)."),
    address: Optional[str] = typer.Option(None, "--address",
                                          help="Mail: the shop's address (mail from it is a reply)."),
    me: Optional[str] = typer.Option(None, "--me", help="whatsapp: the shop's name in the chat."),
    phone: Optional[str] = typer.Option(None, "--phone", help="whatsapp: the customer's number."),
    mapping: Optional[str] = typer.Option(None, "--mapping", metavar="FILE",
                                          help="helpdesk: the YAML file mapping the export's columns."),
    resolve_answered: bool = typer.Option(False, "--resolve-answered",
                                          help="Set resolved the imported tickets whose last message is the shop's."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Print the tickets it would create; write nothing."),
    fmt: str = FormatOpt,
) -> None:
    """Import history; messages keep their times and nobody is mailed or messaged.

    Threading and contacts work as for `tix fetch`; importing the same export again creates
    nothing new, and a rerun after an interruption takes in only what is missing. A bad line
    is one error line `FILE:LINE: message`; the rest is imported and the exit code is 1.

    Examples:
      tix import mbox Takeout/Mail/support.mbox --address support@toko.example --resolve-answered
      tix import imap support --since 2026-01-01
      tix import whatsapp "WhatsApp Chat with Sari.zip" --me "Toko Sari"
      tix import helpdesk tickets.csv --mapping freshdesk.yaml --dry-run
    """
    from tix.importers import run_import
    from tix.render import render

    check_format(fmt)
    store = open_store()
    day = local_time(since, store, "--since")
    progress = Progress()
    try:
        rep = run_import(store, kind, path, since=day.date() if day else None, mapping=mapping, address=address,
                         folder=folder, me=me, phone=phone, resolve_answered=resolve_answered, dry_run=dry_run,
                         progress=progress)
    finally:
        progress.done()
    for line in rep.errors:
        error(line)
    if dry_run:
        if rep.planned or fmt != "table":
            render(rep.planned, fmt, tz=store.config.setting("timezone"),
                   columns=["ticket", "created", "channel", "subject", "tags"])
        typer.echo(rep.summary() + "; nothing written", err=fmt != "table")
    else:
        info(rep.summary())
    if rep.errors or rep.quarantined:
        raise typer.Exit(1)
