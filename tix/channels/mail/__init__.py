"""The email channel: fetch (IMAP, maildir, mbox) and decode (parse) mail.

- `imap`, `maildir`, `mbox`: the sources (`tix.channels.base.Source`), each yielding raw
  messages with their source key and acknowledging them once `tix.ingest` has stored them.
- `parse`: raw bytes -> `Parsed` (addresses, subject, thread headers, text, attachments,
  loop protection, bounces) or `Unparseable`; `parseworker`: the same in a child process.

Threading, contacts, tickets and de-duplication are not here: `tix.ingest.mail` does them.
"""
from __future__ import annotations

from email.utils import parseaddr


def own_addresses(config) -> tuple[str, ...]:
    """The addresses tix receives and sends mail as (`channels:` addresses, `outbound.from`):
    mail from them is ours, never a customer's (loop protection)."""
    out = []
    for spec in config.section("channels", []) or []:
        addr = spec.get("address") or spec.get("user")
        if addr and "@" in str(addr):
            out.append(str(addr).lower())
    frm = (config.section("outbound", {}) or {}).get("from")
    if frm:
        a = parseaddr(str(frm))[1].lower()
        if a:
            out.append(a)
    return tuple(dict.fromkeys(out))


def inbox_of(spec: dict, parsed) -> str | None:
    """The inbox a message came in on: its source's address, else the first To address."""
    addr = spec.get("address") or spec.get("user")
    if addr and "@" in str(addr):
        return str(addr).lower()
    return parsed.to[0] if parsed.to else None
