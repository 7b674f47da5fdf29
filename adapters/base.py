"""The engine interface: what every way of running a WhatsApp account offers.

An engine runs a session (`start`, `stop`, `logout`), links it (`qr`, `pairing_code`), says
whether it can deliver now (`status`), sends one stored message (`send`), fetches inbound
media (`download_media`) and answers page operations such as contact lookups (`call`).
Each engine turns its provider's own shapes (WhatsApp Web payloads, wa-js ACK values, Graph
API JSON) into the neutral records below and hands them to an `InboundSink`; messaging only
ever sees those records.

Send errors carry a kind that decides what happens next: only provider-level kinds fail over
to another engine; recipient and request errors fail the message, and an unknown delivery is
never retried anywhere (it may have gone out).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from service.errors import Conflict
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
    """What an engine reports once a message is in its hands.

    `ref` is the key later status updates name the message by. `pending` means the provider
    took the message but has not confirmed it yet: it stays `sending` until a StatusUpdate
    settles it, and it is never handed to another engine.
    """

    provider_message_id: str
    ref: str
    pending: bool = False


@dataclass(frozen=True)
class QrCode:
    """The QR a session shows now: its text and when it stops being scannable (unix s)."""

    qr: str
    expires_at: float | None


@dataclass(frozen=True)
class InboundMedia:
    """What a provider says of an inbound file before it is downloaded (`size` when known)."""

    mimetype: str
    filename: str | None = None
    size: int | None = None


class MediaTooLarge(Exception):
    """An inbound file is larger than the download may take; `size` when the provider said."""

    def __init__(self, size: int | None = None) -> None:
        super().__init__(f"the media is {size} bytes" if size is not None else "media too large")
        self.size = size


@dataclass(frozen=True)
class InboundMessage:
    """A message someone sent to a session, in the API's vocabulary.

    `chat_id` is where to answer (`@c.us`, `@g.us` or `@lid`); `sender` is who wrote it
    (the author in a group); the `*_phone` fields carry the phone number behind an `@lid`
    id when the provider knows it. `reply_to_ref` is the ref of the message it answers.
    """

    provider: str
    provider_message_id: str
    ref: str
    chat_id: str
    kind: str
    text: str | None = None
    sender: str | None = None
    sender_phone: str | None = None
    chat_phone: str | None = None
    notify_name: str | None = None
    timestamp: int | None = None
    reply_to_ref: str | None = None
    reply_to_provider_id: str | None = None
    location: dict[str, Any] | None = None
    media: InboundMedia | None = None
    # The users the message mentions (chat ids), as the provider reports them.
    mentions: tuple[str, ...] = ()
    # Downloads the file, at most the given number of bytes (MediaTooLarge past it).
    load_media: Callable[[int], Awaitable[bytes]] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class StatusUpdate:
    """A provider's news about a message a session sent: `sent`, `delivered`, `read`,
    `played` or `failed` (with `error`)."""

    provider: str
    ref: str
    status: str
    error: str | None = None
    # The provider cannot tell what happened (its page went away mid-send): this settles a
    # message still in flight, never one already reported otherwise.
    unsure: bool = False


@dataclass(frozen=True)
class Reaction:
    """Someone reacted to a message of a session's chats (`emoji` None: took it back).

    `ref` names the reacted message as the engine's reports do; `provider_message_id` is
    its full provider id; `sender` is who reacted (ourselves too, from the phone app).
    """

    provider: str
    ref: str
    provider_message_id: str
    sender: str | None
    emoji: str | None
    timestamp: int | None = None


@dataclass(frozen=True)
class Edit:
    """A message's text changed (`ref` and `provider_message_id` name it as in Reaction)."""

    provider: str
    ref: str
    provider_message_id: str
    text: str | None


@dataclass(frozen=True)
class Revoke:
    """A message was deleted for everyone, by `sender`."""

    provider: str
    ref: str
    provider_message_id: str
    sender: str | None


