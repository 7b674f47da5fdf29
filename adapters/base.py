"""The provider interface: what every way of delivering a WhatsApp message offers.

A provider reports whether it can deliver for a session now (`status`) and sends one stored
message (`send`). Errors carry a kind that decides what happens next: only provider-level
kinds fail over to another provider; recipient and request errors fail the message, and an
unknown delivery is never retried anywhere (it may have gone out).
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass

from service.store import MessageRecord, SessionRecord


class ErrorKind(enum.StrEnum):
    TRANSIENT = "transient"  # try again, then elsewhere
    PROVIDER_DOWN = "provider_down"  # this provider cannot deliver for now: open its circuit
    RECIPIENT = "recipient"  # this recipient cannot get it here or anywhere
    REQUEST = "request"  # the message itself is wrong
    UNKNOWN_DELIVERY = "unknown_delivery"  # it may have gone out: never resend


class ProviderError(Exception):
    """A send that did not succeed, with what kind of failure it was."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        code: int | str | None = None,
        retry_after: float | None = None,
        recipient_backoff: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code
        self.retry_after = retry_after
        self.recipient_backoff = recipient_backoff

    @property
    def fails_over(self) -> bool:
        return self.kind in (ErrorKind.TRANSIENT, ErrorKind.PROVIDER_DOWN)

    def describe(self) -> str:
        """The message's `error` field: the provider's code first, when there is one."""
        return f"{self.code}: {self.message}" if self.code is not None else self.message


@dataclass(frozen=True)
class ProviderStatus:
    available: bool
    reason: str = ""


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


class Provider(abc.ABC):
    """One way to deliver messages for a session."""

    name: str

    @abc.abstractmethod
    def status(self, session: SessionRecord) -> ProviderStatus:
        """Whether this provider can deliver for `session` right now, and why not."""

    @abc.abstractmethod
    async def send(self, session: SessionRecord, message: MessageRecord) -> SendResult:
        """Deliver one stored message; raises ProviderError."""
