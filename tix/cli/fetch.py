"""Intake and outbound commands: fetch, reply, quarantine list|show|replay|drop, outbox list|flush."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import List, Optional

import typer

from tix.cli.common import FormatOpt, Progress, actor, check_format, error, info, is_tty, open_store, ticket_arg
from tix.errors import EXIT_OK, EXIT_PARTIAL, UsageError

quarantine_app = typer.Typer(help="Inputs that could not be processed: list, show, replay after a fix, drop for good.",
                             no_args_is_help=True)
outbox_app = typer.Typer(help="Outgoing messages waiting to be sent: list, flush.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("fetch")(fetch)
    app.command("reply")(reply)
    app.add_typer(quarantine_app, name="quarantine")
    app.add_typer(outbox_app, name="outbox")


def fetch(
    source: Optional[List[str]] = typer.Option(None, "--source", help="Only this source from tix.yaml (repeatable)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="At most this many new messages this run."),
    no_send: bool = typer.Option(False, "--no-send", help="Do not send the queued outbox afterwards."),
) -> None:
    """Fetch new mail (and the WhatsApp spool) into tickets, then send the outbox.

    Silent on success (on a terminal, a progress line while it works). Exit 1 if a message was
    quarantined or a source failed, 75 if another tix holds the store. Meant for cron, e.g. every
    5 minutes:

    Example: */5 * * * * tix --store /srv/tix fetch
    """
    from tix import idle
    from tix.ingest import fetch_all
    from tix.outbox import flush

    store = open_store()
    whole = not (source or limit is not None or no_send)
    sig = idle.taken(store, "fetch") if whole else None
    progress = Progress()
    try:
        rep = fetch_all(store, limit=limit, sources=source or None, progress=progress)
    finally:
        progress.done()
    failed = bool(rep.errors or rep.quarantined)
    for line in rep.errors:
        error(line)
    if rep.quarantined:
        error(f"{rep.quarantined} message(s) quarantined; see: tix quarantine list")
    if rep.left:
        typer.echo(f"stopped at the batch cap: {rep.left} message(s) left for the next run")
    for line in fetch_summary(rep):
        info(line)
    failed = not _agent_mail(store, "tix fetch") or failed
    if not no_send:
        out = flush(store, via="tix fetch")
        for line in out.errors:
            error(line)
        if out.sent or out.failed:
            info(_flushed(out))
        failed = failed or bool(out.errors)
    if whole:  # nothing new before the next outbox retry, unless a source changes (tix.idle)
        stampable, retry = idle.outbox_until(store) if not (failed or rep.left) else (False, None)
        idle.stamp(store, "fetch", sig, retry, idle=stampable)
    raise typer.Exit(EXIT_PARTIAL if failed else EXIT_OK)


def fetch_summary(rep) -> list[str]:
    """The -v lines of `tix fetch`: the counts in all, per source when there are several, one
    line per kind of thing skipped (with its count), then the warnings."""
    def counts(c: dict) -> str:
        return (f"{c['stored']} stored ({c['tickets_created']} new tickets), {c['joined']} on existing tickets, "
                f"{c['bounces']} bounces, {c['statuses']} statuses, {c['account_events']} account events, "
                f"{c['contact_events']} contact events, {c['echoes']} sent from the phone, {c['skipped']} skipped, "
                f"{c['duplicates']} already stored, {c['quarantined']} quarantined")

    from collections import Counter

    from tix.channels.base import COUNTS

    lines = ["fetched: " + counts({a: getattr(rep, a) for a in COUNTS})]
    if len(rep.sources) > 1:
        lines += [f"  {name}: {counts(c)}" for name, c in rep.sources.items()]
    lines += [f"skipped {n}x {what}" for what, n in sorted(Counter(rep.skips).items())]
    lines += [f"warning: {w}" for w in rep.warnings]
    return lines


def reply(
    number: str = typer.Argument(..., help="Ticket number (1042 or #1042)."),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="Reply text (- for stdin)."),
    file: Optional[str] = typer.Option(None, "--file", "-F", help="Read the reply text from this file."),
    macro: Optional[str] = typer.Option(None, "--macro",
                                        help="Send macro NAME (templates/macros/; see tix macro list)."),
    no_send: bool = typer.Option(False, "--no-send", help="Only queue it; the next fetch or outbox flush sends it."),
    template: Optional[str] = typer.Option(None, "--template",
                                           help="WhatsApp: send this approved template (whatsapp.templates in "
                                                "tix.yaml); the only way to write after the 24-hour window."),
    attach: Optional[List[str]] = typer.Option(None, "--attach",
                                               help="Attach this file (repeatable; size limits per channel)."),
    pending: bool = typer.Option(False, "--pending", help="Then set the ticket pending (waiting on the customer)."),
    resolve: bool = typer.Option(False, "--resolve", help="Then mark the ticket resolved."),
    force: bool = typer.Option(False, "--force", help="Reply even if the ticket changed since you last showed it."),
    preview: bool = typer.Option(False, "--preview", help="Print the message as it would go; send and write nothing."),
) -> None:
    """Reply to the customer on the ticket's channel (queued in the outbox, then sent).

    Text from -m, --file, stdin, --macro, or $EDITOR when run at a terminal. On WhatsApp,
    more than 24 hours after the customer's last message, use --template NAME. A first reply
    moves a new ticket to open; --pending and --resolve set the status with the reply (the
    state machine: README, "Agents"). Refused (exit 1) if the customer or another agent wrote
    since you last ran tix show N, unless --force.

    Examples:
      tix reply 1042 -m "Dana sudah kami kembalikan, mohon cek 1-3 hari kerja." --resolve
      tix reply 1042 -m "Bukti pengiriman terlampir." --attach pesan.eml
      tix reply 1042 --preview -m "Mohon kirim foto paketnya."
    """
    from tix.outbox import flush
    from tix.tickets import get_ticket, seen
    from tix.tickets.reply import agent_reply
    from tix.tickets.status import check_outcome, reply_outcome

    outcome = reply_outcome(pending, resolve)
    store = open_store()
    n = ticket_arg(number)
    if preview:
        return _preview(store, n, message, file, macro, template, attach)
    with store.writing(actor=actor(), via="tix reply") as batch:
        row = get_ticket(batch, n)
        if not force:  # before asking for the text (an editor): a refused reply is not written for nothing
            seen.check(store, row, batch.actor)
        check_outcome(row, outcome)
        text = _text(store, batch.reader, row, message, file, macro, template, attach)
        items = agent_reply(batch, row, text, template=template or macro, outcome=outcome, force=True,
                            attach=attach)
        at = seen.flush_marker(batch)
    seen.mark(store, actor(), n, at=at, only_if_known=True)
    for item in items:
        info(f"#{n}: queued {item['outbox']} to {', '.join(item['to'])}")
    if no_send:
        raise typer.Exit(EXIT_OK)
    out = flush(store, wait=float(store.config.setting("lock_timeout")), via="tix reply")
    for line in out.errors:
        error(line)
    if any(item["outbox"] not in {it["id"] for it in out.sent_items} for item in items):
        error(f"#{n}: the reply stays queued and is retried by the next tix fetch / tix outbox flush")
        raise typer.Exit(EXIT_PARTIAL)
    info(f"#{n}: sent")
    raise typer.Exit(EXIT_PARTIAL if out.errors else EXIT_OK)


def _preview(store, n, message, file, macro, template, attach) -> None:
    from tix.errors import NotFound
    from tix.outbox.attachments import load
    from tix.outbox.enqueue import preview
    from tix.tickets import seen

    from tix import access

    reader = store.read()
    row = reader.ticket(n)
    if row is None:
        raise NotFound(f"ticket #{n} not found")
    row = dict(row)
    access.check_ticket(row)  # an agent previews on the tickets of their teams, as they reply
    channel = row.get("channel") or "email"
    files = load(attach, channel, store.config)  # checked and read, never stored
    text = _text(store, reader, row, message, file, macro, template, attach)
    sys.stdout.write(preview(store, reader, row, channel, text, template=template or macro, files=files))
    try:
        seen.check(store, row, actor())
    except seen.Collision as exc:  # the reply itself would be refused: say so now
        typer.echo(f"Warning: {exc}", err=True)


def _text(store, reader, row, message, file, macro, template, attach=None) -> str:
    if template is not None:
        if macro is not None:
            raise UsageError("give either --template (WhatsApp) or --macro, not both")
        return message if message not in (None, "-") else (sys.stdin.read() if message == "-" else "")
    if attach and message is None and file is None and macro is None and is_tty(sys.stdin):
        return ""  # files alone, at a terminal: no editor
    return _reply_text(store, reader, row, message, file, macro)


def _reply_text(store, reader, row, message, file, macro) -> str:
    if sum(x is not None for x in (message, file, macro)) > 1:
        raise UsageError("give the reply text one way: -m, --file or --macro")
    if message == "-":
        return sys.stdin.read()
    if message is not None:
        return message
    if file is not None:
        try:
            with open(file, encoding="utf-8") as fh:
                return fh.read()
        except OSError as exc:
            raise UsageError(f"{file}: {exc.strerror}") from None
    if macro is not None:
        from tix.macros import render_macro

        return render_macro(store, reader, row, macro, actor())
    if not is_tty(sys.stdin):
        return sys.stdin.read()
    return _editor()


def _editor() -> str:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w+", suffix=".txt", delete=False, encoding="utf-8") as fh:
        path = fh.name
    try:
        subprocess.run([*editor.split(), path], check=False)
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    finally:
        os.unlink(path)
    if not text.strip():
        raise UsageError("empty reply: nothing sent")
    return text


# -- quarantine ----------------------------------------------------------------------------------
OlderOpt = typer.Option(None, "--older", metavar="AGE", help="Only entries quarantined more than AGE ago (30d, 12h).")


def _older(store, older: str | None) -> list[dict]:
    from tix.durations import parse_duration
    from tix.store import quarantine

    if older is None:
        return quarantine.entries(store)
    try:
        seconds = parse_duration(older)
    except ValueError as exc:
        raise UsageError(f"--older {older!r}: {exc}") from None
    return quarantine.older_than(store, seconds)


@quarantine_app.command("list")
def quarantine_list(fmt: str = FormatOpt, older: Optional[str] = OlderOpt) -> None:
    """List quarantined inputs with their error.

    Example: tix quarantine list --older 30d --format json
    """
    from tix.render import render

    check_format(fmt)
    store = open_store()
    rows = [{"id": e["id"], "kind": e["kind"], "source": e.get("source"), "ts": e.get("ts"),
             "attempts": e.get("attempts"), "error": e.get("error")} for e in _older(store, older)]
    render(rows, fmt, columns=["id", "kind", "source", "ts", "attempts", "error"])


@quarantine_app.command("drop")
def quarantine_drop(ids: Optional[List[str]] = typer.Argument(None, help="Entry ids ('-': read them from stdin)."),
                    why: str = typer.Option(..., "--why", help="Why it is dropped (recorded with who and when)."),
                    older: Optional[str] = OlderOpt,
                    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be dropped; drop nothing.")
                    ) -> None:
    """Delete entries for good (a poison item nobody can fix), recorded as a quarantine.dropped
    event with who, when and why. Fetch keeps skipping the items at their source.

    Example: tix quarantine drop --older 30d --why "spam kept past the 30-day review"
    """
    from tix.store import quarantine

    if not why.strip():
        raise UsageError("--why must say why the entries are dropped")
    if ids == ["-"]:
        ids = sys.stdin.read().split()
    if not ids and older is None:
        raise UsageError("name the entries to drop, or --older AGE")
    store = open_store()
    candidates = _older(store, older)
    if ids:
        wanted = [quarantine.get(store, i)["id"] for i in ids]
        todo = [e for e in candidates if e["id"] in wanted]
        missing = [i for i in wanted if i not in {e["id"] for e in todo}]
        if missing:
            raise UsageError(f"{missing[0]} is not older than {older}; nothing dropped")
    else:
        todo = candidates
    if dry_run:
        for e in todo:
            typer.echo(f"would drop {e['id']} ({e['kind']}): {e.get('error')}")
        return
    with store.writing(actor=actor(), via="tix quarantine drop") as batch:
        dropped = quarantine.drop(batch, todo, why)
    info(f"dropped {len(dropped)} quarantine entr{'y' if len(dropped) == 1 else 'ies'}")


@quarantine_app.command("show")
def quarantine_show(qid: str = typer.Argument(..., help="Entry id (or a unique prefix of at least 6 characters)."),
                    raw: bool = typer.Option(False, "--raw", help="Print the input itself, byte for byte.")) -> None:
    """Show one entry: its error and where it came from (--raw: the input itself).

    Example: tix quarantine show 5b8d2c0e41a7 --raw > msg.eml
    """
    import json

    from tix.store import quarantine

    store = open_store()
    entry = quarantine.get(store, qid)
    if raw:
        sys.stdout.buffer.write(quarantine.payload(entry))
        return
    typer.echo(json.dumps(entry, ensure_ascii=False, indent=1))


@quarantine_app.command("replay")
def quarantine_replay(ids: Optional[List[str]] = typer.Argument(None, help="Entry ids (default: all)."),
                      all_: bool = typer.Option(False, "--all", help="Replay every entry.")) -> None:
    """Process quarantined inputs again (after a fix); those that work leave the quarantine.

    Example: tix quarantine replay --all
    """
    from tix.ingest import replay_quarantined

    if not ids and not all_:
        raise UsageError("name the entries to replay, or --all")
    store = open_store()
    rep = replay_quarantined(store, ids or None)
    for line in rep.errors:
        error(line)
    info(f"replayed {len(rep.replayed)}, still failing {len(rep.failed)}")
    raise typer.Exit(EXIT_PARTIAL if rep.failed else EXIT_OK)


# -- outbox --------------------------------------------------------------------------------------
OUTBOX_COLUMNS = ["id", "what", "ticket", "channel", "to", "subject", "status", "attempts", "next_try", "error",
                  "queued_at"]


@outbox_app.command("list")
def outbox_list(fmt: str = FormatOpt) -> None:
    """List everything not sent yet: replies, auto-replies, notifications and report mail, with
    status (pending, or dead: given up), attempts, the next try and the last error.

    Example: tix outbox list
    """
    from tix.outbox import items
    from tix.render import render

    check_format(fmt)
    store = open_store()
    render(items(store, dead=True), fmt, columns=OUTBOX_COLUMNS)


@outbox_app.command("flush")
def outbox_flush(
    force: bool = typer.Option(False, "--force", help="Also retry items whose backoff has not run out."),
) -> None:
    """Send everything queued that is due. Exit 1 if any send failed (it stays queued).

    Example: tix outbox flush --force
    """
    from tix.outbox import flush

    store = open_store()
    mailed = _agent_mail(store, "tix outbox flush")
    rep = flush(store, force=force)
    for line in rep.errors:
        error(line)
    if rep.busy:
        info("outbox: another tix is sending; left to it")
    info(_flushed(rep))
    raise typer.Exit(EXIT_PARTIAL if rep.errors or not mailed else EXIT_OK)


def _agent_mail(store, via: str) -> bool:
    """Queue the mail of agents who work from their mail client (tix.outbox.agentmail); False
    (after one error line) when that failed: the rest of the command goes on."""
    from tix.errors import StoreLocked, TixError
    from tix.outbox.agentmail import queue_agent_mail

    try:
        queue_agent_mail(store, via=via)
    except StoreLocked:
        raise
    except TixError as exc:
        error(f"agent mail: {exc}")
        return False
    return True


def _flushed(rep) -> str:
    return f"outbox: {rep.sent} sent, {rep.failed} failed, {rep.pending} waiting"
