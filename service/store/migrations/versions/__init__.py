"""Alembic revisions of the store's schema, oldest first (0001 is the baseline)."""
