"""The webhook events: one model per event's `data`, and the registry that names them.

Producers build the `data` through these models, `/openapi.json` describes every event in its
`webhooks` section from them, and `python -m service docs` writes the event table of
docs/webhooks.md from `EVENTS` (each model's docstring says when the event comes).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from service.models.base import Id, Output
from service.models.responses import Link, Message, Provider, Timestamp
from service.store.base import MessageStatus, NewEvent, SessionStatus


class EventData(Output):
    """The `data` of one event; `event` is its name on the wire."""

    event: ClassVar[str]

    def new_event(self) -> NewEvent:
        return NewEvent(self.event, self.json_dict())


class SessionStatusChanged(EventData):
    """The session moved from `previous` to `status`."""

    event = "session_status_changed"
    status: SessionStatus
    previous: SessionStatus
    reason: str | None = Field(default=None, description="why, when known (`logged_out`, ...)")
    phone_number: str | None = Field(default=None, description="once the phone is known")


class QrCodeGenerated(EventData):
    """A new QR to scan; it rotates about every 20 s while the session waits."""

    event = "qr_code_generated"
    qr: str
    expires_at: Timestamp | None
    image_url: Link


class PairingCodeGenerated(EventData):
    """A link code was requested through the API."""

    event = "pairing_code_generated"
    code: str


class MessageReceived(EventData):
    """Someone sent the session a message: the message record with `direction: in`."""

    event = "message_received"
    message: Message


class MessageStatusUpdated(EventData):
    """An outbound message moved on: sent, delivered, read, played, failed or cancelled
    (never `queued`, `scheduled` or `sending`)."""

    event = "message_status_updated"
    message_id: str
    provider_message_id: str | None
    status: MessageStatus
    provider: Provider | None
    error: str | None = Field(default=None, description="why it failed")


class MessageReacted(EventData):
    """Someone reacted to a message in one of the session's chats, or took the reaction
    back (`emoji: null`)."""

    event = "message_reaction"
    message_id: str | None = Field(
        description="our id of the reacted message; null when the sidecar never stored it"
    )
    provider_message_id: str = Field(description="the reacted message's id at the provider")
    from_: str | None = Field(alias="from", description="who reacted (a WhatsApp id)")
    emoji: str | None = Field(description="the reaction; null when it was removed")
    timestamp: int | None = Field(description="Unix seconds, when the provider said")


class MessageEdited(EventData):
    """A message's text was edited, by its sender or by the session itself; the stored
    record has the new text and `edited_at`."""

    event = "message_edited"
    message_id: str | None = Field(
        description="our id of the edited message; null when the sidecar never stored it"
    )
    provider_message_id: str = Field(description="the edited message's id at the provider")
    text: str | None = Field(description="the new text")


class MessageRevoked(EventData):
    """Someone deleted a message for everyone; the stored record keeps what it said and
    gets `revoked_at`."""

    event = "message_revoked"
    message_id: str | None = Field(
        description="our id of the deleted message; null when the sidecar never stored it"
    )
    provider_message_id: str = Field(description="the deleted message's id at the provider")
    from_: str | None = Field(alias="from", description="who deleted it (a WhatsApp id)")


class ProviderFailover(EventData):
    """The session's sends moved to another provider, or back to WhatsApp Web."""

    event = "provider_failover"
    from_: Provider = Field(alias="from")
    to: Provider
    reason: str


GroupAction = Literal["add", "remove", "promote", "demote", "join", "leave"]


class GroupParticipantsChanged(EventData):
    """wa-js's `group.participant_changed`: members of a group this account is in were
    added, removed, promoted or demoted, or joined by invite or left. It comes for every
    such change WhatsApp tells this account about, those this session made through the API
    included, and for the change that removes this account itself."""

    event = "group_participants_changed"
    group_id: str = Field(examples=["120363025246125486@g.us"])
    action: GroupAction = Field(
        description="`join`: through an invite code; `leave`: a member removed themselves"
    )
    operation: Literal["add", "remove", "promote", "demote"]
    author: str | None = Field(description="who did it, when WhatsApp says (`@c.us` or `@lid`)")
    participants: list[str] = Field(description="the members concerned (`@c.us` or `@lid`)")
    includes_me: bool = Field(description="whether this account is one of `participants`")


class GroupJoined(EventData):
    """This account became a member of a group: someone added it, or it joined by invite
    (the API's join, or another device of the account). It comes with the same change's
    `group_participants_changed`. A group this session creates does not send it: the create
    call's answer is that news."""

    event = "group_joined"
    group_id: str = Field(examples=["120363025246125486@g.us"])
    action: Literal["add", "join"]
    author: str | None = Field(description="who added it, when WhatsApp says")


