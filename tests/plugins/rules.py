"""pytest fixtures for the rules tests: a store with only the test's own rules, and messages.

Messages are written as the email/WhatsApp intake records them (`ticket.created` +
`message.received`), straight into the store's log, so the rules tests do not depend on
the channel code.
"""
from __future__ import annotations

import shutil
import textwrap
from datetime import datetime, timezone

import pytest

from tix.store import Store
from tix.store.log import iso


class RulesKit:
    def __init__(self, store: Store, mp=None):
        self.store = store
        self.mp = mp

    def rules(self, text: str, name: str = "50-test.yaml") -> str:
        """Write a rule file (dedented) into the store's rules/; returns its path."""
        path = self.store.path("rules", name)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return str(path)

    def template(self, name: str, text: str) -> None:
        self.store.path("templates", name).write_text(text, encoding="utf-8")

    def message(self, number: int | None = None, *, channel: str = "email", sender: str = "rina@example.com",
                subject: str = "Pertanyaan", text: str = "", name: str | None = None, to=None, cc=None,
                inbox: str | None = None, auto: bool = False, auto_reason: str | None = None,
                attachments=(), language: str | None = None, wa_type: str | None = None,
                at: datetime | None = None, contact: int | None = None, ticket_fields: dict | None = None) -> int:
        """A new ticket with its first message (number None), or a reply on ticket `number`."""
        ts = iso(at or datetime.now(timezone.utc))
        if at is not None and self.mp is not None:
            # Route as it would run live, just after the message arrived: auto-replies and
            # notifications go only to messages newer than `act_within` (issue 17).
            self.mp.setenv("TIX_NOW", ts)
        inbox = inbox or ("support@toko.co.id" if channel == "email" else "6281100001111")
        data = {"channel": channel, "from": sender, "from_name": name, "to": list(to or [inbox]),
                "cc": list(cc or []), "subject": subject, "text": text, "attachments": list(attachments),
                "auto": auto, "auto_reason": auto_reason, "language": language, "inbox": inbox}
        if wa_type:
            data["wa_type"] = wa_type
        with self.store.writing(actor=f"channel:{channel}", via="test intake") as batch:
            if number is None:
                if contact is None:
                    from tix.tickets import create_contact

                    email, phone = (sender, None) if "@" in sender else (None, sender)
                    contact = create_contact(batch, name, emails=[email] if email else [],
                                             phones=[phone] if phone else [])
                number = batch.new_ticket_number()
                created = {"subject": subject, "status": "new", "priority": "normal", "channel": channel,
                           "inbox": inbox, **(ticket_fields or {})}
                if contact is not None:
                    created["contact"] = contact
                batch.emit("ticket.created", ticket=number, data=created, ts=ts)
            batch.emit("message.received", ticket=number, data=data, ts=ts)
        return number

    def contact(self, email: str, **fields) -> int:
        from tix.tickets import create_contact

        with self.store.writing(via="test") as batch:
            return create_contact(batch, "Pelanggan", emails=[email], fields=fields)

    def events(self, type_prefix: str = "", ticket: int | None = None) -> list[dict]:
        evs = [ev for ev, _pos in self.store.log.read()]
        return [e for e in evs if e["type"].startswith(type_prefix) and (ticket is None or e.get("ticket") == ticket)]

    def ticket(self, number: int) -> dict:
        return Store(self.store.root).read().ticket(number)


@pytest.fixture
def rk(store, monkeypatch) -> RulesKit:
    """The store with an empty rules/ (the examples removed) and helpers to fill it."""
    shutil.rmtree(store.path("rules"))
    store.path("rules").mkdir()
    return RulesKit(store, monkeypatch)
