"""Baseline: the schema of the hand-written version 4, tables named with the prefix.

A SQLite file from before Alembic (it has `schema_migrations`) is adopted, not recreated:
its missing legacy versions are applied, its tables renamed to the prefixed names, its
indexes recreated under prefixed names, and `schema_migrations` dropped, all in the one
transaction the migration runs in. Frozen: later changes are new revisions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

from service.store.migrations.legacy import (
    LEGACY_INDEXES,
    LEGACY_MIGRATIONS,
    LEGACY_TABLES,
    LEGACY_VERSION_TABLE,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _names() -> tuple[str, str]:
    attributes = context.config.attributes
    return attributes["prefix"], attributes.get("collation", "utf8mb4_bin")


def _indexes(p: str) -> list[tuple[str, str, list[str], bool]]:
    """(name, table, columns, unique) of every secondary index."""
    return [
        (f"{p}sessions_workspace", f"{p}sessions", ["workspace_id", "status"], False),
        (f"{p}sessions_meta_phone", f"{p}sessions", ["meta_phone_number_id"], False),
        (f"{p}messages_idempotency", f"{p}messages", ["workspace_id", "idempotency_key"], True),
        (f"{p}messages_queue", f"{p}messages", ["session_id", "status", "priority", "seq"], False),
        (f"{p}messages_provider_id", f"{p}messages", ["provider_message_id"], False),
        (f"{p}messages_provider_ref", f"{p}messages", ["session_id", "provider_ref"], False),
        (f"{p}outbox_pending", f"{p}outbox", ["status", "session_id", "seq"], False),
        (f"{p}seen_signatures_expiry", f"{p}seen_signatures", ["expires_at"], False),
    ]


def upgrade() -> None:
    prefix, collation = _names()
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and sa.inspect(bind).has_table(LEGACY_VERSION_TABLE):
        _adopt(bind, prefix)
        return
    options: dict[str, Any] = {
        "mysql_engine": "InnoDB",
        "mysql_charset": "utf8mb4",
        "mysql_collate": collation,
    }
    op.create_table(
        f"{prefix}sessions",
        sa.Column("session_id", sa.String(64), primary_key=True, autoincrement=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("provider_mode", sa.String(8), nullable=False, server_default="auto"),
        sa.Column("status", sa.String(16), nullable=False, server_default="stopped"),
        sa.Column("desired_state", sa.String(8), nullable=False, server_default="stopped"),
        sa.Column("phone_number", sa.String(32)),
        sa.Column("webhook_url", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("qr", sa.Text),
        sa.Column("qr_expires_at", sa.Double),
        sa.Column("meta_sealed", sa.Text),
        sa.Column("meta_phone_number_id", sa.String(64)),
        **options,
    )
    op.create_table(
        f"{prefix}messages",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("chat_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("content", _LONG_TEXT, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(8), nullable=False, server_default="normal"),
        sa.Column("provider", sa.String(8)),
        sa.Column("provider_message_id", sa.String(190)),
        sa.Column("idempotency_key", sa.String(190)),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("provider_ref", sa.String(190)),
        sqlite_autoincrement=True,
        **options,
    )
    op.create_table(
        f"{prefix}outbox",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("url", sa.Text),
        sa.Column("body", _LONG_TEXT, nullable=False),
        sa.Column("status", sa.String(12), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Double, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("delivered_at", sa.Double),
        sa.Column("give_up_at", sa.Double),
        sqlite_autoincrement=True,
        **options,
    )
    op.create_table(
        f"{prefix}seen_signatures",
        sa.Column("signature", sa.String(128), primary_key=True, autoincrement=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        **options,
    )
    for name, table, columns, unique in _indexes(prefix):
        op.create_index(name, table, columns, unique=unique)


def _adopt(bind: sa.Connection, prefix: str) -> None:
    """Bring a pre-Alembic SQLite file to legacy version 4, then to the prefixed names."""
    applied = {
        row[0] for row in bind.exec_driver_sql(f"SELECT version FROM {LEGACY_VERSION_TABLE}")
    }
    for version, _name, statements in LEGACY_MIGRATIONS:
        if version not in applied:
            for statement in statements:
                bind.exec_driver_sql(statement)
    if prefix:
        for index in LEGACY_INDEXES:
            bind.exec_driver_sql(f'DROP INDEX IF EXISTS "{index}"')
        for table in LEGACY_TABLES:
            bind.exec_driver_sql(f'ALTER TABLE "{table}" RENAME TO "{prefix}{table}"')
        for name, table, columns, unique in _indexes(prefix):
            op.create_index(name, table, columns, unique=unique)
    bind.exec_driver_sql(f"DROP TABLE {LEGACY_VERSION_TABLE}")


def downgrade() -> None:
    prefix, _ = _names()
    for table in ("seen_signatures", "outbox", "messages", "sessions"):
        op.drop_table(f"{prefix}{table}")
