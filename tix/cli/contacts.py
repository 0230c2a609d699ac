"""`tix contact list|show|link|merge`: one customer followed across email and WhatsApp.

A contact holds email addresses, phone numbers (WhatsApp `wa_id`s are phone numbers) and,
in `fields.wa_user_id`, WhatsApp's business-scoped user id. `link` adds identifiers to a
contact; `merge FROM INTO` folds one contact into another: INTO gains FROM's identifiers,
FROM gets `merged_into` (event `contact.merged`), and FROM's tickets are moved to INTO
(`ticket.updated contact`), so `tix show`, `tix list contact:N` and the reports follow one
customer. The core functions (`contact_link`, `contact_merge`, `contact_rows`) take a
Batch or Reader and are what the tests call.
"""
from __future__ import annotations

import sys
from typing import List, Optional

import typer

from tix.cli.common import FormatOpt, actor, check_format, info, open_store


def register(app) -> None:
    group = typer.Typer(help="Customers: list, show, link identifiers, merge duplicates.", no_args_is_help=True)
    group.command("list")(contact_list)
    group.command("show")(contact_show)
    group.command("link")(contact_link_cmd)
    group.command("merge")(contact_merge_cmd)
    app.add_typer(group, name="contact")


# -- core ------------------------------------------------------------------------------------
def _cid(text) -> int:
    from tix.errors import UsageError

    t = str(text).strip().lstrip("c")
    if not t.isdigit():
        raise UsageError(f"not a contact id: {text!r} (use 12 or c12)")
    return int(t)


def _get(reader, cid: int) -> dict:
    from tix.errors import NotFound

    row = reader.contact(cid)
    if row is None:
        raise NotFound(f"contact {cid} not found")
    return dict(row)


def _fields(row: dict) -> dict:
    import orjson

    return orjson.loads(row.get("fields") or "{}")


def contact_rows(reader, search: str | None = None, limit: int | None = None) -> list[dict]:
    """Contacts (not merged away) with their ticket counts; `search` matches name/email/phone."""
    con = reader.connect()
    sql = ("SELECT c.id, c.name, c.emails, c.phones, json_extract_string(c.fields, '$.wa_user_id') AS wa_user_id, "
           "(SELECT count(*) FROM tickets t WHERE t.contact = c.id) AS tickets "
           "FROM contacts c WHERE c.merged_into IS NULL")
    params: list = []
    if search:
        from tix.tickets import normalize_phone

        digits = normalize_phone(search) if any(ch.isdigit() for ch in search) else None
        sql += (" AND (c.name ILIKE ? OR array_to_string(c.emails, ' ') ILIKE ?"
                " OR array_to_string(c.phones, ' ') LIKE ?)")
        like = f"%{search}%"
        params += [like, like, f"%{digits}%" if digits else like]
    sql += " ORDER BY c.id"
    if limit:
        sql += " LIMIT ?"
        params.append(int(limit))
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def contact_view(reader, cid: int) -> dict:
    """One contact, the contacts merged into it, and every ticket of any of them."""
    row = _get(reader, cid)
    con = reader.connect()
    merged = [r[0] for r in con.execute("SELECT id FROM contacts WHERE merged_into = ?", [cid]).fetchall()]
    ids = [cid, *merged]
    cur = con.execute("SELECT number, status, channel, inbox, subject, created_at, updated_at FROM tickets "
                      "WHERE contact IN (SELECT unnest(?::BIGINT[])) ORDER BY created_at", [ids])
    names = [d[0] for d in cur.description]
    return {"contact": row, "merged": merged, "tickets": [dict(zip(names, r, strict=True)) for r in cur.fetchall()]}


def contact_link(batch, cid: int, emails=(), phones=(), wa_user_ids=(), name: str | None = None) -> dict | None:
    """Add identifiers to a contact; refuse one that already belongs to another contact."""
    from tix.errors import UsageError
    from tix.tickets import ContactIndex, normalize_phone

    row = _get(batch.reader, cid)
    if row.get("merged_into"):
        raise UsageError(f"contact {cid} was merged into {row['merged_into']}; link to that one")
    index = ContactIndex.load(batch.reader)
    add_e = [e.strip().lower() for e in emails if e.strip().lower() not in (row.get("emails") or [])]
    add_p = [normalize_phone(p) for p in phones
             if normalize_phone(p) and normalize_phone(p) not in (row.get("phones") or [])]
    for e in add_e:
        if "@" not in e:
            raise UsageError(f"not an email address: {e!r}")
        _not_elsewhere(index.find(email=e), cid, e)
    for p in add_p:
        _not_elsewhere(index.find(phone=p), cid, "+" + p)
    data: dict = {}
    if add_e:
        data["add_emails"] = add_e
    if add_p:
        data["add_phones"] = add_p
    sets = {}
    for uid in wa_user_ids:
        if uid and _fields(row).get("wa_user_id") != uid:
            sets["fields.wa_user_id"] = uid
    if name and name != row.get("name"):
        sets["name"] = name
    if sets:
        data["set"] = sets
    if not data:
        return None
    return batch.emit("contact.updated", contact=cid, data=data)


