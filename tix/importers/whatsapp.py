"""WhatsApp chat exports (stub)."""
