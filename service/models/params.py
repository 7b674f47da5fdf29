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

PATH_PARAMS: dict[str, Any] = {
    "session_id": Id,
    "message_id": Id,
    "delivery_id": EventId,
    "token": Token,
    "contact_id": ContactId,
    "group_id": GroupId,
    "chat_id": ChatId,
}
