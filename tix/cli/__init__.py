"""The `tix` command line: a thin Typer layer over the core.

Each command group lives in its own module here and registers itself with `register(app)`.
Commands parse options, call one core function, render, and choose the exit code; they
import heavy libraries (duckdb, pyarrow, jinja2) only inside the command body so that
`tix --help` starts fast.

Exit codes: 0 done; 1 finished but some items failed or were quarantined (or a ticket was
not found); 2 usage or configuration error, nothing written; 75 store still locked.

The global options (`--store`, `-v`, `--as`) are accepted before the command and after it
(`tix update … --as ops-bot`, `tix fetch -v`): `command()` adds them to every subcommand.
"""
from __future__ import annotations

import importlib
import re
import sys

import typer

from tix.cli.common import state

EPILOG = ("Global options (--store, -v, --as) may also follow the command: tix fetch -v, "
          "tix update status:pending --set status=open --as ops-bot\n\n"
          "\b\nExit codes:\n"
          "  0   done\n"
          "  1   finished, but some items failed or were quarantined; or not found\n"
          "  2   usage or configuration error: nothing was written\n"
          "  75  store still locked by another tix process (cron retries next time)")

# Command modules, in the order their commands appear in `tix --help`.
MODULES = ("admin", "tickets", "agent", "contacts", "fetch", "importing", "rules", "sla", "reports", "whatsapp",
           "search", "attachments", "merge", "access")

# The module that registers each command: a command line names one command, and only its module
# is imported and turned into Click objects (building all of them costs more than most
# commands' work). tests/test_cli_global.py checks this against what the modules register.
OWNERS = {
    "init": "admin", "demo": "admin", "rebuild": "admin", "check": "admin", "sql": "admin", "update": "admin",
    "purge": "admin", "config": "admin",
    "new": "tickets", "list": "tickets", "show": "tickets", "note": "tickets", "assign": "tickets",
    "close": "tickets", "reopen": "tickets", "tag": "tickets", "set": "tickets",
    "mine": "agent", "next": "agent", "macro": "agent",
    "contact": "contacts",
    "fetch": "fetch", "reply": "fetch", "quarantine": "fetch", "outbox": "fetch",
    "import": "importing",
    "route": "rules", "rules": "rules",
    "escalate": "sla", "sla": "sla", "notify": "sla",
    "report": "reports",
    "webhook": "whatsapp",
    "search": "search",
    "attachment": "attachments",
    "merge": "merge", "split": "merge",
    "audit": "access", "whoami": "access",
}


def _version(value: bool) -> None:
    if value:
        from tix import __version__

        typer.echo(f"tix {__version__}")
        raise typer.Exit(0)


def _root(
    store: str = typer.Option(None, "--store", "-s",
                              help="Store directory (default: $TIX_STORE, then search upward for tix.yaml).",
                              envvar=None),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                help="Say what was done (silent on success otherwise)."),
    as_user: str = typer.Option(None, "--as", help="Record changes as this user (default: your login name)."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                 help="Print the version of tix and exit."),
) -> None:
    state.store_path = store
    state.verbose = verbose
    state.as_user = as_user


def new_app(modules: tuple[str, ...] = MODULES) -> typer.Typer:
    """The Typer app with the commands of these modules (all of them by default)."""
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
    app.callback()(_root)
    for name in modules:
        importlib.import_module(f"tix.cli.{name}").register(app)
    return app


_APP: typer.Typer | None = None


def __getattr__(name: str):
    """`tix.cli.app`: the app with every command, built on first use."""
    global _APP
    if name == "app":
        if _APP is None:
            _APP = new_app()
        return _APP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def app_for(argv: list[str]) -> typer.Typer:
    """The app for this command line: just the named command's module when the command is
    known, else (help, a mistyped command, no command) every command."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--store", "-s", "--as"):
            i += 2
            continue
        if arg.startswith("-"):
            if arg in ("--verbose", "-v") or re.fullmatch(r"-v+", arg) or arg.startswith(("--store=", "--as=")):
                i += 1
                continue
            break  # --help, --version, or an unknown option: the whole app answers
        owner = OWNERS.get(arg)
        return new_app((owner,)) if owner else __getattr__("app")
    return __getattr__("app")


# -- global options after the command -------------------------------------------------------------
def _set_store(ctx, param, value):
    if value is not None:
        state.store_path = value


def _add_verbose(ctx, param, value):
    state.verbose += value or 0


def _set_as(ctx, param, value):
    if value is not None:
        state.as_user = value


GLOBAL_OPTIONS = (
    (["--store", "-s"], {"callback": _set_store, "metavar": "DIR"}),
    (["--verbose", "-v"], {"callback": _add_verbose, "count": True, "default": 0}),
    (["--as"], {"callback": _set_as, "metavar": "NAME"}),
)


def command(app: typer.Typer | None = None):
    """The Click command of `tix`: the Typer app (default: every command), with the global options
    on every subcommand too.

    They are hidden in a subcommand's help (the root help lists them) and set the same state
    as the root's options; a value after the command wins over one before it.
    """
    import typer.core
    import typer.main

    group = typer.main.get_command(app or __getattr__("app"))
    stack = list(getattr(group, "commands", {}).values())
    while stack:
        cmd = stack.pop()
        stack += list(getattr(cmd, "commands", {}).values())
        cmd.help, cmd.epilog = examples_last(cmd.help), examples_last(cmd.epilog)
        taken = {d for p in cmd.params for d in getattr(p, "opts", ())}
        for decls, extra in GLOBAL_OPTIONS:
            if not taken.intersection(decls):
                cmd.params.append(typer.core.TyperOption(param_decls=list(decls), expose_value=False,
                                                         hidden=True, **extra))
    return group


_EXAMPLE = re.compile(r"^\s*Examples?:\s*(.*)$")


def examples_last(text: str | None) -> str | None:
    """Help text with its examples gathered at the end, one command per line, never re-wrapped.

    A docstring says `Example: tix …` (one line each) or `Examples:` followed by indented
    commands; Click would join and wrap them into one paragraph. Here they become one
    `Example(s):` block marked `\\b` (Click's "keep these lines as they are").
    """
    if not text:
        return text
    keep, examples, listing = [], [], False
    for line in text.splitlines():
        m = _EXAMPLE.match(line)
        if m:
            listing = not m.group(1)
            examples += [m.group(1).strip()] if m.group(1) else []
        elif listing and (line.strip() in ("", "\b") or line[:1].isspace()):
            if line.strip() not in ("", "\b"):
                examples.append(line.strip())
        else:
            if listing:
                keep.append("")
            listing = False
            keep.append(line)
    if not examples:
        return text
    body = "\n".join(keep).rstrip()
    head = "Examples:" if len(examples) > 1 else "Example:"
    return f"{body}\n\n{head}\n\n\b\n" + "\n".join(f"  {e}" for e in examples)


def main() -> None:
    """Console entry point: run the app, turning core exceptions into one-line errors."""
    from tix.cli.common import run

    sys.exit(run(command(app_for(sys.argv[1:]))))
