"""Campaigns: `campaigns` (one bulk send: its message, pacing, window, stop rule and where
it stands) and `campaign_recipients` (one row per recipient, in order, with the message it
became). New tables only. Frozen: later changes are new revisions.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    attributes = context.config.attributes
    p: str = attributes["prefix"]
    options: dict[str, Any] = {
        "mysql_engine": "InnoDB",
        "mysql_charset": "utf8mb4",
        "mysql_collate": attributes.get("collation", "utf8mb4_bin"),
    }
    op.create_table(
        f"{p}campaigns",
        sa.Column("id", sa.String(40), primary_key=True, autoincrement=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(190), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("message", _LONG_TEXT, nullable=False),
        sa.Column("options", sa.Text, nullable=False),
        sa.Column("start_at", sa.Double),
        sa.Column("reason", sa.Text),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("enqueued", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_message_id", sa.String(40)),
        sa.Column("settled", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("base_settled", sa.Integer, nullable=False, server_default="0"),
        sa.Column("base_failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_send_at", sa.Double),
        sa.Column("progress_at", sa.Double),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("started_at", sa.Double),
        sa.Column("finished_at", sa.Double),
        **options,
    )
    op.create_index(f"{p}campaigns_session", f"{p}campaigns", ["session_id", "status"])
    op.create_index(f"{p}campaigns_status", f"{p}campaigns", ["status"])
    op.create_table(
        f"{p}campaign_recipients",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(40), nullable=False),
        sa.Column("chat_id", sa.String(128), nullable=False),
        sa.Column("variables", _LONG_TEXT),
        sa.Column("key", sa.String(190)),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("message_id", sa.String(40)),
        sqlite_autoincrement=True,
        **options,
    )
    op.create_index(
        f"{p}campaign_recipients_order",
        f"{p}campaign_recipients",
        ["campaign_id", "status", "seq"],
    )
    op.create_index(
        f"{p}campaign_recipients_all", f"{p}campaign_recipients", ["campaign_id", "seq"]
    )


def downgrade() -> None:
    p: str = context.config.attributes["prefix"]
    op.drop_table(f"{p}campaign_recipients")
    op.drop_table(f"{p}campaigns")
