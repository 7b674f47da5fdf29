"""The host each node runs on (`nodes.host`), so a worker about to open a profile can tell
whether the host named in Chromium's lock on it still holds the session. One nullable
column: rows written before it keep working. Frozen: later changes are new revisions.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    with op.batch_alter_table(f"{prefix}nodes") as batch:
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))


def downgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    with op.batch_alter_table(f"{prefix}nodes") as batch:
        batch.drop_column("host")
