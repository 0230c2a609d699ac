"""Tickets and contacts: what agents, admins and the stages change, one event per change.

This package owns the ticket and contact verbs and their validation against tix.yaml:
creating, setting fields, tagging, noting, assigning, closing and reopening a ticket
(`core`); finding, creating, linking and merging contacts (`contacts`); the filter language
that selects tickets (`query`); what `tix show` prints (`show`); bulk updates over a
filter (`bulk`); how statuses follow the conversation (`status`, the one description of
the state machine); what each agent has seen and collisions (`seen`); an agent's reply
(`reply`); and an agent's own queue, `tix mine` and `tix next` (`work`).
Writers take a `tix.store.Batch` (events collected under the store lock),
readers a `tix.store.Reader`; intake, rules and SLA steps call the same functions as the
CLI does. The public names of `core` and `contacts` are importable from here.
"""
from __future__ import annotations

from tix.tickets.contacts import (
    ContactIndex,
    contact_fields,
    contact_link,
    contact_merge,
    contact_rows,
    contact_view,
    create_contact,
    find_or_create_contact,
    get_contact,
    normalize_phone,
    parse_contact_id,
)
from tix.tickets.core import (
    FIELD_NAMES_HELP,
    LIST_COLUMNS,
    assign,
    clean_tags,
    close,
    coerce_value,
    create_ticket,
    get_ticket,
    new_ticket,
    normalize_field,
    note,
    parse_assignments,
    reopen,
    select,
    set_fields,
    tag,
)

__all__ = [
    "FIELD_NAMES_HELP", "LIST_COLUMNS", "ContactIndex", "assign", "clean_tags", "close", "coerce_value",
    "contact_fields", "contact_link", "contact_merge", "contact_rows", "contact_view", "create_contact",
    "create_ticket", "find_or_create_contact", "get_contact", "get_ticket", "new_ticket", "normalize_field",
    "normalize_phone", "note", "parse_assignments", "parse_contact_id", "reopen", "select", "set_fields", "tag",
]
