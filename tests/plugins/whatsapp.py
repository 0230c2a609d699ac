"""pytest fixtures for the whatsapp tests (servers, sample data)."""
