"""Response bodies: the handlers build these, so what `/openapi.json` says is what is sent."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from service.models.base import Id, Output
from service.store.base import (
    DeliveryStatus,
    DesiredState,
    MessageStatus,
    ProviderMode,
    SessionStatus,
)

Timestamp = Annotated[
    str, Field(json_schema_extra={"format": "date-time"}, examples=["2026-11-22T01:37:46Z"])
]
Link = Annotated[str, Field(json_schema_extra={"format": "uri"})]
Provider = Literal["webjs", "meta"]


class ErrorDetail(Output):
    code: str = Field(examples=["validation_failed"])
    message: str
    details: dict[str, Any] = Field(
        description="`field` names the field on 422, and `errors` lists every problem when "
        "there are several"
    )


class ErrorBody(Output):
    """Every error answer, whatever its status."""

    error: ErrorDetail


class SessionMeta(Output):
    configured: bool = Field(description="whether Cloud API credentials are set")
    phone_number_id: str | None


class SessionProxy(Output):
    url: str = Field(description="`scheme://host:port`; the credentials are never shown")
    authenticated: bool = Field(description="whether a username (and password) is set")


class SessionCallPolicy(Output):
    reject: bool = Field(description="incoming calls are declined as they ring")
    message: str | None = Field(description="sent to the caller after a rejected call")


class Session(Output):
    session_id: Id
    workspace_id: Id
    provider_mode: ProviderMode
    status: SessionStatus = Field(description="what the sidecar observes")
    desired_state: DesiredState = Field(description="what was asked for; restored on boot")
    phone_number: str | None
    webhook_url: str | None = Field(description="credentials in it show as ***@")
    created_at: Timestamp
    updated_at: Timestamp
    last_error: str | None
    qr_expires_at: Timestamp | None
    meta: SessionMeta
    metadata: dict[str, Any] | None = Field(
        description="your own object, as given; every webhook of the session carries it"
    )
    webhook_events: list[str] | None = Field(
        description="the events this session's webhook gets; null: every event"
    )
    proxy: SessionProxy | None = Field(
        description="the proxy the browser uses from its next start or restart; null: none"
    )
    call_policy: SessionCallPolicy | None = Field(
        description="what incoming calls get; null: they only ring"
    )


class SessionList(Output):
    data: list[Session]


class Qr(Output):
    qr: str = Field(description="the string to render as a QR code")
    expires_at: Timestamp | None
    image_url: Link = Field(description="the PNG behind a signed link valid 5 minutes")


class PairingCode(Output):
    code: str = Field(description="type it on the phone: Linked devices, link with number")


# Why an inbound message's media file is not kept (`media.reason`).
MediaReason = Literal["too_large", "expired", "unavailable", "not_saved"]


class MessageMedia(Output):
    mimetype: str | None
    filename: str | None
    size: int | None
    url: Link | None = Field(description="the file behind a signed link valid one hour")
    stored: bool | None = Field(
        default=None,
        description="inbound only: whether the file is kept here (then `url` serves it)",
    )
    reason: MediaReason | None = Field(
        default=None,
        description="inbound only, when `stored` is false: larger than "
        "`SIDECAR_INBOUND_MEDIA_MAX_BYTES`; deleted after `SIDECAR_MEDIA_RETENTION_DAYS`; the "
        "provider gave no file; or it could not be written to disk",
    )


class MessageLocation(Output):
    latitude: float | None
    longitude: float | None
    name: str | None = None


class MessagePoll(Output):
    name: str | None
    options: list[str]
    selectable_count: int | None = Field(description="1: a single choice; 0: any number")


class Message(Output):
    """One message. Outbound records carry `to`; inbound ones (`status: received`) carry
    who sent them: `from` (the author in a group), the phone numbers behind `@lid` ids when
    the provider knows them, the sender's push name and the provider's Unix timestamp."""

    id: str = Field(examples=["msg_5f0c8a1b2c3d4e5f60718293"])
    session_id: Id
    workspace_id: Id
    direction: Literal["out", "in"]
    chat_id: str
    type: str = Field(
        description="text, image, document, audio, voice, sticker, video, location, template "
        "or poll; inbound may also be another kind WhatsApp has"
    )
    text: str | None
    media: MessageMedia | None
    location: MessageLocation | None
    reply_to: str | None
    priority: Literal["normal", "bulk"]
    status: MessageStatus
    provider: Provider | None
    provider_message_id: str | None
    idempotency_key: str | None
    error: str | None
    created_at: Timestamp
    updated_at: Timestamp
    to: str | None = Field(default=None, description="outbound only: the chat id")
    sender: str | None = Field(default=None, alias="from", description="inbound only")
    from_phone: str | None = Field(default=None, description="inbound only")
    chat_phone: str | None = Field(default=None, description="inbound only")
    notify_name: str | None = Field(default=None, description="inbound only")
    timestamp: int | None = Field(default=None, description="inbound only: Unix seconds")
    edited_at: Timestamp | None = Field(
        default=None, description="present once the text was edited (`text` is the new one)"
    )
    revoked_at: Timestamp | None = Field(
        default=None, description="present once the message was deleted for everyone"
    )
    poll: MessagePoll | None = Field(default=None, description="a poll's question and options")
    mentions: list[str] | None = Field(
        default=None, description="the users a text mentions (chat ids), when it mentions any"
    )


class Delivery(Output):
    id: str = Field(description="evt_..., also the X-Webhook-Id header")
    event: str
    workspace_id: Id
    session_id: Id
    status: DeliveryStatus
    attempts: int
    url: str | None = Field(description="credentials in it show as ***@")
    last_status_code: int | None
    last_error: str | None = Field(
        description="why the last attempt failed: the first 512 bytes of a 4xx answer, the "
        "target of a redirect, a refused address; on a pending delivery `no webhook URL "
        "configured` means it waits for a URL until `next_attempt_at`, then it is dead"
    )
    created_at: Timestamp
    next_attempt_at: Timestamp | None
    delivered_at: Timestamp | None
    payload: dict[str, Any] = Field(description="the exact body delivered")


class DeliveryList(Output):
    data: list[Delivery]


class DeliveriesReplayed(Output):
    retried: int = Field(description="how many dead deliveries are back in line")


class Node(Output):
    """One process of the cluster, as its last heartbeat and the leases table show it."""

    node_id: str = Field(examples=["worker-1"])
    role: str = Field(examples=["worker"])
    address: str | None = Field(description="its internal RPC URL")
    capacity: int = Field(description="sessions it may run, as its last heartbeat said")
    sessions: int = Field(description="live session leases it holds now")
    reported_sessions: int = Field(description="sessions it ran at its last heartbeat")
    heartbeat_at: Timestamp
    started_at: Timestamp = Field(description="when its process started")
    heartbeat_age_s: float
    live: bool = Field(description="a heartbeat younger than lease_ttl, and not draining")
    draining: bool


class NodeList(Output):
    """Every node that shares the store (none for a single-host service)."""

    data: list[Node]
    lease_ttl: int = Field(description="seconds: a node whose heartbeat is older is gone")


class Health(Output):
    status: Literal["ok"]
    version: str


class ReadyChecks(Output):
    store: bool
    chromium: bool | None = None


class Ready(Output):
    status: Literal["ready", "not_ready"]
    checks: ReadyChecks


class Accepted(Output):
    ok: Literal[True]


class ContactExists(Output):
    """One number's answer: whether it is on WhatsApp and, when it is, its ids."""

    phone: str = Field(description="the number as digits", examples=["5511999990001"])
    exists: bool
    wid: str | None = Field(
        default=None,
        description="its WhatsApp id (`<digits>@c.us`)",
        examples=["5511999990001@c.us"],
    )
    lid: str | None = Field(default=None, description="its linked id, when WhatsApp gave one")


