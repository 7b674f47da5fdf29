"""Inspect and replay webhook deliveries: `/api/webhooks/deliveries`."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.clock import iso
from service.digits import ascii_int
from service.errors import Conflict, NotFound, ValidationFailed
from service.netguard import redact_url
from service.store import OutboxEvent, Store
from service.validation import json_object, query_choice, query_id

DELIVERY_STATUSES = ("pending", "delivered", "dead")


def delivery_view(event: OutboxEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "event": event.event,
        "workspace_id": event.workspace_id,
        "session_id": event.session_id,
        "status": event.status,
        "attempts": event.attempts,
        # The URL keeps its credentials for delivery; they are never shown.
        "url": redact_url(event.url) if event.url else None,
        "last_status_code": event.last_status_code,
        "last_error": event.last_error,
        "created_at": iso(event.created_at),
        "next_attempt_at": iso(event.next_attempt_at) if event.status == "pending" else None,
        "delivered_at": iso(event.delivered_at),
        "payload": json.loads(event.body),
    }


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def list_deliveries(request: Request) -> Response:
    status = query_choice(request, "status", DELIVERY_STATUSES)
    session_id = query_id(request, "session_id")
    limit = ascii_int(request.query_params.get("limit", "100"), low=1, high=1000)
    if limit is None:
        raise ValidationFailed("limit", "must be a whole number from 1 to 1000")
    events = await _store(request).list_events(session_id=session_id, status=status, limit=limit)
    return JSONResponse({"data": [delivery_view(e) for e in events]})


async def retry_delivery(request: Request) -> Response:
    event_id = request.path_params["delivery_id"]
    if not isinstance(event_id, str) or not event_id.startswith("evt_") or len(event_id) > 40:
        raise ValidationFailed("delivery_id", "must be an evt_... id")
    await json_object(request, allow_empty=True)
    store = _store(request)
    event = await store.get_event(event_id)
    if event is None:
        raise NotFound(f"no delivery {event_id!r}", code="delivery_not_found")
    if event.status != "dead":
        raise Conflict(
            f"delivery is {event.status}; only dead deliveries are replayed",
            code="delivery_not_dead",
            details={"status": event.status},
        )
    replayed = await store.replay_event(event_id, time.time())
    assert replayed is not None
    return JSONResponse(delivery_view(replayed), status_code=202)


routes = [
    Route("/api/webhooks/deliveries", list_deliveries, methods=["GET"]),
    Route("/api/webhooks/deliveries/{delivery_id}/retry", retry_delivery, methods=["POST"]),
]
