"""Agent commands: new, list, show, note, assign, set, tag, close, reopen."""
from __future__ import annotations

import sys
from typing import List, Optional

import typer

from tix.cli.common import FormatOpt, RedactOpt, actor, check_format, info, open_store, ticket_arg


def register(app: typer.Typer) -> None:
    for name, func in (("new", new), ("list", list_), ("show", show), ("note", note), ("assign", assign),
                       ("set", set_), ("tag", tag), ("close", close), ("reopen", reopen)):
        app.command(name)(func)


def _body(message: Optional[str]) -> Optional[str]:
    if message == "-":
        return sys.stdin.read()
    return message


def new(
    subject: str = typer.Argument(..., help="What the ticket is about."),
    channel: str = typer.Option("phone", "--channel", help="phone, email, whatsapp, web or other."),
    name: Optional[str] = typer.Option(None, "--name", help="Customer name."),
    email: Optional[str] = typer.Option(None, "--email", help="Customer email (finds or creates the contact)."),
    phone: Optional[str] = typer.Option(None, "--phone", help="Customer phone (finds or creates the contact)."),
    priority: str = typer.Option("normal", "--priority", "-p", help="low, normal, high or urgent."),
    team: Optional[str] = typer.Option(None, "--team", help="Team from tix.yaml."),
    assignee: Optional[str] = typer.Option(None, "--assignee", "-a", help="Agent from tix.yaml."),
    category: Optional[str] = typer.Option(None, "--category", help="Category."),
    tags: Optional[List[str]] = typer.Option(None, "--tag", "-t", help="Tag (repeatable)."),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="What the customer said (- for stdin)."),
    why: Optional[str] = typer.Option(None, "--why", help="Reason, recorded in the audit trail."),
) -> None:
    """Log a ticket by hand (a phone call, a walk-in); prints the new ticket number.

    Example: tix new "Paket belum sampai" --phone 0812-3456-789 --name "Sari" -p high -m "Order INV-1001"
    """
    from tix.tickets.core import new_ticket

    store = open_store()
    with store.writing(actor=actor(), via="tix new") as batch:
        number = new_ticket(batch, subject, name=name, email=email, phone=phone, assignee=assignee,
                            channel=channel, priority=priority, team=team, category=category, tags=tags or (),
                            body=_body(message), why=why)
    typer.echo(f"#{number}")


def list_(
    filter_terms: Optional[List[str]] = typer.Argument(None, metavar="[FILTER]...",
                                                        help="e.g. status:open team:billing age:3d+ -tag:vip refund"),
    status: Optional[str] = typer.Option(None, "--status", help="Same as status:VALUE."),
    team: Optional[str] = typer.Option(None, "--team", help="Same as team:VALUE."),
    assignee: Optional[str] = typer.Option(None, "--assignee", "-a",
                                           help="Same as assignee:VALUE (none = unassigned)."),
    priority: Optional[str] = typer.Option(None, "--priority", "-p", help="Same as priority:VALUE."),
    tag_: Optional[str] = typer.Option(None, "--tag", "-t", help="Same as tag:VALUE."),
    channel: Optional[str] = typer.Option(None, "--channel", help="Same as channel:VALUE."),
    all_: bool = typer.Option(False, "--all", help="Include resolved and closed tickets."),
    sort: str = typer.Option("-updated", "--sort",
                             help="number, created, updated, priority, status, team, assignee; - for descending."),
    limit: Optional[int] = typer.Option(100, "--limit", "-n", help="At most this many (0 = no limit)."),
    fmt: str = FormatOpt,
    redact: bool = RedactOpt,
) -> None:
    """List tickets: open ones (new, open, pending) unless the filter names a status or --all.

    Filter terms (no quotes needed): FIELD:VALUE, FIELD:a,b, -FIELD:VALUE (not), FIELD:none;
    ranges FIELD:V+ (V or more), FIELD:-V (up to V), FIELD:A..B for age, idle, created,
    updated, resolved, priority and number; other words search the subject.

    Examples:
      tix list status:open team:billing age:3d+ -tag:vip
      tix list is:open assignee:none priority:high+
      tix list channel:whatsapp,email idle:2h+ refund
      tix list created:2026-11-01..2026-11-30 --all --format csv
      tix list --assignee none -p urgent --format json
    """
    from tix.render import render
    from tix.tickets.core import LIST_COLUMNS, select

    check_format(fmt)
    terms = list(filter_terms or [])
    for name, value in (("status", status), ("team", team), ("assignee", assignee), ("priority", priority),
                        ("tag", tag_), ("channel", channel)):
        if value:
            terms.append(f"{name}:{value}")
    store = open_store()
    columns = list(LIST_COLUMNS) + (["tags"] if fmt != "table" else [])
    reader = store.read()
    rows = select(reader, " ".join(_quote(t) for t in terms), columns=[*columns, "contact"] if redact else columns,
                  sort=sort, limit=limit or None, default_open=not all_)
    if redact:
        from tix.redact import Redactor

        rows = Redactor.for_store(store).learn_contacts(reader, rows).rows(rows)
    for r in rows:
        if fmt == "table":
            r["number"] = f"#{r['number']}"
            r["subject"] = _clip(r["subject"], 50)
    render(rows, fmt, tz=store.config.setting("timezone"), columns=columns,
           headers={"created_at": "created", "updated_at": "updated"})


