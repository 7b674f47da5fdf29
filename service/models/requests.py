"""Request bodies and query strings: each model validates a request and is its schema.

Rules that tie fields together (a text message needs `text`, media needs exactly one of
`url` or `base64`) are checked after the model, where the request becomes a domain object,
and are described on the model so the document says them too.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from service.digits import ascii_int
from service.models.base import NOT_BLANK, PATTERN_RULES, Id, Input
from service.models.events import EVENTS
from service.store.base import DeliveryStatus, ProviderMode, SessionStatus

MessageType = Literal[
    "text",
    "image",
    "document",
    "audio",
    "voice",
    "sticker",
    "video",
    "location",
    "template",
    "poll",
]
Priority = Literal["normal", "bulk"]
# WhatsApp's own ceiling for one text message, and for a caption.
MAX_TEXT = 65_536
MAX_CAPTION = 4_096
MAX_BASE64 = 32 * 1024 * 1024


def _limited(max_length: int) -> StringConstraints:
    return StringConstraints(max_length=max_length)


def _present(max_length: int) -> StringConstraints:
    """Required text: at least one character that is not white space."""
    return StringConstraints(min_length=1, max_length=max_length, pattern=NOT_BLANK)


# An international number: digits, an optional +, single spaces or dashes between digits.
PHONE_PATTERN = r"^\+?[1-9](?:[ -]?[0-9]){6,14}$"
RECIPIENT_PATTERN = (
    r"^(?:\+?[1-9](?:[ -]?[0-9]){6,14}|[1-9][0-9]{6,14}@c\.us"
    r"|[0-9]{6,20}(?:-[0-9]{6,20})?@g\.us|[1-9][0-9]{5,24}@lid)$"
)
# A contact in a path: a phone number (digits, optional +), <digits>@c.us or <digits>@lid.
CONTACT_PATTERN = r"^(?:\+?[1-9][0-9]{6,14}|[1-9][0-9]{6,14}@c\.us|[1-9][0-9]{5,24}@lid)$"
PATTERN_RULES[CONTACT_PATTERN] = (
    "is not a contact: use a phone number (7-15 digits, optional +), <digits>@c.us or <digits>@lid"
)
PATTERN_RULES[PHONE_PATTERN] = "must be an international number: 7-15 digits, optional +"
PATTERN_RULES[RECIPIENT_PATTERN] = (
    "is not a valid recipient: use an international phone number (7-15 digits, optional +), "
    "<digits>@c.us, <id>@g.us or <digits>@lid"
)
_WRITE_ONLY = Field(json_schema_extra={"writeOnly": True})
PhoneNumberId = Annotated[str, _present(64)]
AccessToken = Annotated[str, _present(4096), _WRITE_ONLY]
MetaSecret = Annotated[str, _limited(512), _WRITE_ONLY]
Phone = Annotated[
    str, StringConstraints(max_length=32, pattern=PHONE_PATTERN), Field(examples=["+5511999999999"])
]
Text = Annotated[str, _limited(MAX_TEXT)]
Base64Data = Annotated[str, _limited(MAX_BASE64)]
MimeType = Annotated[str, _limited(191), Field(examples=["image/jpeg"])]
FileName = Annotated[str, _limited(255)]
PlaceName = Annotated[str, _limited(256)]
Reference = Annotated[str, _limited(190)]


def _absolute_http(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http or https URL")
    return value


def _absolute_http_or_empty(value: str) -> str:
    return value if value == "" else _absolute_http(value)


_URL = Field(json_schema_extra={"format": "uri"}, description="an absolute http or https URL")
Url = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_absolute_http), _URL]
# A URL that `""` clears.
ClearableUrl = Annotated[
    str, StringConstraints(max_length=2048), AfterValidator(_absolute_http_or_empty), _URL
]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=190)]


# A session's metadata: small, because every webhook of the session carries it.
MAX_METADATA_BYTES = 4096
MAX_METADATA_DEPTH = 4
MAX_METADATA_KEY = 64


def _metadata_level(value: Any, depth: int) -> None:
    """Check one value of the metadata and what it holds; the top object is level 1."""
    if isinstance(value, dict):
        if any(not 1 <= len(key) <= MAX_METADATA_KEY for key in value):
            raise ValueError(f"keys must be 1-{MAX_METADATA_KEY} characters")
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    else:
        # json.loads takes NaN and Infinity, which no JSON receiver reads back.
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("numbers must be finite")
        return
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"must be nested at most {MAX_METADATA_DEPTH} levels deep")
    for child in children:
        _metadata_level(child, depth + 1)


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    _metadata_level(value, 1)
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes as compact JSON, not {size}")
    return value


Metadata = Annotated[
    dict[str, Any],
    AfterValidator(_metadata),
    Field(
        description=f"your own JSON object, sent back as `metadata` in every webhook of the "
        f"session: at most {MAX_METADATA_BYTES} bytes as compact JSON, nested at most "
        f"{MAX_METADATA_DEPTH} levels, keys 1-{MAX_METADATA_KEY} characters",
        json_schema_extra={
            "propertyNames": {"minLength": 1, "maxLength": MAX_METADATA_KEY},
            "examples": [{"account_id": 42}],
        },
    ),
]


def _known_event(name: str) -> str:
    if name not in EVENTS:
        raise ValueError(f"must be one of {', '.join(EVENTS)}")
    return name


def _distinct(names: list[str]) -> list[str]:
    """A name given twice counts once; the order is kept."""
    return list(dict.fromkeys(names))


EventName = Annotated[
    str, AfterValidator(_known_event), WithJsonSchema({"type": "string", "enum": list(EVENTS)})
]
WebhookEvents = Annotated[
    list[EventName],
    Field(
        max_length=32,
        description="the events this session's webhook gets: every event when null or left "
        "out, none when empty; a name given twice counts once",
        examples=[["message_received", "session_status_changed"]],
    ),
    AfterValidator(_distinct),
]


class MetaInput(Input):
    """Cloud API credentials, sealed at rest with SIDECAR_ENCRYPTION_KEY; never shown again."""

    phone_number_id: PhoneNumberId
    access_token: AccessToken
    app_secret: MetaSecret | None = None
    verify_token: MetaSecret | None = None


# HTTP Basic joins them with `:`; control characters would break the header.
_PROXY_USER = r"^[^\x00-\x1f\x7f:]+$"
_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
PATTERN_RULES[_PROXY_USER] = "must be 1-255 characters without `:` or control characters"
PATTERN_RULES[_NO_CONTROL] = "must be at most 255 characters without control characters"


class ProxyInput(Input):
    """The proxy the session's browser uses, applied when the browser (re)starts: `url` is
    `http://`, `https://` or `socks5://` `host:port` (a private host is fine, never a
    link-local or metadata address; no credentials, path or query in it). `username` and
    `password` are sealed at rest with SIDECAR_ENCRYPTION_KEY and never shown again; socks5
    takes none (Chromium has no SOCKS authentication)."""

    url: Annotated[
        str,
        StringConstraints(min_length=1, max_length=2048),
        Field(examples=["http://10.0.0.5:3128"]),
    ]
    username: Annotated[str, StringConstraints(max_length=255, pattern=_PROXY_USER)] | None = None
    password: (
        Annotated[str, StringConstraints(max_length=255, pattern=_NO_CONTROL), _WRITE_ONLY] | None
    ) = Field(default=None, description="needs `username`")


# A call's auto-reply is a short text message; long ones belong in a normal send.
MAX_CALL_REPLY = 1_024


class CallPolicyInput(Input):
    """What the session does with incoming calls (WhatsApp Web only): `reject: true`
    declines each call as it rings; `message`, with it, is then sent to the caller."""

    reject: bool
    message: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CALL_REPLY)] | None = (
        Field(default=None, description=f"at most {MAX_CALL_REPLY:,} characters; needs reject")
    )


class SessionCreate(Input):
    """Create a session; it starts unless `start` is false."""

    workspace_id: Id
    session_id: Id | None = Field(default=None, description="generated when left out")
    # null means the default, as a left-out field does (PHP arrays carry nulls).
    provider_mode: ProviderMode | None = Field(default=None, description="auto when unset")
    start: bool | None = Field(default=None, description="true when unset")
    webhook_url: ClearableUrl | None = Field(
        default=None,
        description="where this session's events go (SIDECAR_WEBHOOK_URL when unset); "
        "never a link-local or metadata address",
    )
    meta: MetaInput | None = None
    metadata: Metadata | None = None
    webhook_events: WebhookEvents | None = None
    proxy: ProxyInput | None = None
    call_policy: CallPolicyInput | None = None


class SessionPatch(Input):
    """Change what a session uses; a field left out stays as it is, `webhook_url: ""` or
    null clears the URL, `meta: null` removes the credentials, `metadata` replaces the
    object (null clears it), `webhook_events: null` sends every event again, `proxy`
    replaces the proxy (null: no proxy) from the browser's next start or restart,
    `call_policy` replaces the policy (null: calls only ring)."""

    provider_mode: ProviderMode | None = None
    webhook_url: ClearableUrl | None = None
    meta: MetaInput | None = None
    metadata: Metadata | None = None
    webhook_events: WebhookEvents | None = None
    proxy: ProxyInput | None = None
    call_policy: CallPolicyInput | None = None


class NoOptions(Input):
    """Session actions take no options; the body may be empty or `{}`."""


class PairingCodeRequest(Input):
    phone: Phone = Field(description="an international number: digits, optional +")


# One batch of numbers checked at once, as a page asks WhatsApp about them in one go.
MAX_CONTACT_CHECK = 50


class ContactCheck(Input):
    """Numbers to look up on WhatsApp; each is answered in the order given."""

    phones: Annotated[list[Phone], Field(min_length=1, max_length=MAX_CONTACT_CHECK)] = Field(
        description=f"1-{MAX_CONTACT_CHECK} international numbers: digits, optional +"
    )


# -- groups (service/api/groups.py) ---------------------------------------------------

GROUP_PATTERN = r"^[0-9]{6,20}(?:-[0-9]{6,20})?@g\.us$"
PATTERN_RULES[GROUP_PATTERN] = "is not a group id: use <id>@g.us"
# An invite code, or the https://chat.whatsapp.com/ link that carries it.
INVITE_PATTERN = r"^(?:https://chat\.whatsapp\.com/)?[A-Za-z0-9]{16,32}$"
PATTERN_RULES[INVITE_PATTERN] = (
    "is not an invite code: use the code (16-32 letters and digits) or its "
    "https://chat.whatsapp.com/ link"
)
MAX_GROUP_PARTICIPANTS = 50
# WhatsApp's own limits for a group's subject and description.
MAX_GROUP_SUBJECT = 100
MAX_GROUP_DESCRIPTION = 2048

Participant = Annotated[
    str,
    StringConstraints(max_length=40, pattern=CONTACT_PATTERN),
    Field(examples=["5511999990001", "5511999990001@c.us", "123456789012345@lid"]),
]
Participants = Annotated[list[Participant], Field(min_length=1, max_length=MAX_GROUP_PARTICIPANTS)]
GroupSubjectText = Annotated[str, _present(MAX_GROUP_SUBJECT)]


class GroupCreate(Input):
    """A new group with this account as its super admin."""

    subject: GroupSubjectText = Field(description=f"1-{MAX_GROUP_SUBJECT} characters")
    participants: Participants = Field(
        description=f"1-{MAX_GROUP_PARTICIPANTS} members besides this account: numbers, "
        "<digits>@c.us or <digits>@lid"
    )


class GroupParticipants(Input):
    """Members to add, remove, promote or demote."""

    participants: Participants = Field(
        description=f"1-{MAX_GROUP_PARTICIPANTS} numbers, <digits>@c.us or <digits>@lid"
    )


class GroupSubject(Input):
    subject: GroupSubjectText = Field(description=f"1-{MAX_GROUP_SUBJECT} characters")


class GroupDescription(Input):
    description: Annotated[str, _limited(MAX_GROUP_DESCRIPTION)] = Field(
        description=f"up to {MAX_GROUP_DESCRIPTION} characters; empty clears it"
    )


class GroupJoin(Input):
    code: Annotated[str, StringConstraints(max_length=64, pattern=INVITE_PATTERN)] = Field(
        description="the invite code, or its https://chat.whatsapp.com/ link",
        examples=["AbCdEfGhIjKlMnOpQrStUv"],
    )


class MediaInput(Input):
    """Exactly one of `url` (fetched when the message is accepted, public hosts only unless
    SIDECAR_FETCH_ALLOW lists it) or `base64` (optionally a data: URL)."""

    url: Url | None = None
    base64: Base64Data | None = None
    mimetype: MimeType | None = Field(default=None, description="required with base64")
    filename: FileName | None = Field(default=None, description="a plain file name")


class LocationInput(Input):
    latitude: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    longitude: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    name: PlaceName | None = None


# WhatsApp's own limits on a poll: 12 options; a question and its options are short.
MAX_POLL_OPTIONS = 12
PollText = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"\S")]
PollOption = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\S")]


class PollInput(Input):
    """A poll (WhatsApp Web only): its question and 2-12 distinct options."""

    name: PollText = Field(description="the question, at most 255 characters")
    options: Annotated[list[PollOption], Field(min_length=2, max_length=MAX_POLL_OPTIONS)] = Field(
        description=f"2-{MAX_POLL_OPTIONS} distinct options, at most 100 characters each"
    )
    selectable_count: Annotated[int, Field(ge=0, le=MAX_POLL_OPTIONS, strict=True)] | None = Field(
        default=None,
        description="how many options a voter may pick: 1 for a single choice, "
        "0 (the default) for any number",
    )


_LANGUAGE = r"^[a-z]{2,3}(_[A-Z]{2})?$"


def _language_code(value: object) -> object:
    """`{"code": "en_US", "policy": "deterministic"}` is the Cloud API's form of `"en_US"`:
    accept both (the only policy there is, so it needs no keeping)."""
    if isinstance(value, dict) and "code" in value and set(value) <= {"code", "policy"}:
        if value.get("policy", "deterministic") == "deterministic":
            return value["code"]
    return value


class TemplateInput(Input):
    """A Cloud API template (Meta only): `{name, language: en_US | {code}, components?}`."""

    name: Annotated[str, StringConstraints(max_length=512, pattern=r"^[a-z0-9_]+$")]
    language: Annotated[
        str,
        BeforeValidator(_language_code),
        StringConstraints(pattern=_LANGUAGE),
        WithJsonSchema(
            {
                "oneOf": [
                    {"type": "string", "pattern": _LANGUAGE},
                    {
                        "type": "object",
                        "required": ["code"],
                        "additionalProperties": False,
                        "properties": {
                            "code": {"type": "string", "pattern": _LANGUAGE},
                            "policy": {"const": "deterministic"},
                        },
                    },
                ],
                "examples": ["en_US"],
            }
        ),
    ]
    components: list[dict[str, Any]] | None = None


# Whom one text may mention: as many as a group may be asked to take at once.
MAX_MENTIONS = 50


class SendMessage(Input):
    """A message to queue. `text` is the text, or the caption of image, document and video
    (at most 4,096 characters; audio, voice and sticker take none). Exactly one of `media`,
    `location`, `template` or `poll` goes with its type, and none with `text`. `voice` is
    an audio file sent as a voice note (push to talk); `sticker` an image (WebP) sent as a
    sticker."""

    to: Annotated[
        str,
        StringConstraints(max_length=64, pattern=RECIPIENT_PATTERN),
        Field(
            description="+<digits>, <digits>, <digits>@c.us, <id>@g.us or <digits>@lid",
            examples=["+5511999990001"],
        ),
    ]
    type: MessageType
    text: Text | None = None
    media: MediaInput | None = None
    location: LocationInput | None = None
    template: TemplateInput | None = None
    poll: PollInput | None = None
    mentions: Annotated[list[Participant], Field(min_length=1, max_length=MAX_MENTIONS)] | None = (
        Field(
            default=None,
            description=f"text only (WhatsApp Web only): 1-{MAX_MENTIONS} users the text "
            "mentions, as numbers, <digits>@c.us or <digits>@lid; WhatsApp shows a mention "
            "where the text says @<digits>",
        )
    )
    link_preview: bool | None = Field(
        default=None,
        description="text only: false sends no link preview; WhatsApp Web fetches one only "
        "through WA_LINK_PREVIEW_SERVERS, the Cloud API itself",
    )
    reply_to: Reference | None = Field(
        default=None, description="the id or provider_message_id of the message to quote"
    )
    priority: Priority | None = Field(default=None, description="normal when unset")
    idempotency_key: IdempotencyKey | None = Field(
        default=None,
        description="the same key in the workspace returns the first record and never sends "
        "twice; or the Idempotency-Key header",
    )


def _query_int(value: object) -> object:
    """Query values are strings: a number must be ASCII digits (no `²`, no `+1`)."""
    if isinstance(value, str):
        number = ascii_int(value)
        return value if number is None else number
    return value


def _query_bool(value: object) -> object:
    """Query values are strings: a boolean is exactly `true` or `false` (not `1`, `yes` or
    `True`: anything else is refused rather than guessed)."""
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


class SessionDeleteQuery(Input):
    keep_device: Annotated[bool, BeforeValidator(_query_bool)] = Field(
        default=False,
        description="true leaves the device linked on the phone (to move the session's "
        "profile elsewhere); by default a running, logged-in session is unlinked first",
    )


class SessionQuery(Input):
    workspace_id: Id | None = None
    status: SessionStatus | None = None


class DeliveryQuery(Input):
    status: DeliveryStatus | None = None
    session_id: Id | None = None
    limit: Annotated[int, BeforeValidator(_query_int), Field(ge=1, le=1000)] = 100


# The largest Unix seconds a filter takes: 18 digits, as a string of digits may have.
MAX_MOMENT = 10**18 - 1


def _moment(value: object) -> object:
    """Unix seconds (a whole number, or ASCII digits in a string) or an ISO 8601 date-time
    (UTC when it names no offset), as float seconds; anything else is refused."""
    if isinstance(value, bool):
        raise ValueError("must be Unix seconds or an ISO 8601 date-time")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        if value > MAX_MOMENT:
            # The bound of the digit strings; a huge int would not fit a float at all.
            raise ValueError(f"must be at most {MAX_MOMENT}")
        return float(value)
    if isinstance(value, str):
        number = ascii_int(value)
        if number is not None:
            return float(number)
        try:
            # ASCII only: fromisoformat reads some other scripts' digits too.
            moment = datetime.fromisoformat(value) if value.isascii() and len(value) <= 40 else None
        except ValueError:
            moment = None
        if moment is None:
            raise ValueError("must be Unix seconds or an ISO 8601 date-time")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise ValueError("must be Unix seconds or an ISO 8601 date-time")


Moment = Annotated[
    float,
    BeforeValidator(_moment),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_MOMENT},
                {"type": "string", "format": "date-time"},
                {"type": "string", "pattern": "^[0-9]{1,18}$"},
            ],
            "description": "Unix seconds, or an ISO 8601 date-time (UTC when it has no offset)",
        }
    ),
]


class DeliveryReplay(Input):
    """Which dead deliveries to replay: every given filter must match (none: every dead
    delivery). `since` and `until` bound when the event was written, `since <= created_at
    < until`. Only dead deliveries are replayed, each with a fresh 24 h retry window."""

    session_id: Id | None = None
    workspace_id: Id | None = None
    event: EventName | None = None
    since: Moment | None = None
    until: Moment | None = None


class MetaHandshake(Input):
    """Meta's verify request: `hub.mode=subscribe`, the token and the challenge to echo."""

    model_config = ConfigDict(extra="ignore")

    mode: str | None = Field(default=None, alias="hub.mode")
    verify_token: str | None = Field(default=None, alias="hub.verify_token")
    challenge: str | None = Field(default=None, alias="hub.challenge")


