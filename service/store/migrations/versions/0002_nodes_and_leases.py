"""Cluster groundwork: `nodes` (heartbeats) and `leases` (who runs a session, with a
fencing token that only grows). New tables only, so a database at 0001 (including a SQLite
file adopted from before Alembic) keeps every row. Frozen: later changes are new revisions.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    attributes = context.config.attributes
    prefix: str = attributes["prefix"]
    options: dict[str, Any] = {
        "mysql_engine": "InnoDB",
        "mysql_charset": "utf8mb4",
        "mysql_collate": attributes.get("collation", "utf8mb4_bin"),
    }
    op.create_table(
        f"{prefix}nodes",
        sa.Column("node_id", sa.String(64), primary_key=True, autoincrement=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("address", sa.String(255)),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("sessions", sa.Integer, nullable=False, server_default="0"),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("heartbeat_at", sa.Double, nullable=False),
        sa.Column("draining", sa.Integer, nullable=False, server_default="0"),
        **options,
    )
    op.create_table(
        f"{prefix}leases",
        sa.Column("session_id", sa.String(64), primary_key=True, autoincrement=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("acquired_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        **options,
    )
    op.create_index(f"{prefix}leases_node", f"{prefix}leases", ["node_id"])
    op.create_index(f"{prefix}leases_expiry", f"{prefix}leases", ["expires_at"])


def downgrade() -> None:
    prefix: str = context.config.attributes["prefix"]
    op.drop_table(f"{prefix}leases")
    op.drop_table(f"{prefix}nodes")