def _quote(term: str) -> str:
    import shlex

    return shlex.quote(term) if any(c.isspace() for c in term) else term


def _clip(text, width: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def show(
    number: str = typer.Argument(..., help="Ticket number (1042 or #1042)."),
    history: bool = typer.Option(False, "--history", help="Print the full audit trail: every event."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
    redact: bool = RedactOpt,
) -> None:
    """Show a ticket: its fields and the conversation (--history for the full audit trail).

    Example: tix show 1042 --history
    """
    from tix.tickets.show import show_ticket

    check_format(fmt, ("text", "json"))
    store = open_store()
    show_ticket(store, ticket_arg(number), history=history, fmt=fmt, out=sys.stdout, redact=redact)


def _one(number: str, via: str, why: Optional[str], change) -> None:
    from tix.tickets.core import get_ticket

    store = open_store()
    n = ticket_arg(number)
    with store.writing(actor=actor(), via=via) as batch:
        row = get_ticket(batch, n)
        ev = change(batch, row)
    info(f"#{n}: {'changed' if ev else 'unchanged'}")


WhyOpt = typer.Option(None, "--why", help="Reason, recorded in the audit trail.")


def note(
    number: str = typer.Argument(..., help="Ticket number."),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="The note text (- or omitted: stdin)."),
) -> None:
    """Add an internal note (never sent to the customer).

    Example: tix note 1042 -m "Called the courier; parcel is in Surabaya"
    """
    from tix.tickets.core import note as add_note

    text = _body(message) if message is not None else sys.stdin.read()
    _one(number, "tix note", None, lambda b, row: add_note(b, row, text))


def assign(
    number: str = typer.Argument(..., help="Ticket number."),
    agent: Optional[str] = typer.Argument(None, help="Agent login from tix.yaml; omit or 'none' to unassign."),
    team: Optional[str] = typer.Option(None, "--team", help="Also move the ticket to this team."),
    why: Optional[str] = WhyOpt,
) -> None:
    """Assign a ticket to an agent (and optionally a team).

    Example: tix assign 1042 budi --team billing
    """
    from tix.tickets.core import assign as assign_core

    _one(number, "tix assign", why, lambda b, row: assign_core(b, row, agent, team, why=why))


def set_(
    number: str = typer.Argument(..., help="Ticket number."),
    assignments: List[str] = typer.Argument(..., metavar="FIELD=VALUE...", help="e.g. priority=high order_id=INV-1"),
    why: Optional[str] = WhyOpt,
) -> None:
    """Set fields of a ticket: status, priority, category, team, assignee, subject, custom fields.

    Example: tix set 1042 priority=urgent category=refund
    """
    from tix.tickets.core import parse_assignments, set_fields

    _one(number, "tix set", why,
         lambda b, row: set_fields(b, row, parse_assignments(b.store.config, assignments), why=why))


def tag(
    number: str = typer.Argument(..., help="Ticket number."),
    tags: List[str] = typer.Argument(..., metavar="[+|-]TAG...", help="+tag or tag adds, -tag removes."),
    why: Optional[str] = WhyOpt,
) -> None:
    """Add or remove tags.

    Example: tix tag 1042 vip -- -spam
    """
    from tix.tickets.core import tag as tag_core

    add = [t.lstrip("+") for t in tags if not t.startswith("-")]
    remove = [t[1:] for t in tags if t.startswith("-")]
    _one(number, "tix tag", why, lambda b, row: tag_core(b, row, add, remove, why=why))


def close(
    number: str = typer.Argument(..., help="Ticket number."),
    resolved: bool = typer.Option(False, "--resolved", help="Mark resolved (reopens on a reply) instead of closed."),
    why: Optional[str] = WhyOpt,
) -> None:
    """Close a ticket (or mark it resolved).

    Example: tix close 1042 --why "refund sent"
    """
    from tix.tickets.core import close as close_core

    _one(number, "tix close", why, lambda b, row: close_core(b, row, resolved, why=why))


def reopen(
    number: str = typer.Argument(..., help="Ticket number."),
    why: Optional[str] = WhyOpt,
) -> None:
    """Reopen a resolved or closed ticket.

    Example: tix reopen 1042 --why "customer says the parcel never came"
    """
    from tix.tickets.core import reopen as reopen_core

    _one(number, "tix reopen", why, lambda b, row: reopen_core(b, row, why=why))
