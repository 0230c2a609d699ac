"""Savepoints: taking in an item is all or nothing.

An item (an email, a WhatsApp payload) may fail half-way, e.g. its second message after
the first made a contact and a ticket. Its failure must leave no trace but the quarantine
entry: not its events, not the ticket and contact numbers it took (the next item gets
them: no gaps), not the index entries, rows and contacts it added in memory (the next
item must not thread to a ticket that was never written), not its counts in the report.

`Savepoint.take` marks all of that before an item; `rollback` puts it back. The in-memory
state is restored from the `Journal`, an undo log every change the intake makes to its
dicts and sets during an item goes through; after an item is taken in, the journal is
cleared.
"""
from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from tix.channels.base import COUNTS

_counts = attrgetter(*COUNTS)

_MISSING = object()
_ADDED = object()


class Journal:
    """Undo log of the run's in-memory state while one item is taken in."""

    def __init__(self):
        self._log: list[tuple] = []

    def set(self, mapping: dict, key, value) -> None:
        """`mapping[key] = value`, undoably."""
        self._log.append((mapping, key, mapping.get(key, _MISSING)))
        mapping[key] = value

    def record(self, mapping: dict, key, old) -> None:
        """Note that `mapping[key]` (changed by someone else) was `old` before."""
        self._log.append((mapping, key, old))

    def add(self, container: set, value) -> None:
        """`container.add(value)`, undoably."""
        if value not in container:
            container.add(value)
            self._log.append((container, value, _ADDED))

    def mark(self) -> int:
        return len(self._log)

    def undo(self, mark: int = 0) -> None:
        log = self._log
        while len(log) > mark:
            container, key, old = log.pop()
            if old is _ADDED:
                container.discard(key)
            elif old is _MISSING:
                container.pop(key, None)
            else:
                container[key] = old

    def clear(self) -> None:
        self._log.clear()


@dataclass
class Savepoint:
    """Where a batch (`Batch.savepoint`: its events, last seq, ticket and contact counters),
    the journal and a report stood before one item."""

    batch: object
    journal: int
    counts: tuple
    errors: int
    warnings: int
    skips: int

    @classmethod
    def take(cls, batch, journal: Journal, report) -> "Savepoint":
        return cls(batch.savepoint(), journal.mark(), _counts(report), len(report.errors), len(report.warnings),
                   len(report.skips))

    def rollback(self, batch, journal: Journal, report) -> None:
        batch.rollback(self.batch)
        journal.undo(self.journal)
        for name, value in zip(COUNTS, self.counts, strict=True):
            setattr(report, name, value)
        del report.errors[self.errors:]
        del report.warnings[self.warnings:]
        del report.skips[self.skips:]
