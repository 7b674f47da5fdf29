"""Poll votes on a WhatsApp Web session: wa-js's `chat.poll_response` becomes `poll_vote`,
naming the poll by our message id (and its options by their text) when it was sent here."""

from __future__ import annotations

import json
import logging
from typing import Any

from service.clock import iso
from service.models.events import PollVote
from service.store import SessionRecord, Store

log = logging.getLogger("service.sessions")

_MAX_ID = 256
_MAX_OPTIONS = 12


def _short(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= _MAX_ID else None


def _voted_at(value: object) -> str | None:
    # wa-js's poll_response timestamp is in milliseconds.
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return iso(value / 1000)


async def on_poll_vote(record: SessionRecord, payload: dict[str, Any], *, store: Store) -> None:
    """Record `poll_vote` for the vote the page reported."""
    provider_id, voter = _short(payload.get("id")), _short(payload.get("voter"))
    if provider_id is None or voter is None:
        log.warning("session %s: a poll vote without its poll or voter", record.session_id)
        return
    ref = _short(payload.get("ref"))
    poll = await store.find_message(record.session_id, ref) if ref else None
    names: list[Any] = []
    if poll is not None and poll.type == "poll":
        options = json.loads(poll.content).get("poll", {}).get("options")
        names = options if isinstance(options, list) else []
    else:
        poll = None
    selected: dict[int, str | None] = {}
    raw = payload.get("options")
    for choice in raw[:_MAX_OPTIONS] if isinstance(raw, list) else []:
        index = choice.get("index") if isinstance(choice, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 64:
            continue
        # Our own copy of the poll names the option; else the page's, when it gave one.
        name = names[index] if index < len(names) else choice.get("name")
        selected[index] = name if isinstance(name, str) else None
    event = PollVote.model_validate(
        {
            "message_id": poll.id if poll is not None else None,
            "provider_message_id": provider_id,
            "chat_id": _short(payload.get("chat")),
            "voter": voter,
            "selected": [{"index": i, "name": n} for i, n in sorted(selected.items())],
            "voted_at": _voted_at(payload.get("timestamp")),
        }
    )
    await store.update_session(record.session_id, {}, [event.new_event()])
