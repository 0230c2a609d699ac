"""pytest fixtures for the email tests (servers, sample data)."""
