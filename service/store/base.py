"""The Store interface and the records it keeps.

Portable on purpose: SQLite now, MySQL (pymysql) later, behind the same async methods.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

SESSION_STATUSES = (
    "stopped",
    "initializing",
    "qr_required",
    "authenticating",
    "connected",
    "disconnected",
    "failed",
)
DESIRED_STATES = ("running", "stopped")
PROVIDER_MODES = ("auto", "webjs", "meta")


@dataclass(frozen=True)
class SessionRecord:
    """One WhatsApp account as the store knows it."""

    session_id: str
    workspace_id: str
    provider_mode: str = "auto"
    status: str = "stopped"
    desired_state: str = "stopped"
    phone_number: str | None = None
    webhook_url: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    last_error: str | None = None
    qr: str | None = field(default=None, repr=False)
    qr_expires_at: float | None = None
    # AES-256-GCM sealed Meta credentials; never leaves the service.
    meta_sealed: str | None = field(default=None, repr=False)
    meta_phone_number_id: str | None = None


@dataclass(frozen=True)
class OutboxEvent:
    """A webhook event, written before anyone else sees it."""

    id: str
    seq: int
    event: str
    workspace_id: str
    session_id: str
    body: str
    status: str
    attempts: int
    next_attempt_at: float
    created_at: float
    url: str | None = None
    last_error: str | None = None
    last_status_code: int | None = None
    delivered_at: float | None = None


@dataclass(frozen=True)
class NewEvent:
    """An event to append to the outbox in the same transaction as the change it reports."""

    event: str
    data: dict[str, Any]


class Store(abc.ABC):
    """Persistent state of the sidecar. All methods are coroutines; writes are atomic."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the store answers a trivial query (readiness)."""

    # sessions
    @abc.abstractmethod
    async def create_session(self, record: SessionRecord) -> SessionRecord:
        """Insert; raises `Conflict` when the id exists."""

    @abc.abstractmethod
    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    @abc.abstractmethod
    async def list_sessions(
        self,
        workspace_id: str | None = None,
        status: str | None = None,
        desired_state: str | None = None,
    ) -> list[SessionRecord]: ...

    @abc.abstractmethod
    async def count_sessions(self) -> int: ...

    @abc.abstractmethod
    async def update_session(
        self, session_id: str, changes: dict[str, Any], events: list[NewEvent] | None = None
    ) -> SessionRecord:
        """Apply `changes` and append `events` to the outbox in one transaction.

        Raises `SessionNotFound` when the session is gone.
        """

    @abc.abstractmethod
    async def delete_session(self, session_id: str) -> bool:
        """Remove the session and its messages; outbox rows already written still deliver."""

    # outbox
    @abc.abstractmethod
    async def list_events(
        self, session_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[OutboxEvent]: ...
