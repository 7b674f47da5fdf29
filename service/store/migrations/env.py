"""Alembic environment: run by `service.store.migrations.upgrade`, never by an alembic.ini.

The caller hands over an open connection, the table prefix and (MySQL) the collation in
`config.attributes`; the version table is `<prefix>alembic_version`, so several prefixes, or
the Laravel application's own tables, can share one database. Only this prefix's tables are
ever looked at (`include_name`).
"""

from __future__ import annotations

from typing import Any

from alembic import context

from service.store.schema import FALLBACK_COLLATION, TABLE_NAMES, tables

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through service.store.migrations.upgrade(connection, ...)")
prefix: str = config.attributes["prefix"]
schema = tables(prefix, collation=config.attributes.get("collation", FALLBACK_COLLATION))
ours = {f"{prefix}{name}" for name in TABLE_NAMES}


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    return type_ != "table" or name in ours


context.configure(
    connection=connection,
    target_metadata=schema.metadata,
    version_table=schema.version_table,
    include_name=include_name,
    compare_type=True,
    # SQLite alters tables by copying them; later revisions use op.batch_alter_table.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
