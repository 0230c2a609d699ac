"""pytest fixtures for the rules tests (servers, sample data)."""
