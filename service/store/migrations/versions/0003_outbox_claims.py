"""Outbox claims: `claimed_by` and `claimed_until` on `outbox`, so any number of dispatchers
can share one store, each delivering a session's line only while it holds the claim on its
head. Two nullable columns: every row keeps its values and starts unclaimed. Frozen: later
changes are new revisions.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    with op.batch_alter_table(f"{prefix}outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.Double, nullable=True))


def downgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    with op.batch_alter_table(f"{prefix}outbox") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
