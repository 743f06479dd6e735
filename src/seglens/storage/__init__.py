"""Persistence: content-addressed artifact files (and, for the server, the SQL store)."""
