"""Typed exceptions of the core; only the CLI turns them into messages and exit codes.

Exit codes (documented in the README and `tix --help`):

    0   done
    1   finished, but some items failed or were quarantined; or ticket not found
    2   usage or configuration error: nothing was written
    75  the store is still locked by another tix process after waiting (EX_TEMPFAIL)
"""
from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75


class TixError(Exception):
    """Base of every error the CLI shows as one line."""

    exit_code = EXIT_PARTIAL


class UsageError(TixError):
    """A bad argument, field, value or filter; nothing was written."""

    exit_code = EXIT_USAGE


class NotFound(TixError):
    """A ticket or contact that does not exist."""

    exit_code = EXIT_PARTIAL


class StoreNotFound(TixError):
    exit_code = EXIT_USAGE


class StoreLocked(TixError):
    exit_code = EXIT_LOCKED


class StoreWriteError(TixError):
    """A write to the store failed (a full disk, an I/O error) and was undone: one line naming
    the store, the file and the free space needed (`tix.store.files.write_error`)."""

    exit_code = EXIT_PARTIAL

    def __init__(self, message: str, path=None, needed: int | None = None, head: str | None = None):
        super().__init__(message)
        self.path = path
        self.needed = needed
        self.head = head or message  # what failed, without what became of the command

    def with_outcome(self, outcome: str) -> "StoreWriteError":
        """The same failure, saying differently what became of the command."""
        return StoreWriteError(f"{self.head}; {outcome}", self.path, self.needed, self.head)


@dataclass(frozen=True)
class Problem:
    """One problem in a file, shown as `file:line: message` (the shape every checker shares)."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class ConfigError(TixError):
    """One or more problems in a configuration, rule or report file."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SendTemporary(TixError):
    """A send that may work later (server down, rate limit): keep it queued and retry with backoff."""


class SendPermanent(TixError):
    """A send that will never work as it is (bad address, rejected content): stop retrying it."""


class ChannelStopped(TixError):
    """The channel itself is broken (bad credentials, token expired): stop using it and alert."""