class GroupUpdated(EventData):
    """This session changed a group's subject or description through the API. wa-js 4.6.0
    has no event for a subject or description changed by another member, so those changes
    send nothing; read the group's info instead."""

    event = "group_updated"
    group_id: str = Field(examples=["120363025246125486@g.us"])
    subject: str | None = Field(default=None, description="the new subject; only when it changed")
    description: str | None = Field(
        default=None, description="the new description (empty: cleared); only when it changed"
    )


class PresenceParticipant(Output):
    id: str
    state: str | None


class PresenceUpdated(EventData):
    """A followed contact came online, went offline, or is typing or recording: one the
    session subscribed to (`.../presence/subscribe`), or a chat WhatsApp Web follows."""

    event = "presence_updated"
    chat_id: str = Field(description="`<digits>@c.us`, `<digits>@lid` or `<id>@g.us`")
    online: bool
    state: str | None = Field(
        description="WhatsApp Web's chat state: available, composing, recording or unavailable"
    )
    participants: list[PresenceParticipant] = Field(
        default_factory=list, description="in a group: who is composing or recording"
    )


class CallReceived(EventData):
    """Someone is calling the session's account (WhatsApp Web only; it rings on the phone
    too). `rejected`: the session's `call_policy` declined it; otherwise
    `POST .../calls/{call_id}/reject` can, while it rings."""

    event = "call_received"
    call_id: str = Field(description="the id to reject the call with")
    from_: str = Field(
        alias="from",
        description="the caller: `<digits>@c.us`, or `<id>@lid` when WhatsApp "
        "names the caller by its linked id",
    )
    is_video: bool
    is_group: bool
    offered_at: Timestamp | None = Field(description="when the call was offered")
    rejected: bool = Field(description="true when the session's `call_policy` rejected it already")


class PollChoice(Output):
    index: int = Field(description="the option's position in the poll's `options`, from 0")
    name: str | None = Field(description="the option's text, when known")


class PollVote(EventData):
    """Someone voted on a poll of this session's account (WhatsApp Web only), or changed
    the vote; an empty `selected` means the vote was withdrawn."""

    event = "poll_vote"
    message_id: str | None = Field(description="the poll's msg_... id when it was sent here")
    provider_message_id: str = Field(description="the poll's WhatsApp message id")
    chat_id: str | None
    voter: str = Field(description="`<digits>@c.us`, or `<id>@lid`")
    selected: list[PollChoice] = Field(description="the options chosen now")
    voted_at: Timestamp | None


# -- campaigns ---------------------------------------------------------------------------


class CampaignCounts(Output):
    """A campaign's recipients by status."""

    pending: int = 0
    queued: int = 0
    sending: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    played: int = 0
    failed: int = 0
    cancelled: int = 0


class CampaignEvent(EventData):
    campaign_id: str
    name: str
    total: int = Field(description="recipients")
    counts: CampaignCounts


class CampaignStarted(CampaignEvent):
    """A campaign's start time came: it runs from now on, sending as its window allows."""

    event = "campaign_started"


class CampaignProgress(CampaignEvent):
    """Where a running campaign stands; at most every SIDECAR_CAMPAIGN_PROGRESS_S seconds."""

    event = "campaign_progress"


class CampaignPaused(CampaignEvent):
    """A campaign stopped sending until resumed: asked through the API (`requested`), its
    stop rule (`failure_rate`), or WhatsApp limiting the account (`account_blocked`)."""

    event = "campaign_paused"
    reason: str


class CampaignCompleted(CampaignEvent):
    """A campaign ended: every recipient's send settled (`completed`), or it was
    `cancelled` (its pending recipients are not sent)."""

    event = "campaign_completed"
    status: Literal["completed", "cancelled"]


EVENTS: dict[str, type[EventData]] = {
    model.event: model
    for model in (
        SessionStatusChanged,
        QrCodeGenerated,
        PairingCodeGenerated,
        MessageReceived,
        MessageStatusUpdated,
        ProviderFailover,
        GroupParticipantsChanged,
        GroupJoined,
        GroupUpdated,
        PresenceUpdated,
        MessageReacted,
        MessageEdited,
        MessageRevoked,
        CallReceived,
        PollVote,
        CampaignStarted,
        CampaignProgress,
        CampaignPaused,
        CampaignCompleted,
    )
}


class Envelope(Output):
    """The body of every webhook POST; `data` depends on `event`."""

    id: str = Field(description="evt_..., the same on every retry; also X-Webhook-Id")
    event: str
    timestamp: int = Field(description="Unix seconds when the event was written")
    workspace_id: Id
    session_id: Id
    metadata: dict[str, Any] | None = Field(
        description="the session's metadata when the event was written (null when it has none)"
    )
