"""Alembic revisions of the store's schema, oldest first (0001 is the baseline, 0002 adds
the cluster's nodes and leases)."""
