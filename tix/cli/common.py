"""Helpers shared by the command modules: opening the store, rendering, errors, stdin IDs."""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

import typer

from tix.errors import EXIT_USAGE, TixError


@dataclass
class _State:
    store_path: str | None = None
    verbose: int = 0
    as_user: str | None = None


state = _State()

FORMATS = ("table", "json", "csv")
FormatOpt = typer.Option("table", "--format", "-f", help="Output format: table, json or csv.")
RedactOpt = typer.Option(False, "--redact", help="Mask names, email addresses, phone numbers and the "
                                                 "`redact: patterns:` of tix.yaml, for sharing outside the team.")


# Every option that takes a time (`--now`, `--at`) reads it the same way: tix.store.log.parse_local.
TIME_HELP = ("in the site time zone unless it carries an offset: 2026-11-24T09:00, "
             "2026-11-24 09:00, 2026-11-24 (midnight), 2026-11-24T02:00Z")


def local_time(text: str | None, store, option: str):
    """An option's time (`--now`, `--at`): site-local unless it has an offset -> aware UTC; None if not given."""
    from tix.errors import UsageError
    from tix.store.log import parse_local

    if not text:
        return None
    try:
        return parse_local(text, store.config.setting("timezone"))
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def open_store():
    """Open the store and check that this user may run this command on it (tix.access)."""
    from tix.store import Store

    store = Store.open(state.store_path)
    authorize(store)
    return store


def authorize(store) -> None:
    """The one permission check of every command (tix.access.PERMISSIONS), and the access log
    entry of an audited read (`audit_reads: true`): the command and its arguments."""
    from tix import access

    ctx = _context()
    if ctx is None:  # not a command (library use): no user to check
        return
    command = " ".join(ctx.command_path.split()[1:])
    rule = access.rule_for(command)
    ident = access.authorize(store, command, state.as_user)
    if rule.audit and store.config.setting("audit_reads"):
        from tix.accesslog import record

        record(store, ident, command, _given(ctx))


def _given(ctx) -> dict:
    """The arguments of the command as the user gave them (defaults left out): what was read."""
    out = {}
    for name, value in ctx.params.items():
        source = ctx.get_parameter_source(name) if hasattr(ctx, "get_parameter_source") else None
        if value not in (None, False, (), []) and getattr(source, "name", "") != "DEFAULT":
            out[name] = value
    return out


def _context():
    try:
        from click import get_current_context
    except ImportError:  # typer >= 0.16 vendors click as typer._click
        from typer._click.globals import get_current_context  # type: ignore[import-not-found]
    return get_current_context(silent=True)


def actor() -> str:
    """The event actor: the checked identity's (`user:AGENT`; `--as NAME` for admins)."""
    from tix import access
    from tix.store import default_actor

    ident = access.current()
    if ident is not None:
        return ident.actor()
    if state.as_user:
        name = state.as_user
        return name if ":" in name else f"user:{name}"
    return default_actor()


def info(message: str) -> None:
    """Print only with -v: cron stays silent on success."""
    if state.verbose:
        typer.echo(message)


def error(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)


def check_format(fmt: str, allowed=FORMATS) -> str:
    if fmt not in allowed:
        raise typer.BadParameter(f"{fmt!r} is not one of: {', '.join(allowed)}", param_hint="--format")
    return fmt


def read_ids(source: str) -> list[int]:
    """Ticket numbers from a file or `-` (stdin): whitespace/comma separated, `#` allowed."""
    from tix.errors import UsageError
    from tix.model import parse_number

    text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
    tokens = text.replace(",", " ").split()
    joined = "".join(tokens)
    if joined.isascii() and joined.isdigit():  # plain numbers (the usual, 100k of them at times): in one go
        return list(map(int, tokens))
    out = []
    for tok in tokens:
        try:
            out.append(parse_number(tok))
        except ValueError:
            raise UsageError(f"not a ticket number in --ids input: {tok!r}") from None
    return out


def ticket_arg(text: str) -> int:
    from tix.errors import UsageError
    from tix.model import parse_number

    try:
        return parse_number(text)
    except ValueError:
        raise UsageError(f"not a ticket number: {text!r} (use 1042 or #1042)") from None


