"""Search command: tix search QUERY (subjects, messages and notes, ranked, with the matching snippet)."""
from __future__ import annotations

from typing import List

import typer

from tix.cli.common import FormatOpt, check_format, open_store

COLUMNS = ["number", "status", "subject", "where", "snippet", "score"]


def register(app: typer.Typer) -> None:
    app.command("search")(search)


def search(
    query: List[str] = typer.Argument(..., metavar="QUERY...",
                                      help='Words (all must occur), word* (prefix), "a phrase".'),
    limit: int = typer.Option(20, "--limit", "-n", help="At most this many tickets (0 = no limit)."),
    fmt: str = FormatOpt,
) -> None:
    """Search subjects, messages (email and WhatsApp) and notes of every ticket, best match first.

    Case- and accent-insensitive (kafe finds Kafé); each ticket is shown once, with the snippet of
    its best match in [brackets]. Filters use the same index: tix list refund status:open.

    Examples:
      tix search paket rusak
      tix search '"nomor resi"' --format json
      tix search refund* -n 5
    """
    from tix.render import render
    from tix.store.search import SearchIndex

    check_format(fmt)
    store = open_store()
    hits = SearchIndex(store).search(" ".join(query), limit=limit or None)
    from tix import access

    tickets = store.read().tickets([h["ticket"] for h in hits]) if hits else {}
    seen = {t["number"] for t in access.visible([dict(t) for t in tickets.values()])}  # an agent: their teams'
    rows = []
    for h in hits:
        if h["ticket"] not in seen:
            continue
        t = tickets.get(h["ticket"]) or {}
        rows.append({"number": f"#{h['ticket']}" if fmt == "table" else h["ticket"], "status": t.get("status"),
                     "subject": t.get("subject"), "where": _WHERE.get(h["kind"], h["kind"]),
                     "snippet": h["snippet"], "score": h["score"]})
    render(rows, fmt, tz=store.config.setting("timezone"), columns=COLUMNS)


_WHERE = {"subject": "subject", "in": "customer", "out": "reply", "note": "note"}
