"""`tix` commands of this group (filled in by the issue that owns it)."""
from __future__ import annotations


def register(app) -> None:
    """Add this group's commands to the app."""
