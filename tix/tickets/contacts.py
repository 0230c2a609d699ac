"""Contacts: one customer followed across email and WhatsApp.

A contact holds email addresses, phone numbers (WhatsApp `wa_id`s are phone numbers) and,
in `fields.wa_user_id`, WhatsApp's business-scoped user id. Intake finds or creates the
contact of each message through a `ContactIndex`. `contact_link` adds identifiers to a
contact; `contact_merge(FROM, INTO)` folds one contact into another: INTO gains FROM's
identifiers, FROM gets `merged_into` (event `contact.merged`), and FROM's tickets are moved
to INTO (`ticket.updated contact`), so `tix show`, `tix list contact:N` and the reports
follow one customer. Writers take a `Batch`, readers a `Reader`; `tix contact …` and the
tests call them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from tix import access
from tix.errors import NotFound, UsageError
from tix.store import Batch


@dataclass
class ContactIndex:
    """Email address / phone number / WhatsApp user id -> contact id (following merges),
    plus each contact's name, built once per run from the state."""

    by_email: dict[str, int] = field(default_factory=dict)
    by_phone: dict[str, int] = field(default_factory=dict)
    by_user: dict[str, int] = field(default_factory=dict)  # fields.wa_user_id
    names: dict[int, str | None] = field(default_factory=dict)
    merged: dict[int, int] = field(default_factory=dict)  # merged contact -> the one it went into

    @classmethod
    def load(cls, reader) -> ContactIndex:
        idx = cls()
        con = reader.connect()
        rows = con.execute("SELECT id, name, emails, phones, merged_into, json_extract_string(fields, '$.wa_user_id'), "
                           "CAST(json_extract(fields, '$.wa_previous_user_ids') AS VARCHAR) "
                           "FROM contacts ORDER BY id").fetchall()
        for cid, name, emails, phones, merged, user, previous in rows:
            target = merged or cid
            for old in orjson.loads(previous) if previous else ():  # ids a WhatsApp user had before
                if isinstance(old, str):
                    idx.by_user.setdefault(old, target)
            for e in emails or ():
                idx.by_email[e.lower()] = target
            for p in phones or ():
                idx.by_phone[normalize_phone(p)] = target
            if user:
                idx.by_user[user] = target
            if merged:
                idx.merged[cid] = merged
            idx.names[cid] = name
        return idx

    def find(self, email: str | None = None, phone: str | None = None, user_id: str | None = None) -> int | None:
        cid = None
        if user_id and user_id in self.by_user:
            cid = self.by_user[user_id]
        elif email and email.lower() in self.by_email:
            cid = self.by_email[email.lower()]
        elif phone and normalize_phone(phone) in self.by_phone:
            cid = self.by_phone[normalize_phone(phone)]
        return None if cid is None else self.target(cid)

    def target(self, cid: int) -> int:
        """The contact `cid` was merged into, through any chain of merges."""
        seen = set()
        while cid in self.merged and cid not in seen:
            seen.add(cid)
            cid = self.merged[cid]
        return cid


def normalize_phone(phone: str) -> str:
    """Digits only, leading 0 (Indonesian national format) turned into 62: 0812… -> 62812…."""
    digits = "".join(c for c in str(phone) if c.isdigit())
    if digits.startswith("0"):
        digits = "62" + digits[1:]
    return digits


def create_contact(batch: Batch, name: str | None = None, emails=(), phones=(), fields=None,
                   index: ContactIndex | None = None) -> int:
    cid = batch.new_contact_id()
    emails = [e.strip().lower() for e in emails if e and e.strip()]
    phones = [normalize_phone(p) for p in phones if p]
    batch.emit("contact.created", contact=cid,
               data={"name": name, "emails": emails, "phones": phones, "fields": dict(fields or {})})
    if index is not None:
        for e in emails:
            index.by_email[e] = cid
        for p in phones:
            index.by_phone[p] = cid
    return cid


def find_or_create_contact(batch: Batch, index: ContactIndex, name=None, email=None, phone=None) -> int:
    cid = index.find(email=email, phone=phone)
    if cid is not None:
        return cid
    return create_contact(batch, name, [email] if email else [], [phone] if phone else [], index=index)


def parse_contact_id(text) -> int:
    """`12` or `c12` -> 12; anything else is a UsageError."""
    t = str(text).strip().lstrip("c")
    if not t.isdigit():
        raise UsageError(f"not a contact id: {text!r} (use 12 or c12)")
    return int(t)


def get_contact(reader, cid: int) -> dict:
    """Contact `cid` as a dict (a copy); NotFound if there is none."""
    row = reader.contact(cid)
    if row is None:
        raise NotFound(f"contact {cid} not found")
    return dict(row)


def contact_fields(row: dict) -> dict:
    """A contact's custom fields (`fields`, stored as JSON text) as a dict."""
    return orjson.loads(row.get("fields") or "{}")


def contact_rows(reader, search: str | None = None, limit: int | None = None) -> list[dict]:
    """Contacts (not merged away) with their ticket counts; `search` matches name/email/phone."""
    con = reader.connect()
    sql = ("SELECT c.id, c.name, c.emails, c.phones, json_extract_string(c.fields, '$.wa_user_id') AS wa_user_id, "
           "(SELECT count(*) FROM tickets t WHERE t.contact = c.id) AS tickets "
           "FROM contacts c WHERE c.merged_into IS NULL")
    params: list = []
    if search:
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
    row = get_contact(reader, cid)
    con = reader.connect()
    merged = [r[0] for r in con.execute("SELECT id FROM contacts WHERE merged_into = ?", [cid]).fetchall()]
    ids = [cid, *merged]
    cur = con.execute("SELECT number, status, channel, inbox, team, subject, created_at, updated_at FROM tickets "
                      "WHERE contact IN (SELECT unnest(?::BIGINT[])) ORDER BY created_at", [ids])
    names = [d[0] for d in cur.description]
    tickets = access.visible([dict(zip(names, r, strict=True)) for r in cur.fetchall()])  # an agent: their teams'
    return {"contact": row, "merged": merged, "tickets": tickets}


def contact_link(batch, cid: int, emails=(), phones=(), wa_user_ids=(), name: str | None = None) -> dict | None:
    """Add identifiers to a contact; refuse one that already belongs to another contact.

    Returns the `contact.updated` event, or None when the contact already has them all.
    """
    row = get_contact(batch.reader, cid)
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
        if uid and contact_fields(row).get("wa_user_id") != uid:
            sets["fields.wa_user_id"] = uid
    if name and name != row.get("name"):
        sets["name"] = name
    if sets:
        data["set"] = sets
    if not data:
        return None
    return batch.emit("contact.updated", contact=cid, data=data)


def _not_elsewhere(owner: int | None, cid: int, what: str) -> None:
    if owner is not None and owner != cid:
        raise UsageError(f"{what} belongs to contact {owner}; "
                         f"to make them one customer: tix contact merge {owner} {cid}")


def contact_merge(batch, src: int, dst: int, why: str | None = None) -> list[dict]:
    """Fold contact `src` into `dst` (see the module docstring); returns the events emitted."""
    if src == dst:
        raise UsageError("cannot merge a contact into itself")
    reader = batch.reader
    a, b = get_contact(reader, src), get_contact(reader, dst)
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
    fa, fb = contact_fields(a), contact_fields(b)
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
