"""A session's browser proxy: `proxy_url` (`scheme://host:port`, no credentials) and
`proxy_sealed` (its username and password, sealed with SIDECAR_ENCRYPTION_KEY). Two
nullable columns: existing sessions keep connecting directly, as before.
Frozen: later changes are new revisions.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    with op.batch_alter_table(f"{prefix}sessions") as batch:
        batch.add_column(sa.Column("proxy_url", sa.Text, nullable=True))
        batch.add_column(sa.Column("proxy_sealed", sa.Text, nullable=True))


def downgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    with op.batch_alter_table(f"{prefix}sessions") as batch:
        batch.drop_column("proxy_sealed")
        batch.drop_column("proxy_url")
