"""`tix demo`: the main job on bundled sample data, no server needed.

Creates a store from the example configuration, runs each stage of the pipeline that is
available (fetch from the bundled maildir and WhatsApp spool, route, escalate) and prints
the backlog.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from tix.store import Store


def run_demo(directory: Path, fmt: str = "table", out=None) -> Store:
    directory = Path(directory)
    if (directory / "tix.yaml").exists():
        shutil.rmtree(directory)
    store = Store.init(directory)
    _sample_tickets(store)
    from tix.render import render
    from tix.tickets import select

    rows = select(store.read(), "", columns=["number", "status", "priority", "team", "assignee", "channel", "subject"],
                  sort="-priority,number", default_open=True)
    render(rows, fmt, out=out, tz=store.config.setting("timezone"))
    return store


def _sample_tickets(store: Store) -> None:
    from tix.tickets import ContactIndex, create_ticket, find_or_create_contact

    samples = [
        ("Refund untuk pesanan INV-1001", "email", "sari@example.com", "Sari Wulandari", "high", "billing"),
        ("Paket belum sampai sejak minggu lalu", "whatsapp", "6281234567890", "Joko", "normal", "shipping"),
        ("Payment failed but money was deducted", "email", "tom@example.org", "Tom Baker", "urgent", "billing"),
        ("Cara mengganti alamat pengiriman?", "phone", "6285712345678", "Rina", "low", "support"),
    ]
    with store.writing(actor="system", via="tix demo") as batch:
        index = ContactIndex()
        for subject, channel, ident, name, prio, team in samples:
            email = ident if "@" in ident else None
            cid = find_or_create_contact(batch, index, name=name, email=email, phone=None if email else ident)
            create_ticket(batch, subject, channel=channel, contact=cid, priority=prio, team=team)
