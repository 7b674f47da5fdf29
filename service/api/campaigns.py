"""Campaign endpoints: create, list, read with progress, pause, resume, cancel, and the
recipients (a page as JSON, or all of them as CSV)."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from service.api.routing import Operation, Raw, Resource, body_of, path_param, query_of, reply
from service.campaigns.manager import CampaignManager
from service.errors import require_browsers
from service.models import campaigns as cm
from service.models import requests as rq
from service.models.base import validate
from service.store.campaigns import CampaignRecord
from service.validation import parse_object

_CSV = Raw("text/csv", "every recipient (of `status`, when given), one row each, with a header")
# What a spreadsheet may take a cell starting with as a formula (OWASP, CSV injection).
FORMULA_STARTS = frozenset("=+-@\t\r")
CSV_COLUMNS = ("seq", "to", "key", "status", "message_id", "provider_message_id", "error")


def _manager(request: Request) -> CampaignManager:
    manager: CampaignManager = require_browsers(request.app.state.campaigns)
    return manager


def _campaign_request(raw: bytes) -> cm.CampaignCreate:
    return validate(cm.CampaignCreate, parse_object(raw))


async def create_campaign(request: Request) -> Response:
    session_id = path_param(request, "session_id")
    # Up to 100,000 recipients is seconds of parsing: in a thread, so the event loop keeps
    # answering other requests meanwhile.
    body = await asyncio.to_thread(_campaign_request, await request.body())
    manager = _manager(request)
    campaign = await manager.create(session_id, body)
    return reply(await manager.view(campaign), 201)


async def list_campaigns(request: Request) -> Response:
    manager = _manager(request)
    campaigns = await manager.of_session(path_param(request, "session_id"))
    return reply(cm.CampaignList(data=[await manager.view(c) for c in campaigns]))


async def get_campaign(request: Request) -> Response:
    manager = _manager(request)
    campaign = await manager.get(
        path_param(request, "session_id"), path_param(request, "campaign_id")
    )
    return reply(await manager.view(campaign))


def _action(name: str) -> Operation:
    async def act(request: Request) -> Response:
        # No options: a body, if any, must be empty so a typo is not silently ignored.
        await body_of(request, rq.NoOptions, allow_empty=True)
        manager = _manager(request)
        method = getattr(manager, name)
        campaign = await method(
            path_param(request, "session_id"), path_param(request, "campaign_id")
        )
        return reply(await manager.view(campaign))

    summaries = {
        "pause": "Pause a scheduled or running campaign (the send in flight still settles)",
        "resume": "Resume a paused campaign where it stopped",
        "cancel": "Cancel a campaign: its pending recipients are not sent",
    }
    return Operation(
        summaries[name],
        act,
        {200: cm.Campaign},
        errors=(404, 409),
        body=rq.NoOptions,
        body_required=False,
    )


def _wants_csv(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/csv" in accept and "application/json" not in accept


async def campaign_recipients(request: Request) -> Response:
    manager = _manager(request)
    session_id = path_param(request, "session_id")
    campaign_id = path_param(request, "campaign_id")
    query = query_of(request, cm.CampaignRecipientsQuery)
    if not _wants_csv(request):
        return reply(await manager.recipients(session_id, campaign_id, query))
    return recipients_csv(manager, await manager.get(session_id, campaign_id), query.status)


def recipients_csv(
    manager: CampaignManager, campaign: CampaignRecord, status: str | None
) -> StreamingResponse:
    """Every recipient of `campaign` (of `status`) as a CSV download (the dashboard's link
    serves this same answer)."""

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        out = csv.writer(buffer)
        out.writerow(CSV_COLUMNS)
        async for batch in manager.export(campaign, status):
            for row in batch:
                view = manager.recipient_view(row)
                out.writerow([_cell(getattr(view, c)) for c in CSV_COLUMNS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()
        else:
            yield ""

    filename = f"{campaign.id}-recipients.csv"
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet does not run as a formula (OWASP's list of the
    characters a formula may start with)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in FORMULA_STARTS else text


routes = [
    Resource(
        "/api/sessions/{session_id}/campaigns",
        post=Operation(
            "Create a campaign: one message to many recipients, paced",
            create_campaign,
            {201: cm.Campaign},
            errors=(404, 409),
            body=cm.CampaignCreate,
            description="Recipients are sent in the order given, each at most once, through "
            "the session's queue behind its other messages, at `rate` within the session's "
            "pacing, inside `window`. A campaign goes through the Cloud API only when its "
            "message is a template.",
        ),
        get=Operation(
            "The session's campaigns", list_campaigns, {200: cm.CampaignList}, errors=(404, 409)
        ),
    ),
    Resource(
        "/api/sessions/{session_id}/campaigns/{campaign_id}",
        get=Operation(
            "A campaign and its progress", get_campaign, {200: cm.Campaign}, errors=(404, 409)
        ),
    ),
    Resource("/api/sessions/{session_id}/campaigns/{campaign_id}/pause", post=_action("pause")),
    Resource("/api/sessions/{session_id}/campaigns/{campaign_id}/resume", post=_action("resume")),
    Resource("/api/sessions/{session_id}/campaigns/{campaign_id}/cancel", post=_action("cancel")),
    Resource(
        "/api/sessions/{session_id}/campaigns/{campaign_id}/recipients",
        get=Operation(
            "A campaign's recipients with their status: a page, or all as CSV",
            campaign_recipients,
            {200: cm.CampaignRecipientPage},
            errors=(404, 409),
            query=cm.CampaignRecipientsQuery,
            alternatives=(_CSV,),
            description="With `Accept: text/csv` (and not application/json) the answer is "
            "every recipient as CSV (`limit` and `after` do not apply).",
        ),
    ),
]
