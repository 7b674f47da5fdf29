"""Persistent state: the Store interface and its SQLite implementation."""

from service.store.base import (
    DESIRED_STATES,
    MESSAGE_STATUSES,
    PROVIDER_MODES,
    SESSION_STATUSES,
    STATUS_RANK,
    AppendedEvent,
    MessageRecord,
    NewEvent,
    OutboxEvent,
    SessionRecord,
    StaleMessage,
    StaleStatus,
    Store,
)
from service.store.sqlite import SQLiteStore

__all__ = [
    "DESIRED_STATES",
    "MESSAGE_STATUSES",
    "PROVIDER_MODES",
    "SESSION_STATUSES",
    "STATUS_RANK",
    "AppendedEvent",
    "MessageRecord",
    "NewEvent",
    "OutboxEvent",
    "SQLiteStore",
    "SessionRecord",
    "StaleMessage",
    "StaleStatus",
    "Store",
]
