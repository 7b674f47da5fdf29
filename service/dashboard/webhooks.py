"""The Webhooks page: pending and dead deliveries with the receiver's last answer, filtered
as a bulk replay is, and replay of one delivery or of every dead one the filter selects.

Replay runs the API's own code (`replay_one`, `dead_filter` of service/api/webhooks.py), so
the page and `POST /api/webhooks/deliveries/.../retry` cannot disagree about what is
replayed; the table lists exactly the rows a replay of its filter takes (`find_events`
shares `replay_dead`'s conditions). The table is live: a replayed row leaves it.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from service.api.routing import path_param
from service.api.webhooks import dead_filter, replay_one
from service.dashboard.live import fragments, stream
from service.dashboard.markup import NONE, Html, fmt, join, options, text_field, when
from service.dashboard.routing import NavEntry, Page, form_of, hidden_csrf, page, view, wants_json
from service.digits import ascii_int
from service.models import requests as rq
from service.models.base import validate
from service.netguard import redact_url
from service.store import OutboxEvent, Store

# Rows listed; the count says how many more match.
SHOWN = 100
# Characters of a payload shown when a row is opened.
PAYLOAD_SHOWN = 4000
FILTERS = ("session_id", "workspace_id", "event", "since", "until")


class DeliveryFilter(rq.DeliveryReplay):
    """The page's query: the status listed (dead or pending) and the replay filter."""

    status: Literal["dead", "pending"] = "dead"


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def parse_filter(params: dict[str, str]) -> DeliveryFilter:
    """The filter of a query string or a form: blanks (an empty form field) are unset, the
    CSRF and `next` fields are not filters; a bad value is 422 naming its field."""
    given = {
        k: v for k, v in params.items() if v != "" and k not in ("csrf_token", "next", "replayed")
    }
    query = validate(DeliveryFilter, given)
    dead_filter(query)  # 422 unless until is later than since
    return query


def filter_values(query: DeliveryFilter) -> dict[str, str]:
    """The filter as form fields hold it (moments as whole Unix seconds)."""
    values: dict[str, str] = {}
    for name in FILTERS:
        value = getattr(query, name)
        if value is not None:
            values[name] = f"{value:.0f}" if isinstance(value, float) else str(value)
    return values


def page_url(query: DeliveryFilter, **extra: str) -> str:
    return "/dashboard/webhooks?" + urlencode(
        {"status": query.status, **filter_values(query), **extra}
    )


def _payload(row: OutboxEvent) -> str:
    text = json.dumps(json.loads(row.body), indent=1, ensure_ascii=False)
    return text if len(text) <= PAYLOAD_SHOWN else text[:PAYLOAD_SHOWN] + "\n…"


def delivery_row(request: Request, row: OutboxEvent, back: str) -> Html:
    """One delivery: what it is, the receiver's last answer, and replay when dead."""
    if row.status == "dead":
        action = fmt(
            '<form method="post" action="/dashboard/webhooks/{id}/replay" data-async>{csrf}'
            '<input type="hidden" name="next" value="{back}">'
            '<button type="submit" class="secondary" data-action="replay">Replay</button></form>',
            id=row.id,
            csrf=hidden_csrf(request),
            back=back,
        )
        state = Html("dead")
    else:
        action = Html("")
        state = fmt("next try {at}", at=when(row.next_attempt_at))
    return fmt(
        '<tr data-key="{id}" data-status="{status}">'
        "<td><details><summary><code>{id}</code></summary><pre>{payload}</pre></details></td>"
        '<td>{event}</td><td><a href="/dashboard/sessions/{sid}">{sid}</a></td>'
        "<td>{workspace}</td><td>{created}</td><td>{attempts}</td>"
        '<td data-answer="status">{code}</td><td class="error" title="{error}">{error}</td>'
        "<td>{url}</td><td>{state}</td><td{cell}>{action}</td></tr>",
        id=row.id,
        status=row.status,
        payload=_payload(row),
        event=row.event,
        sid=row.session_id,
        workspace=row.workspace_id,
        created=when(row.created_at),
        attempts=row.attempts,
        code=row.last_status_code if row.last_status_code is not None else NONE,
        error=row.last_error or "",
        url=redact_url(row.url) if row.url else "(default URL)",
        state=state,
        action=action,
        cell=Html(' class="actions"') if action else Html(""),
    )


