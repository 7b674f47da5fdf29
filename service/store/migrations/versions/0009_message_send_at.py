"""The messages' `send_at`: when a `scheduled` message may be sent (Unix seconds), and an
index the sender finds the next due one by. Nullable: existing messages are sent in queue
order, as before. Frozen: later changes are new revisions.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    with op.batch_alter_table(f"{prefix}messages") as batch:
        batch.add_column(sa.Column("send_at", sa.Double, nullable=True))
        batch.create_index(f"{prefix}messages_scheduled", ["session_id", "status", "send_at"])


def downgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    with op.batch_alter_table(f"{prefix}messages") as batch:
        batch.drop_index(f"{prefix}messages_scheduled")
        batch.drop_column("send_at")
