"""pytest fixtures for the reports tests (servers, sample data)."""
