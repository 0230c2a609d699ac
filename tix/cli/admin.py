"""Store administration: init, rebuild, check, sql, update, purge, config check, demo."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from tix.cli.common import (FormatOpt, actor, authorize, check_format, error, info, is_tty, open_store, read_ids,
                            state)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("demo")(demo)
    app.command("rebuild")(rebuild)
    app.command("check")(check)
    app.command("sql")(sql)
    app.command("update")(update)
    app.command("purge")(purge)
    config_app = typer.Typer(help="Check the store's configuration.", no_args_is_help=True)
    config_app.command("check")(config_check)
    app.add_typer(config_app, name="config")


def init(directory: Path = typer.Argument(..., help="Directory for the new store (created if missing).")) -> None:
    """Create a store: a commented tix.yaml and copies of the example rules, templates and reports.

    At a terminal (or with -v) it prints the next steps; in a script it is silent.

    Example: tix init helpdesk && export TIX_STORE=$PWD/helpdesk
    """
    from tix.store import Store

    store = Store.init(directory)
    if is_tty(sys.stdout) or state.verbose:
        typer.echo(next_steps(Path(store.root).resolve()))


def next_steps(root: Path) -> str:
    """What to do after `tix init`, with the store's own path in every command."""
    import shlex

    q = shlex.quote(str(root))
    return f"""Created a tix store in {root}. Next steps:

  1. export TIX_STORE={q}
     (or give --store DIR, or run tix anywhere below the store)
  2. Edit {root / 'tix.yaml'}: teams, agents, the email channels:, outbound: mail,
     whatsapp:, calendars: and sla: (each section is commented; secrets by *_env name only).
  3. tix config check               every problem in tix.yaml, rules/, templates/, reports/
  4. tix new "Paket belum sampai" --phone 0812-3456-789 --name Sari
     tix list                       then: tix show 1 --history
  5. From cron (see the README's Cron section): tix fetch, tix route, tix escalate, tix report weekly.
  Try it on sample data first: tix demo --dir /tmp/tix-demo"""


def demo(
    directory: Path = typer.Option(Path("demo-store"), "--dir", help="Where to create the demo store."),
    fmt: str = FormatOpt,
) -> None:
    """Run the main job on bundled sample data: create a demo store, fetch, route, escalate, report.

    Example: tix demo --dir /tmp/tix-demo
    """
    from tix.demo import run_demo

    check_format(fmt)
    run_demo(directory, fmt=fmt, out=sys.stdout)


def rebuild(
    replace_damaged: bool = typer.Option(
        False, "--replace-damaged",
        help="Put a log.damaged event in place of each damaged log line whose seq is known "
             "(its bytes stay in quarantine/), so that the log is whole again."),
    search: bool = typer.Option(
        False, "--search",
        help="Build the search index anew too. Without it the index is brought up to date from "
             "its place in the log (built when missing); `tix check` says when it is damaged."),
) -> None:
    """Rebuild the Parquet snapshot from the event log (the log is the truth), and check the search index.

    Damaged log lines are left out, copied to quarantine/ and listed as FILE:LINE: …, and
    the exit code is 1; `tix check` tells what to do about them.

    Example: tix rebuild -v
    """
    store = open_store()
    meta = store.rebuild(replace_damaged=replace_damaged)
    from tix.store.files import write_error
    from tix.store.search import SearchIndex

    index = SearchIndex(store)
    try:
        with store.lock():
            if search or not index.exists():
                index.rebuild()  # the search index is a cache of the log too
            else:
                index.catch_up()  # at 1M tickets building it anew takes two minutes
    except Exception as exc:  # noqa: BLE001 - a full disk is one line; anything else is raised as it is
        index.remove()  # half an index is no use, and gives the space back
        raise write_error(exc, store.path("state", "search.sqlite"), 0,
                          "the snapshot is rebuilt; the search index (a cache) is not: "
                          "the next search builds it once there is space") from None
    problems = store.rebuild_problems
    for problem in problems:
        typer.echo(str(problem), err=True)
    if problems:
        damaged = sum("damaged line" in p.message for p in problems)
        error(f"snapshot rebuilt from the log up to seq {meta['seq']}, without {damaged} damaged line(s) "
              f"(copied to quarantine/); {len(problems)} problem(s): see tix check")
        raise typer.Exit(1)
    info(f"snapshot rebuilt from the log: {meta['seq']} events, {meta['max_ticket']} tickets")


def check() -> None:
    """Verify the whole store: every log line, seq contiguity, the snapshot against its meta,
    the search index's pages.

    Reads only (no lock). Each problem is one FILE[:LINE]: message line, then what to run;
    exit 1 when there is any. Silent when the store is whole (-v says so).

    Example: tix check -v
    """
    from tix.store.check import check_store

    store = open_store()
    report = check_store(store)
    for problem in report.problems:
        typer.echo(str(problem), err=True)
    for advice in report.advice:
        typer.echo(f"to do: {advice}", err=True)
    for note in report.notes:
        info(note)
    if not report.ok:
        raise typer.Exit(1)
    info(f"store ok: {report.events} events (last seq {report.last_seq})")


