"""Helpdesk exports (stub)."""
