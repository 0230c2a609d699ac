"""Attachments: tix attachment N [NAME|INDEX] [-o PATH|-]."""
from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from tix.cli.common import FormatOpt, check_format, info, open_store, ticket_arg
from tix.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("attachment")(attachment)


def attachment(
    number: str = typer.Argument(..., help="Ticket number (1042 or #1042)."),
    which: Optional[str] = typer.Argument(None, metavar="[NAME|INDEX]",
                                          help="The attachment to get; omit to list them."),
    output: Optional[str] = typer.Option(None, "--output", "-o",
                                         help="Save to this file or directory; - writes the bytes to stdout. "
                                              "Default: its (sanitised) name in the current directory."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
    fmt: str = FormatOpt,
) -> None:
    """List a ticket's attachments (both ways), or save or stream one.

    File names are sanitised (no path separators, control characters or leading dots); an
    existing file is not overwritten without --force.

    Examples:
      tix attachment 1042
      tix attachment 1042 1 -o saved.eml
      tix attachment 1042 pesan.eml -o - | wc -c
    """
    from tix.tickets.attachments import COLUMNS, pick, read_blob, ticket_attachments

    check_format(fmt)
    store = open_store()
    n = ticket_arg(number)
    rows = ticket_attachments(store, n)
    if which is None:
        from tix.render import render

        extra = ["ticket", "sha256"] if fmt != "table" else []
        render(rows, fmt, tz=store.config.setting("timezone"), columns=COLUMNS + extra)
        return
    row = pick(rows, which, n)
    data = read_blob(store, row, n)
    if output == "-":
        from tix.cli.common import is_tty

        if is_tty(sys.stdout):  # a customer's bytes would act on the terminal
            raise UsageError("not writing an attachment to a terminal: pipe it (-o - | …) or give -o FILE")
        out = getattr(sys.stdout, "passthrough", sys.stdout)  # bytes as they are, not made terminal-safe
        out = getattr(out, "buffer", out)
        out.write(data)
        out.flush()
        return
    path = _target(output, row["name"])
    _save(path, data, force)
    info(f"#{n}: saved {row['name']} ({len(data)} bytes) to {path}")


def _target(output: Optional[str], name: str) -> str:
    if output is None:
        return os.path.join(os.getcwd(), name)
    path = os.path.expanduser(output)
    if os.path.isdir(path) or output.endswith(os.sep):
        return os.path.join(path, name)
    return path


def _save(path: str, data: bytes, force: bool) -> None:
    """Write a new file (O_EXCL: never through a link or over a file, unless --force replaces it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if force else os.O_EXCL)
    try:
        if force and os.path.islink(path):
            os.unlink(path)
        fd = os.open(path, flags, 0o640)
    except FileExistsError:
        raise UsageError(f"{path} exists; not overwriting it (use --force, or -o another path)") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