# ---- chats (service/api/chats.py)

# A chat: `<digits>@c.us`, `<id>@g.us` or `<digits>@lid`, as WhatsApp Web names it.
CHAT_PATTERN = (
    r"^(?:[1-9][0-9]{6,14}@c\.us|[0-9]{6,20}(?:-[0-9]{6,20})?@g\.us|[1-9][0-9]{5,24}@lid)$"
)
PATTERN_RULES[CHAT_PATTERN] = "is not a chat: use <digits>@c.us, <id>@g.us or <digits>@lid"
# A message's full WhatsApp id: `<true|false>_<chat>_<id>[_<participant>]`.
MESSAGE_KEY_PATTERN = (
    r"^(?:true|false)_(?:[1-9][0-9]{6,14}@c\.us|[0-9]{6,20}(?:-[0-9]{6,20})?@g\.us"
    r"|[1-9][0-9]{5,24}@lid)_[0-9A-Za-z]{1,64}(?:_[1-9][0-9]{5,24}@(?:c\.us|lid))?$"
)
PATTERN_RULES[MESSAGE_KEY_PATTERN] = (
    "is not a WhatsApp message id: use the `id` of a message this API listed"
)
ChatId = Annotated[
    str,
    StringConstraints(max_length=64, pattern=CHAT_PATTERN),
    Field(examples=["5511999990001@c.us", "120363025246125888@g.us"]),
]
MessageKey = Annotated[
    str,
    StringConstraints(max_length=160, pattern=MESSAGE_KEY_PATTERN),
    Field(examples=["false_5511999990001@c.us_3EB0C767D26A1D8C3E2F"]),
]
# One page of a chat list or of a chat's messages: WhatsApp Web holds them in memory.
MAX_PAGE = 100
PageSize = Annotated[int, BeforeValidator(_query_int), Field(ge=1, le=MAX_PAGE)]


