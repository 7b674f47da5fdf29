"""Campaign requests and answers: one message sent to many recipients, paced, in a window.

The cross-field rules (every `{{variable}}` the message uses is given for every recipient, a
type's own part, a known time zone) are checked where the request becomes a campaign
(`service.campaigns.plan`), and described here so the document says them too.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, StringConstraints

from service.models.base import NOT_BLANK, PATTERN_RULES, Id, Input, Output
from service.models.events import CampaignCounts
from service.models.requests import (
    RECIPIENT_PATTERN,
    MediaInput,
    SendAt,
    TemplateInput,
    Text,
    _query_int,
)
from service.models.responses import Timestamp

# The most recipients one campaign takes (a request that size is about 10 MB of JSON).
MAX_RECIPIENTS = 100_000
MAX_VARIABLES = 20
MAX_VARIABLE_VALUE = 1024
# A recipient's variables as stored (JSON, UTF-8) at most: 20 plain values of the longest
# fit; values of many-byte characters or escapes may not.
MAX_VARIABLES_BYTES = 32 * 1024
MAX_RATE = 6000
VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
PATTERN_RULES[VARIABLE_NAME] = "must be a name of letters, digits and _ (not starting with a digit)"
CLOCK_TIME = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$"
PATTERN_RULES[CLOCK_TIME] = "must be a time of day as HH:MM (00:00-23:59)"

CampaignStatus = Literal["scheduled", "running", "paused", "completed", "cancelled"]
# A recipient: not sent yet, cancelled with its campaign, or its message's status.
RecipientStatus = Literal[
    "pending", "cancelled", "queued", "sending", "sent", "delivered", "read", "played", "failed"
]
CampaignMessageType = Literal["text", "image", "document", "video", "audio", "template"]
VariableName = Annotated[str, StringConstraints(pattern=VARIABLE_NAME)]
VariableValue = Annotated[str, StringConstraints(max_length=MAX_VARIABLE_VALUE)]
ClockTime = Annotated[str, StringConstraints(pattern=CLOCK_TIME), Field(examples=["09:00"])]


class CampaignMessage(Input):
    """What every recipient gets. `text` (a caption with media) may use `{{name}}`
    variables, and so may a template's component texts; each recipient's `variables`
    fill them in. `media` goes with image, document, video and audio; `template` (a Cloud
    API template) with type template, and only then may the campaign go through Meta."""

    type: CampaignMessageType
    text: Text | None = None
    media: MediaInput | None = None
    template: TemplateInput | None = None


class CampaignRecipient(Input):
    to: Annotated[
        str,
        StringConstraints(max_length=64, pattern=RECIPIENT_PATTERN),
        Field(description="+<digits>, <digits>, <digits>@c.us, <id>@g.us or <digits>@lid"),
    ]
    variables: dict[VariableName, VariableValue] | None = Field(
        default=None,
        max_length=MAX_VARIABLES,
        description=f"up to {MAX_VARIABLES} values for the message's {{{{name}}}} variables, "
        f"at most {MAX_VARIABLES_BYTES} bytes as JSON in UTF-8",
    )
    key: Annotated[str, StringConstraints(min_length=1, max_length=190)] | None = Field(
        default=None, description="your own reference for this recipient (shown back as is)"
    )


class CampaignWindow(Input):
    """The hours sends may start in, each day, in `timezone`: `start` to `end`
    (`22:00`-`06:00` spans midnight). Outside them the campaign waits."""

    start: ClockTime
    end: ClockTime
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="an IANA time zone", examples=["America/Sao_Paulo"]
    )


class CampaignRate(Input):
    """How fast: `per_minute` sends at most, each gap drawn within ±`jitter` (a fraction)
    of the mean. The session's pacing policy (SIDECAR_PACING_*) caps it in any case."""

    per_minute: Annotated[int, Field(ge=1, le=MAX_RATE)] = 20
    jitter: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.3


class CampaignStopRule(Input):
    """Pause when the share of failed sends passes `failure_rate`, once at least
    `min_sample` sends have settled: counted since the campaign last resumed (a resume
    starts the count over)."""

    failure_rate: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.3
    min_sample: Annotated[int, Field(ge=1, le=MAX_RECIPIENTS)] = 20


class CampaignCreate(Input):
    """A campaign: its message, its recipients (in the order they are sent; each number
    at most once), and when and how fast it goes."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=190, pattern=NOT_BLANK)]
    message: CampaignMessage
    recipients: Annotated[list[CampaignRecipient], Field(min_length=1, max_length=MAX_RECIPIENTS)]
    start_at: SendAt | None = Field(
        default=None,
        description="not before; now when unset. RFC 3339 with an offset, at most 365 days "
        "ahead (and at most a minute in the past)",
    )
    window: CampaignWindow | None = Field(default=None, description="any hour when unset")
    rate: CampaignRate = Field(default_factory=CampaignRate)
    stop_rule: CampaignStopRule = Field(default_factory=CampaignStopRule)


class CampaignRecipientsQuery(Input):
    """One page of recipients in campaign order; `after` is the last `seq` of the page
    before."""

    status: RecipientStatus | None = None
    after: Annotated[int, BeforeValidator(_query_int), Field(ge=0)] = 0
    limit: Annotated[int, BeforeValidator(_query_int), Field(ge=1, le=1000)] = 100


# -- answers ----------------------------------------------------------------------------


class CampaignMedia(Output):
    mimetype: str | None
    filename: str | None
    size: int | None


class CampaignMessageView(Output):
    type: CampaignMessageType
    text: str | None
    media: CampaignMedia | None
    template: dict[str, object] | None


class CampaignRateView(Output):
    per_minute: int = Field(description="as asked")
    jitter: float
    effective_per_minute: float = Field(
        description="what the session's pacing policy lets through at most"
    )


class CampaignWindowView(Output):
    start: str
    end: str
    timezone: str


class CampaignStopRuleView(Output):
    failure_rate: float
    min_sample: int


class Campaign(Output):
    id: Id = Field(examples=["cmp_5f0b2c1d4e3a69788a1b2c3d"])
    session_id: Id
    workspace_id: Id
    name: str
    status: CampaignStatus
    reason: str | None = Field(description="why it is paused (or was cancelled)")
    message: CampaignMessageView
    total: int = Field(description="recipients")
    counts: CampaignCounts
    rate: CampaignRateView
    window: CampaignWindowView | None
    stop_rule: CampaignStopRuleView
    start_at: Timestamp | None
    next_send_at: Timestamp | None = Field(description="the earliest the next send may go")
    estimated_end_at: Timestamp | None = Field(
        description="at the effective rate, from now (windows not counted); null once final"
    )
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None


class CampaignList(Output):
    data: list[Campaign]


class CampaignRecipientView(Output):
    seq: int = Field(description="its place in the campaign's order; `after` pages by it")
    to: str
    key: str | None
    variables: dict[str, str] | None
    status: RecipientStatus
    message_id: str | None
    provider_message_id: str | None
    error: str | None


class CampaignRecipientPage(Output):
    data: list[CampaignRecipientView]
    next_after: int | None = Field(description="`after` for the next page; null on the last")
