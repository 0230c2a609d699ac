"""Tickets: the verbs agents and admins use on one ticket, as plain functions.

Every function here takes a `Batch` (events being written under the store lock) or a
`Store`, validates its input against tix.yaml and the model, and emits one event per
change. The CLI only parses options and renders; tests call these directly.
"""
from __future__ import annotations

import shlex
from datetime import date

from tix import access
from tix.config import Config, suggest
from tix.errors import NotFound, UsageError
from tix.model import CHANNELS, PRIORITIES, SETTABLE, STATUSES
from tix.store import Batch
from tix.tickets.contacts import ContactIndex, find_or_create_contact
from tix.tickets.query import compile_filter, order_by

FIELD_NAMES_HELP = ", ".join(SETTABLE)


# -- validation ------------------------------------------------------------------------------
def normalize_field(config: Config, name: str) -> str:
    """`priority` -> `priority`; `order_id` -> `fields.order_id`; unknown -> UsageError."""
    name = name.strip()
    if name in SETTABLE:
        return name
    bare = name[7:] if name.startswith("fields.") else name
    if bare in config.custom_fields:
        return f"fields.{bare}"
    choices = (*SETTABLE, *config.custom_fields)
    raise UsageError(f"unknown field {name!r}{suggest(name, choices)}; fields: {', '.join(choices)}")


def coerce_value(config: Config, name: str, value):
    """Validate `value` for field `name` (already normalized); return the value to store."""
    if value in ("", None, "none", "-") and name in ("assignee", "team", "category") or (
            name.startswith("fields.") and value in ("", None)):
        return None
    if name == "status":
        return _one_of(value, STATUSES, "status")
    if name == "priority":
        return _one_of(value, PRIORITIES, "priority")
    if name == "channel":
        return _one_of(value, CHANNELS, "channel")
    if name == "assignee":
        return config.check_agent(str(value))
    if name == "team":
        return config.check_team(str(value))
    if name == "contact":
        try:
            return int(str(value).lstrip("c"))
        except ValueError:
            raise UsageError(f"contact must be a contact id, got {value!r}") from None
    if name.startswith("fields."):
        return _custom(config.custom_fields[name[7:]], name[7:], value)
    if name == "subject" and not str(value).strip():
        raise UsageError("subject must not be empty")
    return str(value)


def _one_of(value, allowed, what):
    v = str(value).strip().lower()
    if v not in allowed:
        raise UsageError(f"invalid {what} {value!r}{suggest(v, allowed)}; {what} is one of: {', '.join(allowed)}")
    return v


def _custom(spec: dict, name: str, value):
    """A custom ticket or contact field's value, by its tix.yaml spec (`type`, `values`)."""
    allowed = [str(v) for v in spec.get("values") or ()]
    if allowed and str(value) not in allowed:
        raise UsageError(f"invalid {name} {value!r}{suggest(str(value), allowed)}; {name} is one of: "
                         f"{', '.join(allowed)}")
    kind = spec.get("type", "string")
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            v = str(value).lower()
            if v not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError(value)
            return v in ("true", "yes", "1")
        if kind == "date":
            return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise UsageError(f"custom field {name!r} must be {kind}, got {value!r}") from None
    return str(value)