class ContactChecks(Output):
    data: list[ContactExists] = Field(description="one per number, in the order asked")


class ContactPicture(Output):
    contact_id: str
    url: str | None = Field(
        description="the full-size profile picture's URL (short-lived, WhatsApp's CDN); null "
        "when there is none or it is hidden from this account"
    )


class ContactAbout(Output):
    contact_id: str
    about: str | None = Field(description="the contact's about text; null when none is visible")


class ContactBlocked(Output):
    contact_id: str
    blocked: bool = Field(description="whether the contact is blocked now")


class CallRejected(Output):
    call_id: str
    rejected: bool = Field(description="true: WhatsApp Web declined the call")


class ContactIds(Output):
    """The phone number and the linked id (`@lid`) of one contact, as far as WhatsApp Web
    knows them: a LID's number is known only once WhatsApp told it to this account."""

    contact_id: str
    phone: str | None = Field(
        description="digits, or null when unknown", examples=["5511999990001"]
    )
    lid: str | None = Field(description="`<digits>@lid`, or null when unknown")


# -- groups (service/api/groups.py) -----------------------------------------------------


class GroupParticipant(Output):
    id: str = Field(description="`<digits>@c.us` or `<digits>@lid`")
    is_admin: bool
    is_super_admin: bool = Field(description="the group's creator (owner)")