class ChatListQuery(Input):
    """One page of the chat list, newest chat first. `after` (the last chat of a page)
    gives the next page; `before` the one before it. Not both."""

    limit: PageSize = Field(default=20, description=f"1-{MAX_PAGE} chats")
    after: ChatId | None = Field(default=None, description="the chats after this one")
    before: ChatId | None = Field(default=None, description="the chats before this one")


class ChatMessagesQuery(Input):
    """One page of a chat's messages, oldest first: the newest ones by default; `before`
    (the first message of a page) gives older ones, `after` newer ones. Not both."""

    limit: PageSize = Field(default=20, description=f"1-{MAX_PAGE} messages")
    before: MessageKey | None = Field(default=None, description="messages older than this id")
    after: MessageKey | None = Field(default=None, description="messages newer than this id")


# wa-js repeats a chat state until paused; a duration pauses it after that many ms.
MAX_CHAT_STATE_MS = 60_000


class ChatPresence(Input):
    """Show the chat's other side that this account is typing or recording audio, or stop
    (`paused`). With `duration_ms`, WhatsApp Web pauses by itself after that long."""

    state: Literal["typing", "recording", "paused"]
    duration_ms: int | None = Field(
        default=None, ge=1, le=MAX_CHAT_STATE_MS, description="typing or recording only"
    )


