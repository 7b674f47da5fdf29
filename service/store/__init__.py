"""Persistent state: the Store interface and its SQLite implementation."""

from service.store.base import (
    DESIRED_STATES,
    PROVIDER_MODES,
    SESSION_STATUSES,
    NewEvent,
    OutboxEvent,
    SessionRecord,
    Store,
)
from service.store.sqlite import SQLiteStore

__all__ = [
    "DESIRED_STATES",
    "PROVIDER_MODES",
    "SESSION_STATUSES",
    "NewEvent",
    "OutboxEvent",
    "SQLiteStore",
    "SessionRecord",
    "Store",
]