async def webhooks_page(request: Request) -> Response:
    query = parse_filter(dict(request.query_params))
    rows, total = await store_of(request).find_events(query.status, dead_filter(query), SHOWN)
    values = filter_values(query)
    back = page_url(query)
    replayed = ascii_int(request.query_params.get("replayed"))
    notice = (
        fmt(
            '<p class="flash ok" data-notice>Replayed {n} dead deliver{y}.</p>',
            n=replayed,
            y="y" if replayed == 1 else "ies",
        )
        if replayed is not None
        else Html("")
    )
    replay_all = (
        fmt(
            '<form method="post" action="/dashboard/webhooks/replay" class="replay-all">'
            "{csrf}{hidden}"
            '<button type="submit">Replay all {total} that match</button></form>',
            csrf=hidden_csrf(request),
            hidden=join(
                fmt('<input type="hidden" name="{k}" value="{v}">', k=k, v=v)
                for k, v in values.items()
            ),
            total=total,
        )
        if query.status == "dead" and total
        else Html("")
    )
    body = fmt(
        '<link rel="stylesheet" href="/dashboard/static/ops.css">'
        '<div class="head"><h1>Webhooks</h1><span class="live" data-live>live</span>'
        '<div class="actions">{replay_all}</div></div>{notice}'
        '<form class="filters" method="get" action="/dashboard/webhooks">'
        '<label>Status<select name="status">{statuses}</select></label>'
        "{session}{workspace}{event}{since}{until}"
        '<label>&nbsp;<button type="submit">Filter</button></label></form>'
        '<div id="flash" class="flash" hidden></div>'
        '<p class="muted" data-count>{total} {status} deliver{y} match{more}.</p>'
        '<table class="sessions deliveries"><thead><tr><th>Delivery</th><th>Event</th>'
        "<th>Session</th><th>Workspace</th><th>Written</th><th>Attempts</th>"
        "<th>Last status</th><th>Last error</th><th>URL</th><th>State</th><th></th></tr>"
        '</thead><tbody data-stream="/dashboard/stream/webhooks?{filters}">{rows}</tbody></table>'
        '<p class="empty muted" data-empty{hidden}>No {status} deliveries match.</p>',
        replay_all=replay_all,
        notice=notice,
        statuses=options(("dead", "pending"), query.status),
        session=text_field("session_id", "Session", values.get("session_id", "")),
        workspace=text_field("workspace_id", "Workspace", values.get("workspace_id", "")),
        event=text_field("event", "Event", values.get("event", ""), "message_received"),
        since=text_field("since", "Written since", values.get("since", ""), "Unix s or ISO 8601"),
        until=text_field("until", "Written before", values.get("until", ""), "Unix s or ISO 8601"),
        total=total,
        status=query.status,
        y="y" if total == 1 else "ies",
        more=f"; the oldest {len(rows)} are listed" if len(rows) < total else "",
        filters=urlencode({"status": query.status, **values}),
        rows=join(
            f["html"]
            for f in fragments({r.id: delivery_row(request, r, back) for r in rows}).values()
        ),
        hidden=Html(" hidden") if rows else Html(""),
    )
    return page(request, "Webhooks", body, active="/webhooks")


async def webhooks_stream(request: Request) -> Response:
    query = parse_filter(dict(request.query_params))
    match = dead_filter(query)
    store = store_of(request)
    back = page_url(query)

    async def snapshot() -> dict[str, Any]:
        rows, _ = await store.find_events(query.status, match, SHOWN)
        return fragments({r.id: delivery_row(request, r, back) for r in rows})

    return stream(request, snapshot, "fragment")


def _back(form: dict[str, str]) -> str:
    back = form.get("next", "")
    if back.startswith("/dashboard/webhooks") and "//" not in back and "\\" not in back:
        return back
    return "/dashboard/webhooks"


async def replay_delivery(request: Request) -> Response:
    """Replay one dead delivery (404 when there is none, 409 when it is not dead)."""
    replayed = await replay_one(store_of(request), path_param(request, "delivery_id"))
    if wants_json(request):
        return JSONResponse({"id": replayed.id, "status": replayed.status}, 202)
    return RedirectResponse(_back(await form_of(request)), 303)


async def replay_matching(request: Request) -> Response:
    """Replay every dead delivery the form's filter selects."""
    query = parse_filter(await form_of(request))
    retried = await store_of(request).replay_dead(dead_filter(query), time.time())
    if wants_json(request):
        return JSONResponse({"retried": retried}, 202)
    return RedirectResponse(page_url(query, replayed=str(retried)), 303)


PAGE = Page(
    nav=NavEntry("Webhooks", "/webhooks"),
    routes=[
        view("/webhooks", webhooks_page),
        view("/stream/webhooks", webhooks_stream),
        view("/webhooks/replay", replay_matching, methods=["POST"]),
        view("/webhooks/{delivery_id}/replay", replay_delivery, methods=["POST"]),
    ],
)