class ReactionInput(Input):
    """The reaction to put on a message (it replaces the session's earlier one)."""

    emoji: str = Field(
        min_length=1,
        max_length=32,
        description="one emoji, as WhatsApp shows it (e.g. 👍); DELETE removes it",
    )


class ForwardInput(Input):
    """The chat a message is forwarded to (WhatsApp Web only)."""

    to: Annotated[
        str,
        StringConstraints(max_length=64, pattern=RECIPIENT_PATTERN),
        Field(
            description="+<digits>, <digits>, <digits>@c.us, <id>@g.us or <digits>@lid",
            examples=["+5511999990001"],
        ),
    ]


class EditInput(Input):
    """The new text of a message the session sent (WhatsApp allows about 15 minutes)."""

    text: str = Field(min_length=1, max_length=MAX_TEXT, description="the message's new text")


# -- the operator dashboard (service/dashboard) --
DASHBOARD_LABEL_PATTERN = r"^[A-Za-z0-9 _.@+:-]{1,64}$"
PATTERN_RULES[DASHBOARD_LABEL_PATTERN] = "must be 1-64 letters, digits, spaces or _ . @ + : -"


class DashboardLinkRequest(Input):
    """Who a dashboard sign-in link is for, and where it lands."""

    label: str | None = Field(
        default=None,
        pattern=DASHBOARD_LABEL_PATTERN,
        description="who signs in with it (shown in the dashboard and its log); default "
        "`operator`. Letters, digits, space and _ . @ + : -, up to 64",
        examples=["admin@example.com"],
    )
    session_id: Id | None = Field(
        default=None, description="land on this session's page instead of the session list"
    )
    ttl: int | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="seconds the link stays valid; at most (and by default) "
        "SIDECAR_DASHBOARD_LINK_TTL",
    )
