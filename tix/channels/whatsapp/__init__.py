"""The WhatsApp channel (Cloud API): receive, fetch and decode; send lives in
`tix.channels.whatsapp.send`.

- `config`: the `whatsapp:` section of tix.yaml (schema, validation, `Settings`).
- `webhook`: the receiver (`tix webhook serve`, WSGI `tix.channels.whatsapp.webhook:application`):
  verify the signature, spool the body durably, answer 200.
- `spool`: the spool as a `Source` for `tix fetch` (and the demo payloads).
- `payload`: a spooled payload -> messages, statuses and Meta's errors (`describe` gives a
  message's text and attachments).
- `media`: download an attachment by its media id.

Contacts, tickets, de-duplication (by wamid) and the events are `tix.ingest.whatsapp`'s.
"""
from __future__ import annotations

from tix.channels.whatsapp.config import Number, Settings, load_settings, validate_config

__all__ = ["Number", "Settings", "load_settings", "validate_config"]