def sql(
    query: str = typer.Argument(..., help="A SELECT over the views tickets, contacts, events, messages, sla."),
    fmt: str = FormatOpt,
) -> None:
    """Run a read-only DuckDB query over the store's views.

    Example: tix sql "SELECT team, count(*) FROM tickets WHERE status='open' GROUP BY team"
    """
    from tix.store.views import run_sql
    from tix.render import render

    check_format(fmt)
    store = open_store()
    rows = run_sql(store, query)
    render(rows, fmt, tz=store.config.setting("timezone"))


def update(
    filter_terms: Optional[List[str]] = typer.Argument(
        None, metavar="[FILTER]...", help="Which tickets, e.g. status:pending team:billing idle:14d+ -tag:vip"),
    ids: Optional[str] = typer.Option(None, "--ids", help="Read ticket numbers from a file, or - for stdin."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="FIELD=VALUE to set (repeatable)."),
    add_tag: Optional[List[str]] = typer.Option(None, "--add-tag", help="Tag to add (repeatable)."),
    remove_tag: Optional[List[str]] = typer.Option(None, "--remove-tag", help="Tag to remove (repeatable)."),
    note: Optional[str] = typer.Option(None, "--note", help="Internal note to add to each ticket."),
    why: Optional[str] = typer.Option(None, "--why", help="Reason, recorded with every change."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show what would change; write nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Allow changing more tickets than bulk_confirm_over."),
    all_: bool = typer.Option(False, "--all", help="Let the filter select resolved and closed tickets too."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output: table (a sentence) or json."),
) -> None:
    """Bulk-change tickets chosen by a filter or by numbers on stdin; one event per change.

    The filter is the one of `tix list` and selects what `tix list` shows for it: open
    tickets (new, open, pending) unless it names a status or --all is given. Numbers from
    --ids are taken whatever their status.

    Examples:
      tix update status:pending idle:14d+ --set status=closed --why "no answer in 14 days" --dry-run
      tix update team:billing priority:low --set priority=normal --yes --as ops-bot
      tix list -f csv tag:spam | cut -d, -f1 | tail -n +2 | tix update --ids - --set status=closed --yes
    """
    from tix.tickets.bulk import bulk_update

    check_format(fmt, ("table", "json"))
    store = open_store()
    numbers = read_ids(ids) if ids else None
    result = bulk_update(store, " ".join(filter_terms or []), numbers=numbers, set_pairs=set_ or [],
                         add_tags=add_tag or [], remove_tags=remove_tag or [], note=note, why=why,
                         dry_run=dry_run, confirmed=yes or is_tty(sys.stdin) and is_tty(sys.stdout),
                         actor=actor(), all_statuses=all_)
    _print_update(result, fmt, dry_run)


def _print_update(result, fmt: str, dry_run: bool) -> None:
    if fmt == "json":
        import orjson

        sys.stdout.write(orjson.dumps({"matched": result.matched, "changed": result.changed,
                                       "events": result.events, "dry_run": dry_run,
                                       "changes": result.changes if dry_run else None},
                                      option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if dry_run:
        for line in result.preview:
            typer.echo(line)
        typer.echo(f"would change {result.changed} of {result.matched} matching tickets (dry run, nothing written)")
    else:
        typer.echo(f"changed {result.changed} of {result.matched} matching {_plural(result.matched, 'ticket')} "
                   f"({result.events} {_plural(result.events, 'event')})")


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def config_check() -> None:
    """Check everything a run will need, and print every problem as file:line: message (exit 2).

    tix.yaml (every section), then: calendars and SLA policies, the business calendar of the
    rules, every rule file, every template (compiled; auto-replies, notifications and SLA mails
    rendered with a sample), every report file, and each environment variable and file the
    configuration names (passwords, tokens, CA files, maildir/mbox paths, env:VAR webhooks).
    Run it as the user cron runs tix as, with the same environment. Silent when all is well
    (-v: says so).

    Example: tix config check && echo ok
    """
    from tix import config as configmod
    from tix.store import Store, find_store

    store = Store(find_store(state.store_path))  # not open_store: its load stops at tix.yaml's first problems
    problems = configmod.check_store(store)
    if store._config is not None:  # tix.yaml loaded: who may check it (its own problems are no secret)
        authorize(store)
    for p in problems:
        typer.echo(str(p), err=True)
    if problems:
        raise typer.Exit(2)
    if state.verbose or is_tty(sys.stderr):
        from tix.access import NO_LOGINS_WARNING, declared_logins

        if not declared_logins(store.config):
            typer.echo(f"warning: {NO_LOGINS_WARNING}", err=True)
    info("configuration ok")


def purge(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed; change nothing."),
) -> None:
    """Apply the retention rules of tix.yaml (`retention:`): anonymise old contacts, drop old raw
    messages and attachments (the text stays), delete old quarantine entries and WhatsApp payloads.

    Run from cron (crontab.example). Silent on success; -v prints the counts.
    Example: tix purge --dry-run
    """
    from tix.tickets.retention import purge as run_purge

    store = open_store()
    report = run_purge(store, actor(), dry_run=dry_run)
    if dry_run:
        for line in report.lines:
            sys.stdout.write(line + "\n")
    counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report.counts().items())
    if dry_run:
        sys.stdout.write(f"would purge: {counts}\n")
    else:
        info(f"purged: {counts}")
