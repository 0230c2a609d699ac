"""SLA commands: `tix escalate`, `tix sla N`, `tix notify list|flush`."""
from __future__ import annotations

import sys

import typer

from tix.cli.common import TIME_HELP, FormatOpt, check_format, error, info, local_time, open_store, state, ticket_arg

NOW_HELP = f"Evaluate at this time (default: now), {TIME_HELP}."
SHOWN = 50  # planned actions listed as a table; csv and json list them all


def register(app: typer.Typer) -> None:
    app.command("escalate")(escalate)
    app.command("sla")(sla)
    notify_app = typer.Typer(help="Internal notifications (SLA and rule emails and webhooks) in the outbox.",
                             no_args_is_help=True)
    notify_app.command("list")(notify_list)
    notify_app.command("flush")(notify_flush)
    app.add_typer(notify_app, name="notify")


def _now(text: str | None, store):
    """`--now`: a local time in the site's time zone, or with an offset (tix.cli.common.local_time)."""
    return local_time(text, store, "--now")


def escalate(
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show what would be done; write and send nothing."),
    now: str = typer.Option(None, "--now", help=f"{NOW_HELP} For replays and tests."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Ignore the saved SLA state and fold the whole log again."),
    fmt: str = FormatOpt,
) -> None:
    """Compute every open ticket's SLA clocks; record breaches and run the escalation steps due.

    Run it from cron every few minutes. Each step runs once per ticket, target and cycle;
    notifications go through the outbox and failed sends are retried on later runs.
    Exit 1 when a notification could not be sent (it stays queued); 2 on a config problem.

    Example: tix escalate --dry-run
    """
    from tix import idle
    from tix.render import render
    from tix.sla.escalate import escalate as run

    check_format(fmt)
    store = open_store()
    whole = not (dry_run or now)
    sig = idle.taken(store, "escalate") if whole else None
    report = run(store, now=_now(now, store), dry_run=dry_run, rebuild=rebuild)
    tz = store.config.setting("timezone")
    if dry_run or state.verbose:
        _list_planned(report.planned, fmt, tz, render)
    if state.verbose and report.unwatched:
        info("no SLA policies in tix.yaml (sla: policies): no clocks to compute")
    elif state.verbose:
        states = ", ".join(f"{k} {v}" for k, v in sorted(report.states.items()))
        info(f"{report.open_tickets} open tickets, {report.clocks} clocks ({states}); "
             f"{report.computed} tickets' clocks computed (the rest as saved: not due, no new event); "
             f"{len(report.planned)} actions, {report.events_written} events written in {report.rounds} "
             f"round{'s' if report.rounds != 1 else ''}"
             f"{' (cold start: folded the whole log)' if report.cold else ''} in {report.timings['total']:.2f} s")
    if report.started and (dry_run or state.verbose):  # a dry run's summary beside its listing, on stderr
        before = report.before_start.values()
        breaches, steps = sum(p["breaches"] for p in before), sum(sum(p["steps"].values()) for p in before)
        typer.echo(f"SLA {'would start' if dry_run else 'starts'} watching this store at {report.start[:19]}Z; "
                   f"{breaches} breaches and {steps} steps were already overdue: not acted on "
                   f"(SLA is not retroactive; counted in the sla.started event)", err=dry_run)
    if report.skipped and (dry_run or state.verbose):
        typer.echo(f"not notified (history: breached before act_within): {report.skipped} SLA steps", err=True)
    for line in report.errors:
        error(line)
    _report_notify(report.notify)
    if whole:  # nothing due again before the earliest clock or retry (tix.idle)
        stampable, retry = idle.outbox_until(store, purposes=("notification",)) if report.ok else (False, None)
        idle.stamp(store, "escalate", sig, idle.earliest(report.next_due, retry), idle=stampable)
    if not report.ok:
        raise typer.Exit(1)


def _list_planned(planned: list, fmt: str, tz: str, render) -> None:
    """The planned actions: all of them as csv or json; as a table, the first SHOWN, then a count
    per action and how many were left out (a first run on a big store plans hundreds of
    thousands: a table of them all took 26 s to print and nobody reads it)."""
    from collections import Counter

    columns = ["ticket", "policy", "target", "cycle", "state", "action", "due_at"]
    if fmt != "table":
        render([_planned_row(p) for p in planned], fmt, tz=tz, columns=columns)
        return
    if planned:
        render([_planned_row(p) for p in planned[:SHOWN]], fmt, tz=tz, columns=columns)
    if len(planned) > SHOWN:
        counts = Counter(f"{p.policy}: {p.describe()}" for p in planned)
        for action, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            typer.echo(f"{n:>9}  {action}")
        typer.echo(f"{len(planned) - SHOWN} more actions not listed ({len(planned)} in all); "
                   f"-f csv or -f json lists every one")


def _planned_row(p) -> dict:
    from datetime import datetime, timezone

    due = datetime.fromtimestamp(p.due, timezone.utc).replace(tzinfo=None) if p.due else None
    return {"ticket": p.ticket, "policy": p.policy, "target": p.target, "cycle": p.cycle, "state": p.state,
            "action": p.describe(), "due_at": due}


def _report_notify(rep) -> None:
    """Print a tix.outbox.FlushReport of notifications: each failure on stderr, counts with -v."""
    if rep is None:
        return
    for line in rep.errors:
        error(line)
    if rep.dead and state.verbose:
        info(f"{rep.dead} notifications failed permanently: see tix notify list")
    if rep.sent:
        info(f"{rep.sent} notifications sent")
    if rep.busy:
        info("another tix is sending the outbox; left to it")


def sla(
    number: str = typer.Argument(..., help="Ticket number, e.g. 1042 or #1042."),
    now: str = typer.Option(None, "--now", help=NOW_HELP),
    fmt: str = typer.Option("text", "--format", "-f", help="Output format: text or json."),
) -> None:
    """Explain each SLA clock of a ticket: due time, business time used and left, counted and
    paused intervals, and holidays skipped.

    Example: tix sla 1042
    """
    from tix.sla.explain import explain, render_text, to_json

    check_format(fmt, ("text", "json"))
    store = open_store()
    ex = explain(store, ticket_arg(number), now=_now(now, store))
    if fmt == "json":
        import orjson

        sys.stdout.write(orjson.dumps(to_json(ex), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render_text(ex))


def notify_list(fmt: str = FormatOpt) -> None:
    """List notifications not sent yet: pending (with attempts and next try) and failed for good.

    Example: tix notify list
    """
    from tix.outbox import items
    from tix.render import render

    check_format(fmt)
    store = open_store()
    rows = [{"id": it["id"], "kind": it["channel"], "target": it["to"], "subject": it["subject"],
             "status": it["status"], "attempts": it["attempts"], "next_try": it["next_try"],
             "error": it["error"]} for it in items(store, dead=True, purposes=("notification",))]
    if rows or fmt != "table":
        render(rows, fmt, tz=store.config.setting("timezone"),
               columns=["id", "kind", "target", "subject", "status", "attempts", "next_try", "error"])


def notify_flush(
    now: str = typer.Option(None, "--now", help=NOW_HELP),
) -> None:
    """Send queued notifications that are due (`tix escalate` also does this; `tix outbox flush`
    sends them with everything else). Exit 1 if any failed.

    Example: tix notify flush -v
    """
    from tix.outbox import flush

    store = open_store()
    rep = flush(store, _now(now, store), purposes=("notification",), via="tix notify flush")
    _report_notify(rep)
    if not rep.ok:
        raise typer.Exit(1)
