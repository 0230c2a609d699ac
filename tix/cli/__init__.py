"""The `tix` command line: a thin Typer layer over the core.

Each command group lives in its own module here and registers itself with `register(app)`.
Commands parse options, call one core function, render, and choose the exit code; they
import heavy libraries (duckdb, pyarrow, jinja2) only inside the command body so that
`tix --help` starts fast.

Exit codes: 0 done; 1 finished but some items failed or were quarantined (or a ticket was
not found); 2 usage or configuration error, nothing written; 75 store still locked.
"""
from __future__ import annotations

import importlib
import sys

import typer

from tix.cli.common import state

EPILOG = ("\b\nExit codes:\n"
          "  0   done\n"
          "  1   finished, but some items failed or were quarantined; or not found\n"
          "  2   usage or configuration error: nothing was written\n"
          "  75  store still locked by another tix process (cron retries next time)")

app = typer.Typer(
    name="tix",
    help="tix: a command-line helpdesk for email and WhatsApp, run from cron over a store of plain files.",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # rich tracebacks show local variables, secrets included
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Command modules, in the order their commands appear in `tix --help`.
MODULES = ("admin", "tickets", "contacts", "fetch", "rules", "sla", "reports", "whatsapp")


@app.callback()
def _root(
    store: str = typer.Option(None, "--store", "-s",
                              help="Store directory (default: $TIX_STORE, then search upward for tix.yaml).",
                              envvar=None),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                help="Say what was done (silent on success otherwise)."),
    as_user: str = typer.Option(None, "--as", help="Record changes as this user (default: your login name)."),
) -> None:
    state.store_path = store
    state.verbose = verbose
    state.as_user = as_user


for _name in MODULES:
    importlib.import_module(f"tix.cli.{_name}").register(app)


def main() -> None:
    """Console entry point: run the app, turning core exceptions into one-line errors."""
    from tix.cli.common import run

    sys.exit(run(app))