def _not_elsewhere(owner: int | None, cid: int, what: str) -> None:
    from tix.errors import UsageError

    if owner is not None and owner != cid:
        raise UsageError(f"{what} belongs to contact {owner}; "
                         f"to make them one customer: tix contact merge {owner} {cid}")


def contact_merge(batch, src: int, dst: int, why: str | None = None) -> list[dict]:
    """Fold contact `src` into `dst` (see the module docstring); returns the events emitted."""
    from tix.errors import UsageError

    if src == dst:
        raise UsageError("cannot merge a contact into itself")
    reader = batch.reader
    a, b = _get(reader, src), _get(reader, dst)
    if b.get("merged_into"):
        raise UsageError(f"contact {dst} was itself merged into {b['merged_into']}; merge into that one")
    if a.get("merged_into"):
        raise UsageError(f"contact {src} is already merged into {a['merged_into']}")
    why = why or f"contact {src} merged into {dst}"
    out = []
    data: dict = {}
    emails = [e for e in a.get("emails") or [] if e not in (b.get("emails") or [])]
    phones = [p for p in a.get("phones") or [] if p not in (b.get("phones") or [])]
    if emails:
        data["add_emails"] = emails
    if phones:
        data["add_phones"] = phones
    sets = {}
    fa, fb = _fields(a), _fields(b)
    for key, value in fa.items():
        if key not in fb:
            sets[f"fields.{key}"] = value
    if a.get("name") and not b.get("name"):
        sets["name"] = a["name"]
    if sets:
        data["set"] = sets
    if data:
        out.append(batch.emit("contact.updated", contact=dst, data=data, why=why))
    con = reader.connect()
    for (other,) in con.execute("SELECT id FROM contacts WHERE merged_into = ?", [src]).fetchall():
        out.append(batch.emit("contact.merged", contact=other, data={"into": dst}, why=why))
    out.append(batch.emit("contact.merged", contact=src, data={"into": dst}, why=why))
    for (number,) in con.execute("SELECT number FROM tickets WHERE contact = ? ORDER BY number", [src]).fetchall():
        out.append(batch.emit("ticket.updated", ticket=number, data={"set": {"contact": dst}, "old": {"contact": src}},
                              why=why))
    return out


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

    check_format(fmt)
    store = open_store()
    rows = contact_rows(store.read(), search, limit)
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

    check_format(fmt, ("text", "json"))
    store = open_store()
    view = contact_view(store.read(), _cid(contact))
    if fmt == "json":
        sys.stdout.write(orjson.dumps(view, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
        return
    c = view["contact"]
    out = sys.stdout
    out.write(f"contact {c['id']}: {c.get('name') or '(no name)'}\n")
    out.write(f"  emails: {', '.join(c.get('emails') or []) or '-'}\n")
    out.write(f"  phones: {', '.join('+' + p for p in c.get('phones') or []) or '-'}\n")
    for key, value in _fields(c).items():
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
    store = open_store()
    with store.writing(actor=actor(), via="tix contact link") as batch:
        ev = contact_link(batch, _cid(contact), email or [], [*(phone or []), *(wa_id or [])],
                          [wa_user_id] if wa_user_id else [], name)
    info(f"contact {_cid(contact)}: {'changed' if ev else 'unchanged'}")


def contact_merge_cmd(
    source: str = typer.Argument(..., metavar="FROM", help="The duplicate contact (merged away)."),
    into: str = typer.Argument(..., metavar="INTO", help="The contact that is kept."),
    why: Optional[str] = typer.Option(None, "--why", help="Reason, recorded in the audit trail."),
) -> None:
    """Merge contact FROM into INTO: identifiers and tickets follow INTO.

    Example: tix contact merge 31 12 --why "same customer on WhatsApp and email"
    """
    store = open_store()
    with store.writing(actor=actor(), via="tix contact merge") as batch:
        events = contact_merge(batch, _cid(source), _cid(into), why)
    info(f"contact {_cid(source)} merged into {_cid(into)} ({len(events)} events)")
