"""Compatibility: the message index moved to `tix.ingest.index` (it is the intake's, and
indexes WhatsApp too). `tix.outbox` and `tix.channels.smtp` still import it from here;
delete this module once they import `tix.ingest.index.MessageIndex`."""
from tix.ingest.index import MessageIndex as MailIndex

__all__ = ["MailIndex"]
