"""Inspect and replay webhook deliveries: `/api/webhooks/deliveries`, one dead delivery
or every dead one a filter selects."""

from __future__ import annotations

import json
import time

from starlette.requests import Request
from starlette.responses import Response

from service.api.routing import Operation, Resource, body_of, path_param, query_of, reply
from service.clock import iso
from service.errors import Conflict, NotFound, ValidationFailed
from service.models import requests as rq
from service.models import responses as rs
from service.netguard import redact_url
from service.store import DeadFilter, OutboxEvent, Store


def delivery_view(event: OutboxEvent) -> rs.Delivery:
    return rs.Delivery.model_validate(
        {
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
    )


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def replay_one(store: Store, event_id: str) -> OutboxEvent:
    """Put one dead delivery back in line (the API's and the dashboard's replay): 404 when
    there is none, 409 when it is not dead."""
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
    return replayed


def dead_filter(query: rq.DeliveryReplay) -> DeadFilter:
    """The store's filter for a validated replay query (422 when `until` is not later than
    `since`); the dashboard lists and replays with the same one."""
    if query.since is not None and query.until is not None and query.since >= query.until:
        raise ValidationFailed("until", "must be later than since")
    return DeadFilter(
        session_id=query.session_id,
        workspace_id=query.workspace_id,
        event=query.event,
        since=query.since,
        until=query.until,
    )


async def list_deliveries(request: Request) -> Response:
    query = query_of(request, rq.DeliveryQuery)
    events = await _store(request).list_events(
        session_id=query.session_id, status=query.status, limit=query.limit
    )
    return reply(rs.DeliveryList(data=[delivery_view(e) for e in events]))


async def retry_delivery(request: Request) -> Response:
    event_id = path_param(request, "delivery_id")
    await body_of(request, rq.NoOptions, allow_empty=True)
    return reply(delivery_view(await replay_one(_store(request), event_id)), 202)


async def retry_deliveries(request: Request) -> Response:
    """Replay every dead delivery the filters select, in one statement (no page size: the
    rows only change status; the dispatcher then delivers them line by line)."""
    query = await body_of(request, rq.DeliveryReplay, allow_empty=True)
    retried = await _store(request).replay_dead(dead_filter(query), time.time())
    return reply(rs.DeliveriesReplayed(retried=retried), 202)


routes = [
    Resource(
        "/api/webhooks/deliveries",
        get=Operation(
            "List webhook deliveries, oldest first",
            list_deliveries,
            {200: rs.DeliveryList},
            query=rq.DeliveryQuery,
        ),
    ),
    Resource(
        "/api/webhooks/deliveries/retry",
        post=Operation(
            "Replay every dead delivery the filters select (each with a fresh 24 h window)",
            retry_deliveries,
            {202: rs.DeliveriesReplayed},
            body=rq.DeliveryReplay,
            body_required=False,
        ),
    ),
    Resource(
        "/api/webhooks/deliveries/{delivery_id}/retry",
        post=Operation(
            "Replay a dead delivery (same X-Webhook-Id, a fresh 24 h retry window)",
            retry_delivery,
            {202: rs.Delivery},
            errors=(404, 409),
            body=rq.NoOptions,
            body_required=False,
        ),
    ),
]
