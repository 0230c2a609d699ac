"""Bulk updates: one change applied to every ticket a filter (or a list of numbers) selects.

`tix update` and admin scripts call `bulk_update`; everything is validated before anything
is written, and `dry_run` describes the events without writing them.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field

from tix import access
from tix.errors import NotFound, UsageError
from tix.model import fmt_number
from tix.store import DryBatch, Store
from tix.tickets.core import clean_tags, parse_assignments, select, set_fields, tag
from tix.tickets.core import note as add_note


@dataclass
class UpdateResult:
    matched: int = 0
    changed: int = 0
    events: int = 0
    preview: list[str] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)


def bulk_update(store: Store, filter_text: str = "", *, numbers: list[int] | None = None,
                set_pairs: list[str] = (), add_tags=(), remove_tags=(), note: str | None = None,
                why: str | None = None, dry_run: bool = False, confirmed: bool = False,
                actor: str = "user:unknown", all_statuses: bool = False) -> UpdateResult:
    """Apply changes to every ticket matching `filter_text` (and/or `numbers`).

    A filter selects open tickets (new, open, pending), as `tix list` does, unless it names a
    status (`status:closed`, `is:any`) or `all_statuses` is set; `numbers` given without a
    filter are taken whatever their status.

    Everything is validated before anything is written: a bad field, value or filter raises
    UsageError; unknown ticket numbers raise NotFound. Without `confirmed`, more than the
    `bulk_confirm_over` setting is refused. One event per change, all fsynced together.
    """
    config = store.config
    changes = parse_assignments(config, list(set_pairs))
    add, remove = clean_tags(add_tags), clean_tags(remove_tags)
    if not (changes or add or remove or note):
        raise UsageError("nothing to do: give --set, --add-tag, --remove-tag or --note")
    if not filter_text.strip() and numbers is None:
        raise UsageError("give a filter (e.g. status:open team:billing) or --ids -; "
                         "to change every ticket say so with the filter is:any")
    if dry_run:
        batch = DryBatch(store, None, actor, "tix update --dry-run")
        return _apply(batch, store, filter_text, numbers, changes, add, remove, note, why, True, True,
                      all_statuses)
    with store.writing(actor=actor, via="tix update") as batch:
        return _apply(batch, store, filter_text, numbers, changes, add, remove, note, why, confirmed, False,
                      all_statuses)


@contextmanager
def _no_gc():
    """Without the cycle collector: an update makes a few dicts per ticket and no cycles, and
    with 100k rows alive, its passes over them took half the time of the loop."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _apply(batch, store, filter_text, numbers, changes, add, remove, note, why, confirmed, dry_run,
           all_statuses=False) -> UpdateResult:
    with _no_gc():
        return _plan(batch, store, filter_text, numbers, changes, add, remove, note, why, confirmed, dry_run,
                     all_statuses)


def _plan(batch, store, filter_text, numbers, changes, add, remove, note, why, confirmed, dry_run,
          all_statuses) -> UpdateResult:
    # only the columns the changes compare with (and `team`, for an agent's scope), and those
    # the fold reads for these events (the batch folds them: see below): fetching every
    # ticket's tags and custom fields costs more than the rest of a large update
    columns = ["number", "team", *(["tags"] if add or remove else []),
               *(["fields"] if any(k.startswith("fields.") for k in changes) else []),
               *[k for k in changes if not k.startswith("fields.")],
               *(["resolved_at", "closed_at", "reopened"] if "status" in changes else []),
               *(["notes"] if note else [])]
    rows = select(batch.reader, filter_text, columns=list(dict.fromkeys(columns)), sort="number",
                  numbers=numbers, config=store.config,
                  default_open=bool(filter_text.strip()) and not all_statuses)
    if numbers is not None:
        missing = sorted(set(numbers) - {r["number"] for r in rows}) if not filter_text.strip() else []
        if missing:
            shown = ", ".join(fmt_number(n) for n in missing[:10]) + (" …" if len(missing) > 10 else "")
            raise NotFound(f"{len(missing)} ticket(s) not found: {shown}; nothing changed")
    access.check_bulk(rows)  # a lead's bulk update stays within their teams
    limit = store.config.setting("bulk_confirm_over")
    if len(rows) > limit and not confirmed:
        raise UsageError(f"refusing to change {len(rows)} tickets without --yes "
                         f"(more than bulk_confirm_over={limit}); check with --dry-run first")
    result = UpdateResult(matched=len(rows))
    for row in rows:
        start = len(batch.pending)
        if not dry_run:  # the snapshot refresh after a large update writes these rows as folded
            batch.fold_onto(row, copy=False)  # set_fields and tag change a row after its event, as it did
        if changes:
            set_fields(batch, row, changes, why=why)
        if add or remove:
            tag(batch, row, add, remove, why=why)
        if note:
            add_note(batch, row, note, why=why)
        made = batch.pending[start:]
        if made:
            result.changed += 1
            result.events += len(made)
            if dry_run:
                result.preview.append(f"{fmt_number(row['number'])}: " + "; ".join(_describe(e) for e in made))
                result.changes.append({"ticket": row["number"], "events": [
                    {"type": e["type"], "data": e["data"]} for e in made]})
        if not dry_run and len(batch.pending) >= 10000:
            batch.flush(commit=False)  # frees memory; the whole update still commits as one batch
            batch.forget_written()  # (nothing reads back what an update wrote)
    return result


def _describe(ev: dict) -> str:
    data = ev["data"]
    if ev["type"] == "ticket.updated":
        return ", ".join(f"{k}: {data['old'].get(k)!s} -> {v!s}" for k, v in data["set"].items())
    if ev["type"] == "ticket.tagged":
        return " ".join([*(f"+{t}" for t in data.get("add", [])), *(f"-{t}" for t in data.get("remove", []))])
    return "note"