class InboundSink(Protocol):
    """Where engines hand what their provider reports (messaging implements it)."""

    async def on_inbound(self, session: SessionRecord, message: InboundMessage) -> None: ...

    async def on_status(self, session: SessionRecord, update: StatusUpdate) -> None: ...

    async def on_reaction(self, session: SessionRecord, reaction: Reaction) -> None: ...

    async def on_edited(self, session: SessionRecord, edit: Edit) -> None: ...

    async def on_revoked(self, session: SessionRecord, revoke: Revoke) -> None: ...


# The page operations the API may ask a session for (`Engine.call`), by name. Each has one
# function in the page bridge's table (service/browser/bridge.js); no other name reaches a
# page. Contacts first; groups, chats and the rest add theirs here.
PAGE_OPS = frozenset(
    {
        "contacts.exists",
        "contacts.picture",
        "contacts.about",
        "contacts.block",
        "contacts.unblock",
        "contacts.ids",
        # groups (service/api/groups.py)
        "groups.list",
        "groups.create",
        "groups.info",
        "groups.participants",
        "groups.add",
        "groups.remove",
        "groups.promote",
        "groups.demote",
        "groups.subject",
        "groups.description",
        "groups.invite",
        "groups.revoke",
        "groups.join",
        "groups.leave",
        # chats (service/api/chats.py)
        "chats.list",
        "chats.messages",
        "chats.read",
        "chats.archive",
        "chats.delete",
        "chats.state",
        "chats.subscribe",
        # message actions
        "messages.react",
        "messages.edit",
        "messages.revoke",
        "messages.forward",
        "calls.reject",
    }
)
# How long a page operation may take by default (WA_PAGE_TIMEOUT).
PAGE_TIMEOUT = 20.0


def not_supported_by_provider(engine: str, op: str) -> Conflict:
    """409 for a page operation the session's provider does not have."""
    return Conflict(
        f"the {engine} provider does not support {op}",
        code="not_supported_by_provider",
        details={"provider": engine},
    )


def not_supported(engine: str, what: str) -> Conflict:
    """409 for something the session's provider does not have (a QR code, a pairing code),
    under the same code as a page operation it lacks."""
    return Conflict(
        f"the {engine} provider has no {what}",
        code="not_supported_by_provider",
        details={"provider": engine},
    )


class Engine(abc.ABC):
    """One way to run a session and deliver its messages."""

    name: str

    @abc.abstractmethod
    async def start(self, session: SessionRecord) -> None:
        """Bring the session up (its desired_state is already `running`)."""

    @abc.abstractmethod
    async def stop(self, session: SessionRecord, *, handover: bool = False) -> None:
        """Take it down. `handover`: another engine takes the session over, so leave its
        status to that engine."""

    @abc.abstractmethod
    def status(self, session: SessionRecord) -> ProviderStatus:
        """Whether this engine can deliver for `session` right now, and why not."""

    @abc.abstractmethod
    async def send(self, session: SessionRecord, message: MessageRecord) -> SendResult:
        """Deliver one stored message; raises ProviderError."""

    def reaches(self, chat_id: str) -> bool:
        """Whether this engine can address that chat at all (`@c.us`, `@g.us`, `@lid`)."""
        return True

    async def restart(self, session: SessionRecord) -> None:
        await self.stop(session)
        await self.start(session)

    async def qr(self, session: SessionRecord) -> QrCode:
        """The QR to scan now (Conflict when there is none)."""
        raise not_supported(self.name, "QR code")

    async def pairing_code(self, session: SessionRecord, phone: str) -> str:
        """A code to type on the phone instead of scanning."""
        raise not_supported(self.name, "pairing code")

    async def logout(self, session: SessionRecord) -> None:  # noqa: B027 (nothing by default)
        """Unlink the account from this engine and forget its login."""

    async def download_media(
        self, session: SessionRecord, provider_message_id: str, max_bytes: int | None = None
    ) -> bytes:
        """The media of an inbound message; MediaTooLarge when it passes `max_bytes`."""
        raise not_supported(self.name, "media download")

    async def call(self, session: SessionRecord, op: str, args: dict[str, Any]) -> Any:
        """Run the page operation `op` (one of PAGE_OPS) with `args`; its JSON value."""
        raise not_supported_by_provider(self.name, op)
