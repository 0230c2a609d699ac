"""tix: a command-line helpdesk for email and WhatsApp over a store of plain files."""

__version__ = "0.1.0"
