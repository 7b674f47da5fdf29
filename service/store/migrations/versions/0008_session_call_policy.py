"""A session's call policy: `call_policy`, JSON `{reject, message}` (reject incoming calls,
and answer the caller with that text). Nullable: existing sessions let calls ring, as before.
Frozen: later changes are new revisions.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    with op.batch_alter_table(f"{prefix}sessions") as batch:
        batch.add_column(sa.Column("call_policy", sa.Text, nullable=True))


def downgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    with op.batch_alter_table(f"{prefix}sessions") as batch:
        batch.drop_column("call_policy")
