"""`tix contact list|show|link|merge`: one customer followed across email and WhatsApp.

The commands parse options, call one function of tix.tickets.contacts (which says what a
contact is and what linking and merging do), render, and pick the exit code.
"""
from __future__ import annotations

import sys
from typing import List, Optional

import typer

from tix.cli.common import FormatOpt, actor, check_format, info, open_store


def register(app) -> None:
    group = typer.Typer(help="Customers: list, show, link identifiers, merge duplicates, erase, export.",
                        no_args_is_help=True)
    group.command("list")(contact_list)
    group.command("show")(contact_show)
    group.command("link")(contact_link_cmd)
    group.command("merge")(contact_merge_cmd)
    group.command("erase")(contact_erase_cmd)
    group.command("export")(contact_export_cmd)
    app.add_typer(group, name="contact")


def _phones_shown(row: dict) -> dict:
    """Phone numbers as tix prints them for people (`+62…`, tix.model.fmt_phone): tables, text, CSV.

    JSON carries the stored digits, as `tix sql` and the event log do.
    """
    from tix.model import fmt_phone

    row["phones"] = [fmt_phone(p) for p in row.get("phones") or []]
    return row


# -- commands --------------------------------------------------------------------------------
def contact_list(
    search: Optional[str] = typer.Argument(None, help="Part of a name, email address or phone number."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="At most this many."),
    fmt: str = FormatOpt,
) -> None:
    """List contacts (merged ones are shown under the contact they were merged into).

    Example: tix contact list sari --format json
    """
    from tix.render import render
    from tix.tickets.contacts import contact_rows

    check_format(fmt)
    store = open_store()
    rows = contact_rows(store.read(), search, limit)
    rows = rows if fmt == "json" else [_phones_shown(r) for r in rows]
    render(rows, fmt, tz=store.config.setting("timezone"),
           columns=["id", "name", "emails", "phones", "wa_user_id", "tickets"])


def contact_show(
    contact: str = typer.Argument(..., help="Contact id (12 or c12)."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> None:
    """Show a contact: identifiers, merged contacts, and every ticket across channels.

    Example: tix contact show 12
    """
    import orjson

    from tix.render import render
    from tix.tickets.contacts import contact_fields, contact_view, parse_contact_id

    check_format(fmt, ("text", "json"))
    store = open_store()
    view = contact_view(store.read(), parse_contact_id(contact))
    if fmt == "json":
        sys.stdout.write(orjson.dumps(view, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
        return
    c = _phones_shown(dict(view["contact"]))
    out = sys.stdout
    out.write(f"contact {c['id']}: {c.get('name') or '(no name)'}\n")
    out.write(f"  emails: {', '.join(c.get('emails') or []) or '-'}\n")
    out.write(f"  phones: {', '.join(c.get('phones') or []) or '-'}\n")
    for key, value in contact_fields(c).items():
        out.write(f"  {key}: {value}\n")
    if view["merged"]:
        out.write(f"  merged into this one: {', '.join(str(m) for m in view['merged'])}\n")
    out.write("\n")
    render(view["tickets"], "table", tz=store.config.setting("timezone"),
           columns=["number", "status", "channel", "inbox", "subject", "created_at"])


def contact_link_cmd(
    contact: str = typer.Argument(..., help="Contact id."),
    email: Optional[List[str]] = typer.Option(None, "--email", "-e", help="Email address (repeatable)."),
    phone: Optional[List[str]] = typer.Option(None, "--phone", "-p", help="Phone or WhatsApp number (repeatable)."),
    wa_id: Optional[List[str]] = typer.Option(None, "--wa-id", help="WhatsApp wa_id (a phone number; repeatable)."),
    wa_user_id: Optional[str] = typer.Option(None, "--wa-user-id", help="WhatsApp business-scoped user id (BSUID)."),
    name: Optional[str] = typer.Option(None, "--name", help="Set the contact's name."),
) -> None:
    """Add email addresses, phone numbers or WhatsApp ids to a contact.

    Example: tix contact link 12 --email sari@example.com --wa-id 6281234567890
    """
    from tix.tickets.contacts import contact_link, parse_contact_id

    cid = parse_contact_id(contact)
    store = open_store()
    with store.writing(actor=actor(), via="tix contact link") as batch:
        ev = contact_link(batch, cid, email or [], [*(phone or []), *(wa_id or [])],
                          [wa_user_id] if wa_user_id else [], name)
    info(f"contact {cid}: {'changed' if ev else 'unchanged'}")


def contact_merge_cmd(
    source: str = typer.Argument(..., metavar="FROM", help="The duplicate contact (merged away)."),
    into: str = typer.Argument(..., metavar="INTO", help="The contact that is kept."),
    why: Optional[str] = typer.Option(None, "--why", help="Reason, recorded in the audit trail."),
) -> None:
    """Merge contact FROM into INTO: identifiers and tickets follow INTO.

    Example: tix contact merge 31 12 --why "same customer on WhatsApp and email"
    """
    from tix.tickets.contacts import contact_merge, parse_contact_id

    src, dst = parse_contact_id(source), parse_contact_id(into)
    store = open_store()
    with store.writing(actor=actor(), via="tix contact merge") as batch:
        events = contact_merge(batch, src, dst, why)
    info(f"contact {src} merged into {dst} ({len(events)} events)")


def contact_erase_cmd(
    contact: str = typer.Argument(..., help="Contact id."),
    why: Optional[str] = typer.Option(None, "--why", help="Reason (required), recorded in the audit trail."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be touched; change nothing."),
) -> None:
    """Erase a customer's personal data (UU PDP right to erasure) from the whole store.

    Events are redacted in the segments holding them, their raw messages, blobs, spool and
    quarantine entries removed, caches refreshed; tickets, times, statuses and SLA figures stay.
    Example: tix contact erase 12 --why "erasure request of 2026-11-20, ref DPO-7"
    """
    from tix.tickets.contacts import parse_contact_id
    from tix.tickets.erase import erase_contact

    cid = parse_contact_id(contact)
    store = open_store()
    plan = erase_contact(store, cid, why or "", actor(), dry_run=dry_run)
    if dry_run:
        for line in plan.lines():
            sys.stdout.write(line + "\n")
        return
    info(f"contact {cid} erased: {plan.events} events in {len(plan.segments)} segments, "
         f"{len(plan.tickets)} tickets kept")


def contact_export_cmd(
    contact: str = typer.Argument(..., help="Contact id."),
    output: str = typer.Option(..., "--output", "-o", help="The zip file to write."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
) -> None:
    """Export a customer's data as one zip (UU PDP rights of access and portability).

    The zip holds tix-export.json (contact, tickets, messages, intake notes, UTC times; format
    in README "Personal data") and attachments/. Internal notes are left out.
    Example: tix contact export 12 -o sari.zip
    """
    from tix.tickets.contacts import parse_contact_id
    from tix.tickets.export import export_contact

    cid = parse_contact_id(contact)
    store = open_store()
    counts = export_contact(store, cid, output, force=force)
    info(f"contact {cid}: {counts['tickets']} tickets, {counts['messages']} messages, "
         f"{counts['attachments']} attachments -> {output}")