class Group(Output):
    """A group this account is in, as WhatsApp Web knows it."""

    id: str = Field(examples=["120363025246125486@g.us"])
    subject: str | None
    description: str | None
    owner: str | None = Field(description="who created it, when known")
    created_at: int | None = Field(description="Unix seconds, when known")


class GroupList(Output):
    data: list[Group]


class GroupInfo(Group):
    participants: list[GroupParticipant]


class GroupParticipantList(Output):
    group_id: str
    data: list[GroupParticipant]


class GroupParticipantResult(Output):
    id: str
    code: int | None = Field(
        description="WhatsApp's answer for this member: 200 added, 403 not allowed (their "
        "privacy settings), 409 already a member, 421 waiting for approval"
    )


class GroupCreated(Output):
    id: str = Field(description="the new group's id", examples=["120363025246125486@g.us"])
    participants: list[GroupParticipantResult]


class GroupParticipantsAdded(Output):
    group_id: str
    participants: list[GroupParticipantResult]


class GroupParticipantsChangedReply(Output):
    group_id: str
    action: Literal["remove", "promote", "demote"]
    participants: list[str] = Field(description="the ids as given")


class GroupSubjectReply(Output):
    group_id: str
    subject: str


class GroupDescriptionReply(Output):
    group_id: str
    description: str | None


class GroupInvite(Output):
    group_id: str
    code: str
    url: str = Field(description="https://chat.whatsapp.com/<code>")


class GroupJoinResult(Output):
    group_id: str
    pending_approval: bool = Field(
        description="the group approves new members: this account is not in it yet"
    )


class GroupLeft(Output):
    group_id: str
    left: bool


# ---- chats (service/api/chats.py)


class Chat(Output):
    """A chat as WhatsApp Web holds it."""

    id: str = Field(description="`<digits>@c.us`, `<id>@g.us` or `<digits>@lid`")
    name: str | None = Field(description="the chat's title (contact or group name), if known")
    is_group: bool
    unread_count: int = Field(description="unread messages (-1: marked unread by hand)")
    archived: bool
    timestamp: int | None = Field(description="Unix seconds of the chat's last activity")


class ChatList(Output):
    data: list[Chat] = Field(description="newest chat first")


class ChatMessage(Output):
    """One message of a chat as WhatsApp Web holds it (the same fields the page reports for
    an inbound message). Unset fields are null."""

    id: str = Field(
        description="WhatsApp's full id; `before`/`after` take it",
        examples=["false_5511999990001@c.us_3EB0C767D26A1D8C3E2F"],
    )
    ref: str | None = Field(description="the bare message id (`provider_message_id`)")
    from_me: bool
    from_: str | None = Field(alias="from")
    to: str | None
    author: str | None = Field(description="the sender in a group")
    from_phone: str | None = Field(description="the number behind an `@lid` sender, if known")
    author_phone: str | None
    type: str | None = Field(description="WhatsApp's type: chat, image, video, ptt, document, ...")
    subtype: str | None
    body: str | None = Field(description="the text of a `chat` message")
    caption: str | None
    filename: str | None
    mimetype: str | None
    size: int | None
    timestamp: int | None = Field(description="Unix seconds")
    notify_name: str | None
    latitude: float | None
    longitude: float | None
    location_name: str | None
    quoted_id: str | None = Field(description="the full id of the message replied to")
    quoted_ref: str | None


class ChatMessages(Output):
    chat_id: str
    data: list[ChatMessage] = Field(description="oldest first")


class ChatRead(Output):
    chat_id: str
    unread_count: int | None = Field(description="how many were unread before")


class ChatArchived(Output):
    chat_id: str
    archived: bool


class ChatDeleted(Output):
    chat_id: str
    deleted: bool


class ChatPresenceSet(Output):
    chat_id: str
    state: str


class PresenceSubscribed(Output):
    chat_id: str
    subscribed: bool = Field(description="false when WhatsApp Web could not subscribe")


class MessageForward(Output):
    """A message WhatsApp Web forwarded. The forwarded copy is WhatsApp Web's own message:
    the sidecar keeps no record of it and learns no id for it."""

    message_id: str
    provider_message_id: str = Field(description="the forwarded message's id at the provider")
    to: str = Field(description="the chat it was forwarded to")
    forwarded: bool = Field(description="true: WhatsApp Web forwarded it")


class MessageReaction(Output):
    """The session's reaction on a message, as WhatsApp Web accepted it."""

    message_id: str
    provider_message_id: str = Field(description="the reacted message's id at the provider")
    emoji: str | None = Field(description="the session's reaction now; null once removed")


class DashboardLink(Output):
    """A one-time sign-in link to the operator dashboard."""

    url: Link = Field(description="open it in a browser: it signs in once, until expires_at")
    expires_at: Timestamp
