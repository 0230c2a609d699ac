"""Compatibility: the mail parser moved to `tix.channels.mail.parse`. `tix.outbox` still
imports `is_auto_submitted` from here; delete this module once it imports the new path."""
from tix.channels.mail.parse import is_auto_submitted

__all__ = ["is_auto_submitted"]
