"""Path parameters: the type each one is validated with, also its schema in the document."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import StringConstraints

from service.models.base import EVENT_ID_PATTERN, Id

EventId = Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]
# A signed link's token: its signature is what is checked, this only bounds it.
Token = Annotated[str, StringConstraints(min_length=1, max_length=1024)]

PATH_PARAMS: dict[str, Any] = {
    "session_id": Id,
    "message_id": Id,
    "delivery_id": EventId,
    "token": Token,
}
