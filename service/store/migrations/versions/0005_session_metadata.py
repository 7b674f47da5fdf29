"""A session's own `metadata` (a small JSON object sent back in every webhook of the
session) and `webhook_events` (which events go to its webhook), both as JSON text. Two
nullable columns: existing sessions keep no metadata and send every event, as before.
Frozen: later changes are new revisions.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    with op.batch_alter_table(f"{prefix}sessions") as batch:
        batch.add_column(sa.Column("metadata", sa.Text, nullable=True))
        batch.add_column(sa.Column("webhook_events", sa.Text, nullable=True))


def downgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    with op.batch_alter_table(f"{prefix}sessions") as batch:
        batch.drop_column("webhook_events")
        batch.drop_column("metadata")
