"""The messages' `media_stored_at`: when an inbound media file was written, so the retention
cleanup (SIDECAR_MEDIA_RETENTION_DAYS) finds the expired ones by an index instead of reading
every message. Inbound messages that kept a file before it get their `created_at` (the file
was written as the message was recorded), so the cleanup reaches old files too. Frozen:
later changes are new revisions.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    with op.batch_alter_table(f"{prefix}messages") as batch:
        batch.add_column(sa.Column("media_stored_at", sa.Double, nullable=True))
        batch.create_index(f"{prefix}messages_media_stored", ["media_stored_at"])
    messages = sa.table(
        f"{prefix}messages",
        sa.column("direction", sa.String),
        sa.column("content", sa.Text),
        sa.column("created_at", sa.Double),
        sa.column("media_stored_at", sa.Double),
    )
    # The content is the JSON json.dumps wrote: a kept inbound file reads `"file": "media/in/`.
    op.execute(
        messages.update()
        .where(
            messages.c.direction == "in",
            messages.c.content.like('%"file": "media/in/%'),
        )
        .values(media_stored_at=messages.c.created_at)
    )


def downgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    with op.batch_alter_table(f"{prefix}messages") as batch:
        batch.drop_index(f"{prefix}messages_media_stored")
        batch.drop_column("media_stored_at")
