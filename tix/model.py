"""The shape of a ticket and a contact: allowed values, columns and their types.

One declaration drives validation (`tix set`, `tix update`, filters), the fold of events
into state, the Parquet snapshot schema and the DuckDB views.
"""
from __future__ import annotations

STATUSES = ("new", "open", "pending", "resolved", "closed")
OPEN_STATUSES = ("new", "open", "pending")
PRIORITIES = ("low", "normal", "high", "urgent")
PRIORITY_RANK = {p: i for i, p in enumerate(PRIORITIES)}
CHANNELS = ("email", "whatsapp", "phone", "web", "other")

# How values are shown to people, in English and Indonesian: field -> value -> (en, id).
# Reports (tix.reports.labels), notifications and auto-replies (the `label` of templates) use it;
# the store, JSON and CSV keep the values themselves.
VALUE_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "status": {"new": ("new", "baru"), "open": ("open", "terbuka"), "pending": ("pending", "menunggu pelanggan"),
               "resolved": ("resolved", "selesai"), "closed": ("closed", "ditutup")},
    "priority": {"low": ("low", "rendah"), "normal": ("normal", "normal"), "high": ("high", "tinggi"),
                 "urgent": ("urgent", "mendesak")},
    "channel": {"email": ("email", "email"), "whatsapp": ("WhatsApp", "WhatsApp"), "phone": ("phone", "telepon"),
                "web": ("web", "web"), "other": ("other", "lainnya")},
    "target": {"first_response": ("first response", "respons pertama"),
               "next_response": ("next response", "respons berikutnya"),
               "resolution": ("resolution", "penyelesaian"),
               "whatsapp_window": ("WhatsApp 24-hour window", "jendela 24 jam WhatsApp")},
    "state": {"ok": ("on track", "sesuai jadwal"), "warning": ("warning", "peringatan"),
              "breached": ("breached", "dilanggar"), "met": ("met", "terpenuhi"), "paused": ("paused", "dijeda"),
              "stopped": ("stopped", "dihentikan"), "running": ("running", "berjalan")},
}


def value_label(field: str, value, locale: str) -> str:
    """`value_label("priority", "high", "id")` -> `tinggi`; a value without a label is shown as it is."""
    labels = VALUE_LABELS.get(field, {}).get(str(value)) if value is not None else None
    if labels is None:
        return "" if value is None else str(value)
    return labels[1 if locale == "id" else 0]


# Ticket columns: name -> DuckDB/Arrow type. Order is the column order of the views.
TICKET_COLUMNS: dict[str, str] = {
    "number": "BIGINT",
    "subject": "VARCHAR",
    "status": "VARCHAR",
    "priority": "VARCHAR",
    "category": "VARCHAR",
    "team": "VARCHAR",
    "assignee": "VARCHAR",
    "tags": "VARCHAR[]",
    "channel": "VARCHAR",
    "inbox": "VARCHAR",  # the mailbox address or WhatsApp number it arrived on
    "contact": "BIGINT",
    "fields": "JSON",  # custom fields, a JSON object
    "created_at": "TIMESTAMP",
    "updated_at": "TIMESTAMP",
    "first_response_at": "TIMESTAMP",
    "resolved_at": "TIMESTAMP",
    "closed_at": "TIMESTAMP",
    "last_customer_at": "TIMESTAMP",
    "last_agent_at": "TIMESTAMP",
    "messages_in": "INTEGER",
    "messages_out": "INTEGER",
    "notes": "INTEGER",
    "reopened": "INTEGER",
    "routed_seq": "BIGINT",  # seq of the last event `tix route` has handled for this ticket
    "intake_seq": "BIGINT",  # seq of its creation or of the last customer message
    "last_seq": "BIGINT",  # seq of the last event that changed this ticket
}

CONTACT_COLUMNS: dict[str, str] = {
    "id": "BIGINT",
    "name": "VARCHAR",
    "emails": "VARCHAR[]",
    "phones": "VARCHAR[]",
    "fields": "JSON",
    "merged_into": "BIGINT",
    "created_at": "TIMESTAMP",
    "updated_at": "TIMESTAMP",
}

# Fields an agent or admin may set with `tix set` / `tix update --set`.
SETTABLE = ("subject", "status", "priority", "category", "team", "assignee", "channel", "inbox", "contact")
TIME_COLUMNS = tuple(k for k, v in TICKET_COLUMNS.items() if v == "TIMESTAMP")


def fmt_number(number: int) -> str:
    return f"#{number}"


def fmt_phone(phone) -> str:
    """How tix prints a phone number, everywhere: international with a plus, `+6281234567890`.

    Contacts store the digits (`6281234567890`, see tix.tickets.contacts.normalize_phone);
    anything that is not only digits (a WhatsApp username) is printed as it is.
    """
    text = str(phone or "")
    return "+" + text if text.isdigit() else text


def parse_number(text: str) -> int:
    """`#1042`, `1042` -> 1042; ValueError otherwise."""
    t = str(text).strip().lstrip("#")
    if not t.isdigit():
        raise ValueError(text)
    return int(t)
