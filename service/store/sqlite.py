"""`SQLiteStore`: the SQL store on a SQLite file, under the name existing code imports.

The implementation is `service.store.sql.SqlStore` (one connection on one worker thread,
WAL, `BEGIN IMMEDIATE` writes); a file written by the hand-migrated store this module used
to hold is adopted at open() (its tables renamed to the prefixed names).
"""

from __future__ import annotations

from pathlib import Path

from service.store.schema import DEFAULT_PREFIX
from service.store.sql import SqlStore, new_event_id

__all__ = ["SQLiteStore", "new_event_id"]


class SQLiteStore(SqlStore):
    """The default store: `storage/sidecar.sqlite3` in WAL mode."""

    path: Path

    def __init__(self, path: Path | str, prefix: str = DEFAULT_PREFIX) -> None:
        super().__init__(Path(path), prefix)