def is_tty(stream=None) -> bool:
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """One self-overwriting status line on stderr, only when stderr is a terminal (never in
    cron or a pipe), drawn at most every 0.2 s: `support: 1,200 of 20,000 (6%)`."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.stream = getattr(self.stream, "passthrough", self.stream)  # its own escape sequence
        self.on = is_tty(self.stream)
        self.shown = False
        self._last = 0.0

    def __call__(self, label: str, done: int, total: int | None = None) -> None:
        import time

        now = time.monotonic()
        if not self.on or (now - self._last < 0.2 and (total is None or done < total)):
            return
        self._last = now
        text = f"{label}: {done:,}" + (f" of {total:,} ({100 * done // max(total, 1)}%)" if total else "")
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


_NEGATED_TERM = re.compile(r"^-[A-Za-z_][\w.]*(:|>|<|=)")
_NEGATED_WORD = re.compile(r"^-[a-z]{2,}$")


def protect_negated_terms(argv: list[str], command=None) -> list[str]:
    """`-tag:vip` is a negated filter term, not a cluster of short options: spell it `!tag:vip`.

    No tix option contains `:`, `<`, `>` or `=` after a single dash, so this is unambiguous.
    So is `-idle` (what a shell leaves of `-idle>14d`): no short option is a filter field's
    name, and Click would read `-age` as `-a ge`; as `!idle` the filter names the mistake.
    A word that is the value of an option (`--sort -number`, `-m -tag:x`) is left alone:
    `command` (the Click group) tells which options take a value.
    """
    takes_value = _value_options(command, argv) if command is not None else set()
    out: list[str] = []
    for a in argv:
        if out and out[-1] in takes_value:
            out.append(a)
            continue
        if _NEGATED_TERM.match(a) or (_NEGATED_WORD.match(a) and a[1:] in _filter_fields()):
            a = "!" + a[1:]
        out.append(a)
    return out


def _value_options(group, argv: list[str]) -> set[str]:
    """The option names that take a value, of the group and of the (sub)commands named in argv."""
    names: set[str] = set()
    cmd = group
    for token in [None, *argv]:
        if token is not None:
            sub = (getattr(cmd, "commands", None) or {}).get(token)
            if sub is None:
                continue
            cmd = sub
        for p in getattr(cmd, "params", ()):
            if getattr(p, "param_type_name", "") == "option" and not (p.is_flag or getattr(p, "count", False)):
                names.update(p.opts)
    return names


def _filter_fields() -> tuple[str, ...]:
    from tix.tickets.query import ALL_FIELDS

    return ALL_FIELDS


def run(app) -> int:
    """Run the Typer app; core errors become `Error: …` on stderr and their exit code.

    Standard output and error go through `tix.render.SafeStream`: nothing a customer wrote
    reaches the terminal as a control sequence.
    """
    from tix import access

    access.reset()  # each command checks its own user (even in one process), and forgets it after
    try:
        return _run(app)
    finally:
        access.reset()


def _run(app) -> int:
    from tix.render import SafeStream

    sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)
    if "tix.store.log" in sys.modules:  # each command names the damage it meets (even in one process)
        sys.modules["tix.store.log"].forget_reports()
    try:
        rc = app(args=protect_negated_terms(sys.argv[1:], app), prog_name="tix", standalone_mode=False)
    except TixError as exc:
        for line in str(exc).splitlines() or [exc.__class__.__name__]:
            typer.echo(line if _has_location(line) else f"Error: {line}", err=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        return 130
    except _click_exceptions() as exc:  # usage errors: bad option, missing argument
        exc.show()
        return EXIT_USAGE
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    return rc if isinstance(rc, int) else 0


_LOCATION = re.compile(r"^\S+:\d+$")


def _has_location(line: str) -> bool:
    """`tix.yaml:7: …`, `templates/x.j2:3: …`, `rules/x.yaml: …` carry their place; `age:3d …` does not."""
    head = line.split(": ", 1)[0]
    return bool(_LOCATION.match(head)) or head.endswith((".yaml", ".yml", ".sql", ".j2", ".eml", ".json"))


def _click_exceptions():
    try:
        import click

        return (click.exceptions.ClickException,)
    except ImportError:  # typer >= 0.16 vendors click as typer._click
        from typer import _click  # type: ignore[attr-defined]

        return (_click.exceptions.ClickException,)