def parse_assignments(config: Config, pairs: list[str]) -> dict:
    """`["status=open", "order_id=X"]` -> {"status": "open", "fields.order_id": "X"}."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"bad --set {pair!r}: use FIELD=VALUE; "
                             f"fields: {', '.join((*SETTABLE, *config.custom_fields))}")
        name, value = pair.split("=", 1)
        key = normalize_field(config, name)
        out[key] = coerce_value(config, key, value)
    return out


def clean_tags(tags) -> list[str]:
    out = []
    for tag in tags or ():
        t = str(tag).strip().lower()
        if not t or any(c.isspace() or c == "," for c in t):
            raise UsageError(f"invalid tag {tag!r}: tags are single words without commas")
        if t not in out:
            out.append(t)
    return out


# -- tickets ---------------------------------------------------------------------------------
def create_ticket(batch: Batch, subject: str, *, channel: str = "phone", contact: int | None = None,
                  priority: str = "normal", status: str = "new", team: str | None = None,
                  assignee: str | None = None, category: str | None = None, tags=(), fields=None,
                  inbox: str | None = None, body: str | None = None, why: str | None = None,
                  config: Config | None = None) -> int:
    """Create a ticket (and, with `body`, a note holding what the customer said)."""
    config = config or batch.store.config
    data = {"subject": coerce_value(config, "subject", subject),
            "status": coerce_value(config, "status", status),
            "priority": coerce_value(config, "priority", priority),
            "channel": coerce_value(config, "channel", channel)}
    if team:
        data["team"] = config.check_team(team)
    if assignee:
        data["assignee"] = config.check_agent(assignee)
    if category:
        data["category"] = str(category)
    if tags:
        data["tags"] = clean_tags(tags)
    if inbox:
        data["inbox"] = inbox
    if contact is not None:
        data["contact"] = contact
    if fields:
        data["fields"] = {k[7:] if k.startswith("fields.") else k: v for k, v in fields.items()}
    number = batch.new_ticket_number()
    batch.emit("ticket.created", ticket=number, data=data, why=why)
    if body:
        batch.emit("ticket.note", ticket=number, data={"body": body, "kind": "intake"})
    return number


def new_ticket(batch: Batch, subject: str, *, name: str | None = None, email: str | None = None,
               phone: str | None = None, assignee: str | None = None, **details) -> int:
    """`tix new`: a ticket logged by hand (a phone call, a walk-in); returns its number.

    The customer's contact is found by `email`/`phone` or created (also from `name` alone);
    an assigned ticket starts `open`. Other keywords as for `create_ticket`.
    """
    contact = None
    if email or phone or name:
        contact = find_or_create_contact(batch, ContactIndex.load(batch.reader), name=name, email=email, phone=phone)
    return create_ticket(batch, subject, contact=contact, assignee=assignee,
                         status="open" if assignee else "new", **details)


def assign(batch: Batch, row: dict, agent: str | None, team: str | None = None,
           why: str | None = None) -> dict | None:
    """`tix assign`: give the ticket to `agent` (None or "none": unassign), and to `team` if given.

    A new ticket that gets an assignee becomes `open`. Returns the event, None if nothing changed.
    """
    config = batch.store.config
    changes = {"assignee": coerce_value(config, "assignee", agent or "none")}
    if team:
        changes["team"] = coerce_value(config, "team", team)
    if changes["assignee"] and row.get("status") == "new":
        changes["status"] = "open"
    return set_fields(batch, row, changes, why=why)


def close(batch: Batch, row: dict, resolved: bool = False, why: str | None = None) -> dict | None:
    """`tix close`: status `closed` (or `resolved`, which a customer's reply reopens)."""
    return set_fields(batch, row, {"status": "resolved" if resolved else "closed"}, why=why)


def reopen(batch: Batch, row: dict, why: str | None = None) -> dict | None:
    """`tix reopen`: a resolved or closed ticket becomes `open`; any other status is a UsageError."""
    if row["status"] not in ("resolved", "closed"):
        raise UsageError(f"#{row['number']} is {row['status']}, not resolved or closed")
    return set_fields(batch, row, {"status": "open"}, why=why)


def set_fields(batch: Batch, row: dict, changes: dict, why: str | None = None) -> dict | None:
    """Emit one `ticket.updated` with the fields that actually change; None if none do."""
    custom = None  # the row's custom fields, decoded when a change names one
    new, old = {}, {}
    for key, value in changes.items():
        if key.startswith("fields."):
            if custom is None:
                import orjson

                custom = orjson.loads(row.get("fields") or "{}")
            current = custom.get(key[7:])
        else:
            current = row.get(key)
        if current != value:
            new[key] = value
            old[key] = current
    if not new:
        return None
    if "team" in new:
        access.check_team_change(row, new["team"])  # across teams: leads
    ev = batch.emit("ticket.updated", ticket=row["number"], data={"set": new, "old": old}, why=why)
    _apply_local(row, new)
    return ev


def tag(batch: Batch, row: dict, add=(), remove=(), why: str | None = None) -> dict | None:
    current = list(row.get("tags") or [])
    add = [t for t in clean_tags(add) if t not in current]
    remove = [t for t in clean_tags(remove) if t in current]
    if not add and not remove:
        return None
    data = {}
    if add:
        data["add"] = add
    if remove:
        data["remove"] = remove
    ev = batch.emit("ticket.tagged", ticket=row["number"], data=data, why=why)
    row["tags"] = sorted(set(current) - set(remove) | set(add))
    return ev


def note(batch: Batch, row: dict, body: str, why: str | None = None) -> dict:
    if not body or not body.strip():
        raise UsageError("a note needs text (-m TEXT, or stdin)")
    return batch.emit("ticket.note", ticket=row["number"], data={"body": body}, why=why)


def _apply_local(row: dict, new: dict) -> None:
    for key, value in new.items():
        if not key.startswith("fields."):
            row[key] = value


def get_ticket(batch_or_store, number: int) -> dict:
    reader = batch_or_store.reader if isinstance(batch_or_store, Batch) else batch_or_store.read()
    row = reader.ticket(number)
    if row is None:
        raise NotFound(f"ticket #{number} not found")
    access.check_ticket(row)  # an agent works the tickets of their teams
    return dict(row)


# -- selection (list / update) ---------------------------------------------------------------
LIST_COLUMNS = ("number", "status", "priority", "team", "assignee", "channel", "subject", "created_at", "updated_at")


def _body_search(store):
    """Bare words and `text:` of a filter also search message bodies (tix.store.search)."""
    from tix.store.search import SearchIndex

    index = SearchIndex(store)
    return lambda words: index.tickets(shlex.quote(words))  # a "quoted phrase" stays one phrase


def select(reader, filter_text="", *, columns=LIST_COLUMNS, sort="-updated", limit: int | None = None,
           numbers: list[int] | None = None, default_open: bool = False, config: Config | None = None,
           con=None) -> list[dict]:
    """Tickets matching a filter (and/or a list of numbers) as dicts, sorted and limited.

    Run by an agent (tix.access), only their teams' tickets and team-less ones are selected.
    """
    config = config or reader.store.config
    flt = compile_filter(filter_text, config.custom_fields, tz=config.setting("timezone"),
                         search=_body_search(reader.store))
    where, params = [flt.sql], list(flt.params)
    scope = access.list_scope()
    if scope:
        limit_to = compile_filter(scope, config.custom_fields, tz=config.setting("timezone"))
        where.append(limit_to.sql)
        params += limit_to.params
    if default_open and not flt.mentions_status:
        where.append("status IN ('new', 'open', 'pending')")
    if numbers is not None:  # as one string: DuckDB converts a Python list of 100k ints 4x slower
        where.append("number IN (SELECT CAST(unnest(string_split(?, ',')) AS BIGINT))" if numbers else "false")
        if numbers:
            params.append(",".join(map(str, map(int, numbers))))
    cols = ", ".join(f'"{c}"' for c in columns)
    sql = f"SELECT {cols} FROM tickets WHERE {' AND '.join(where)} ORDER BY {order_by(sort)}"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    con = con or reader.connect(only=flt.views)  # the tickets view (and contacts, for contact.FIELD terms)
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
