"""Schema migrations: Alembic revisions in `versions/`, run programmatically at open().

No alembic.ini: `upgrade(connection, prefix, collation)` builds the configuration in code and
passes the connection and the prefix to `env.py` through `config.attributes`. The version
table is `<prefix>alembic_version`.

A new revision goes in `versions/` next to `0001_baseline.py`: `revision` a new id,
`down_revision` the current head, its tables named `context.config.attributes["prefix"] +
name`, and `op.batch_alter_table` for any ALTER (SQLite alters by copying the table).
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from service.store.migrations.legacy import LEGACY_VERSION_TABLE
from service.store.schema import FALLBACK_COLLATION

SCRIPT_LOCATION = Path(__file__).resolve().parent


def _config(
    connection: Connection | None = None, prefix: str = "", collation: str = FALLBACK_COLLATION
) -> Config:
    config = Config()
    # ConfigParser interpolates `%`; a path may hold one.
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    config.attributes.update(connection=connection, prefix=prefix, collation=collation)
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _script().get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection, prefix: str) -> str | None:
    """The revision the database is at; None when it has no version table yet."""
    context = MigrationContext.configure(
        connection, opts={"version_table": f"{prefix}alembic_version"}
    )
    return context.get_current_revision()


def legacy_version(connection: Connection) -> int | None:
    """A pre-Alembic SQLite file's hand-written schema version; None for anything else."""
    if connection.dialect.name != "sqlite" or not inspect(connection).has_table(
        LEGACY_VERSION_TABLE
    ):
        return None
    value = connection.exec_driver_sql(f"SELECT MAX(version) FROM {LEGACY_VERSION_TABLE}").scalar()
    return int(value or 0)


def upgrade(connection: Connection, prefix: str, collation: str = FALLBACK_COLLATION) -> None:
    """Apply every revision up to head; the caller holds the transaction (or lock)."""
    command.upgrade(_config(connection, prefix, collation), "head")
