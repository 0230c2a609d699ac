"""pytest fixtures for the sla tests (servers, sample data)."""
