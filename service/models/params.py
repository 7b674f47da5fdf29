"""Path parameters: the type each one is validated with, also its schema in the document."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from service.models.base import EVENT_ID_PATTERN, Id
from service.models.requests import CONTACT_PATTERN, GROUP_PATTERN, ChatId

EventId = Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]
# A signed link's token: its signature is what is checked, this only bounds it.
ContactId = Annotated[
    str,
    StringConstraints(max_length=40, pattern=CONTACT_PATTERN),
    Field(examples=["5511999990001", "5511999990001@c.us", "123456789012345@lid"]),
]
GroupId = Annotated[
    str,
    StringConstraints(max_length=48, pattern=GROUP_PATTERN),
    Field(examples=["120363025246125486@g.us"]),
]
Token = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
# The id call_received gave (WhatsApp's call ids are hex; a little room around that).
CallId = Annotated[
    str,
    StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
    Field(examples=["5F0B2C1D4E3A69788A1B2C3D4E5F6071"]),
]

PATH_PARAMS: dict[str, Any] = {
    "session_id": Id,
    "message_id": Id,
    "delivery_id": EventId,
    "token": Token,
    "contact_id": ContactId,
    "group_id": GroupId,
    "chat_id": ChatId,
    "call_id": CallId,
    "campaign_id": Id,
}
