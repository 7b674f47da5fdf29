"""The Campaigns page: every campaign with its progress live (counts by status, a progress
bar, the rate, the estimated end, why it is paused), filtered by session, workspace and
status; a campaign's own page with its recipients a page at a time, their CSV; and pause,
resume and cancel.

Everything goes through the API's `CampaignManager` (`view` for the progress, `recipients`
for the pages, `pause`/`resume`/`cancel` for the actions) and the API's CSV answer, so the
page and `/api/sessions/{id}/campaigns/...` cannot disagree. Those only write the
campaign's rows: in a cluster the api process does them and the worker running the
session notices within its poll, exactly as for the API.
"""

from __future__ import annotations

import time
from typing import Any, get_args
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from service.api.campaigns import recipients_csv
from service.api.routing import path_param
from service.campaigns.manager import CampaignManager
from service.dashboard.live import Snapshot, fragments, stream
from service.dashboard.markup import NONE, Html, fmt, join, options, text_field
from service.dashboard.routing import (
    NavEntry,
    Page,
    Refused,
    form_of,
    hidden_csrf,
    page,
    view,
    wants_json,
)
from service.dashboard.sessions import safe_next
from service.errors import NotFound, require_browsers
from service.models import campaigns as cm
from service.models.base import validate
from service.store.campaigns import ACTIVE, CAMPAIGN_STATUSES, FINAL, CampaignRecord
from service.validation import is_valid_id

# Campaigns listed (newest first); the count says how many more match.
SHOWN = 100
# Recipients on one page of a campaign's own page.
PAGE_SIZE = 50
ACTIONS = ("pause", "resume", "cancel")
# Statuses still to settle: what the progress bar has not reached yet.
OPEN = ("pending", "queued", "sending")
CANCEL_CONFIRM = "Cancel this campaign? Its pending recipients are not sent."
# A stream counts a campaign's recipients at most this often (seconds): counting 100,000 of
# them takes a good part of a second, and a sending campaign commits many times a second.
RECOUNT = 2.0


def manager_of(request: Request) -> CampaignManager:
    """The API's campaign manager (409 runtime_disabled on an instance without one)."""
    manager: CampaignManager = require_browsers(request.app.state.campaigns)
    return manager


def campaign_url(session_id: str, campaign_id: str, suffix: str = "") -> str:
    return f"/dashboard/campaigns/{session_id}/{campaign_id}{suffix}"


def moment(timestamp: str | None) -> Html:
    """An API timestamp (ISO 8601 UTC) in a `<time>` the script shows in local time."""
    if not timestamp:
        return Html(NONE)
    return fmt('<time datetime="{t}">{t}</time>', t=timestamp)


def campaign_badge(status: str) -> Html:
    return fmt('<span class="status campaign-{s}">{s}</span>', s=status)


def progress_of(view: cm.Campaign) -> Html:
    """The bar (recipients settled of all) and the counts by status that are not zero."""
    counts = view.counts.model_dump()
    done = view.total - sum(counts[k] for k in OPEN)
    percent = 100 * done // view.total if view.total else 100
    shown = [
        fmt('<span class="count msg-{k}" data-count="{k}">{k} {n}</span>', k=k, n=n)
        for k, n in counts.items()
        if n
    ]
    return fmt(
        '<progress max="{total}" value="{done}" data-done="{done}">{percent}%</progress>'
        '<span class="muted">{done}/{total} ({percent}%)</span><div class="counts">{counts}</div>',
        total=view.total,
        done=done,
        percent=percent,
        counts=join(shown, " "),
    )


def rate_of(view: cm.Campaign) -> Html:
    """The rate it goes at (the asked rate, capped by the session's pacing)."""
    rate = view.rate
    capped = (
        fmt(' <span class="muted">(asked {n})</span>', n=rate.per_minute)
        if rate.effective_per_minute < rate.per_minute
        else Html("")
    )
    return fmt("{n}/min{capped}", n=rate.effective_per_minute, capped=capped)


def action_forms(request: Request, view: cm.Campaign, back: str) -> Html:
    """Pause while it may send, resume while paused, cancel until it is final."""
    shown = [
        a
        for a in ACTIONS
        if (a == "pause" and view.status in ACTIVE)
        or (a == "resume" and view.status == "paused")
        or (a == "cancel" and view.status not in FINAL)
    ]
    return join(
        fmt(
            '<form method="post" action="{url}" data-async{confirm}>{csrf}'
            '<input type="hidden" name="next" value="{back}">'
            '<button type="submit" class="{kind}" data-action="{action}">{label}</button></form>',
            url=campaign_url(view.session_id, view.id, f"/{action}"),
            action=action,
            label=action.capitalize(),
            kind="danger" if action == "cancel" else "secondary",
            back=back,
            csrf=hidden_csrf(request),
            confirm=fmt(' data-confirm="{text}"', text=CANCEL_CONFIRM)
            if action == "cancel"
            else Html(""),
        )
        for action in shown
    )


def status_of(view: cm.Campaign) -> Html:
    reason = fmt('<div class="reason" data-reason>{r}</div>', r=view.reason) if view.reason else ""
    return fmt("{badge}{reason}", badge=campaign_badge(view.status), reason=reason)


def campaign_row(request: Request, view: cm.Campaign, back: str) -> Html:
    return fmt(
        '<tr data-key="{id}" data-status="{status}">'
        '<td><a href="{url}">{name}</a><div class="muted"><code>{id}</code></div></td>'
        '<td><a href="/dashboard/sessions/{sid}">{sid}</a></td><td>{workspace}</td>'
        '<td>{state}</td><td class="progress">{progress}</td><td>{rate}</td><td>{end}</td>'
        '<td class="actions">{actions}</td></tr>',
        id=view.id,
        status=view.status,
        url=campaign_url(view.session_id, view.id),
        name=view.name,
        sid=view.session_id,
        workspace=view.workspace_id,
        state=status_of(view),
        progress=progress_of(view),
        rate=rate_of(view),
        end=moment(view.estimated_end_at),
        actions=action_forms(request, view, back),
    )


# -- the list -----------------------------------------------------------------------------


def _filters(request: Request) -> dict[str, str]:
    given = {
        k: request.query_params.get(k) or ""
        for k in ("session_id", "workspace_id", "status")
        if request.query_params.get(k)
    }
    for name in ("session_id", "workspace_id"):
        if name in given and not is_valid_id(given[name]):
            raise Refused(422, "validation_failed", "Bad filter", f"{name} is not a valid id.")
    if given.get("status", CAMPAIGN_STATUSES[0]) not in CAMPAIGN_STATUSES:
        raise Refused(
            422, "validation_failed", "Bad filter", f"status must be one of {CAMPAIGN_STATUSES}."
        )
    return given


async def _listed(manager: CampaignManager, given: dict[str, str]) -> list[CampaignRecord]:
    """The campaigns the filter selects, newest first (the store's own listing)."""
    status = given.get("status")
    found = await manager.campaigns.find(given.get("session_id"), [status] if status else None)
    workspace = given.get("workspace_id")
    return [c for c in reversed(found) if workspace is None or c.workspace_id == workspace]


async def _rows(request: Request, manager: CampaignManager, given: dict[str, str]) -> Any:
    back = "/dashboard/campaigns" + (f"?{urlencode(given)}" if given else "")
    listed = await _listed(manager, given)
    rows = {c.id: campaign_row(request, await manager.view(c), back) for c in listed[:SHOWN]}
    return fragments(rows), len(listed)


async def campaigns_page(request: Request) -> Response:
    given = _filters(request)
    manager = manager_of(request)
    rows, total = await _rows(request, manager, given)
    body = fmt(
        '<link rel="stylesheet" href="/dashboard/static/campaigns.css">'
        '<div class="head"><h1>Campaigns</h1><span class="live" data-live>live</span></div>'
        '<form class="filters" method="get" action="/dashboard/campaigns">{session}{workspace}'
        '<label>Status <select name="status" data-autofilter>{statuses}</select></label>'
        '<label>&nbsp;<button type="submit">Filter</button></label></form>'
        '<div id="flash" class="flash" hidden></div>{more}'
        '<table class="sessions campaigns"><thead><tr><th>Campaign</th><th>Session</th>'
        "<th>Workspace</th><th>Status</th><th>Progress</th><th>Rate</th><th>Estimated end</th>"
        "<th></th></tr></thead>"
        '<tbody data-stream="/dashboard/stream/campaigns{query}">{rows}</tbody></table>'
        '<p class="empty muted" data-empty{hidden}>No campaigns match.</p>',
        session=text_field("session_id", "Session", given.get("session_id", "")),
        workspace=text_field("workspace_id", "Workspace", given.get("workspace_id", "")),
        statuses=options(CAMPAIGN_STATUSES, given.get("status"), "Any status"),
        more=fmt('<p class="muted">The newest {n} of {total} are listed.</p>', n=SHOWN, total=total)
        if total > SHOWN
        else Html(""),
        query=f"?{urlencode(given)}" if given else "",
        rows=join(f["html"] for f in rows.values()),
        hidden=Html(" hidden") if rows else Html(""),
    )
    return page(request, "Campaigns", body, active="/campaigns")


async def campaigns_stream(request: Request) -> Response:
    given = _filters(request)
    manager = manager_of(request)

    async def snapshot() -> dict[str, Any]:
        rows, _ = await _rows(request, manager, given)
        return dict(rows)

    return stream(request, throttled(snapshot), "fragment")


# -- one campaign -------------------------------------------------------------------------


def throttled(snapshot: Snapshot, every: float = RECOUNT) -> Snapshot:
    """`snapshot`, read again only once `every` seconds have passed since the last read
    (the stream asks at each commit; in between it gets the last answer, so sends nothing)."""
    last: list[Any] = [float("-inf"), None]

    async def read() -> dict[str, Any]:
        if time.monotonic() - last[0] >= every:
            last[1] = await snapshot()
            last[0] = time.monotonic()
        current: dict[str, Any] = last[1]
        return current

    return read


def _ids(request: Request) -> tuple[str, str]:
    return path_param(request, "session_id"), path_param(request, "campaign_id")


def _page_query(request: Request) -> cm.CampaignRecipientsQuery:
    """The recipients' page asked for: the API's query (blanks unset), 50 to a page."""
    given = {k: v for k, v in request.query_params.items() if v and k in ("status", "after")}
    return validate(cm.CampaignRecipientsQuery, {"limit": str(PAGE_SIZE), **given})


def summary(request: Request, view: cm.Campaign) -> Html:
    """The campaign's live part: its status, progress, rate, times and actions."""
    back = campaign_url(view.session_id, view.id)
    window = (
        fmt("{a} to {b} {tz}", a=view.window.start, b=view.window.end, tz=view.window.timezone)
        if view.window
        else "any time"
    )
    return fmt(
        '<section class="card summary" data-key="summary" data-status="{status}"><dl>'
        "<dt>Status</dt><dd>{state}</dd><dt>Progress</dt><dd>{progress}</dd>"
        "<dt>Rate</dt><dd>{rate}</dd><dt>Window</dt><dd>{window}</dd>"
        "<dt>Stop rule</dt><dd>pause past {failure} failed (after {sample} sends)</dd>"
        "<dt>Starts</dt><dd>{start}</dd><dt>Started</dt><dd>{started}</dd>"
        "<dt>Next send</dt><dd>{next}</dd><dt>Estimated end</dt><dd>{end}</dd>"
        "<dt>Finished</dt><dd>{finished}</dd></dl>"
        '<div class="actions">{actions}</div></section>',
        failure=f"{view.stop_rule.failure_rate:.0%}",
        status=view.status,
        state=status_of(view),
        progress=progress_of(view),
        rate=rate_of(view),
        window=window,
        sample=view.stop_rule.min_sample,
        start=moment(view.start_at),
        started=moment(view.started_at),
        next=moment(view.next_send_at),
        end=moment(view.estimated_end_at),
        finished=moment(view.finished_at),
        actions=action_forms(request, view, back),
    )


def recipient_row(row: cm.CampaignRecipientView) -> Html:
    return fmt(
        '<tr data-key="r{seq}" data-status="{status}"><td>{seq}</td><td>{to}</td><td>{key}</td>'
        '<td><span class="status msg-{status}">{status}</span></td><td><code>{message}</code></td>'
        '<td class="error">{error}</td></tr>',
        seq=row.seq,
        to=row.to,
        key=row.key or NONE,
        status=row.status,
        message=row.message_id or NONE,
        error=row.error or "",
    )


async def _recipients(
    manager: CampaignManager, session_id: str, campaign_id: str, query: cm.CampaignRecipientsQuery
) -> tuple[dict[str, Any], int | None]:
    found = await manager.recipients(session_id, campaign_id, query)
    return fragments({f"r{r.seq}": recipient_row(r) for r in found.data}), found.next_after


async def campaign_page(request: Request) -> Response:
    session_id, campaign_id = _ids(request)
    query = _page_query(request)
    manager = manager_of(request)
    shown = await manager.view(await manager.get(session_id, campaign_id))
    rows, next_after = await _recipients(manager, session_id, campaign_id, query)
    status = {"status": query.status} if query.status else {}
    pages = [
        fmt('<a href="?{q}">First page</a>', q=urlencode(status)) if query.after else Html(""),
        fmt('<a href="?{q}" data-next>Next page</a>', q=urlencode({**status, "after": next_after}))
        if next_after is not None
        else Html(""),
    ]
    body = fmt(
        '<link rel="stylesheet" href="/dashboard/static/campaigns.css">'
        '<p><a href="/dashboard/campaigns?session_id={sid}">Campaigns of {sid}</a></p>'
        '<div class="head"><h1>{name}</h1><span class="live" data-live>live</span></div>'
        '<p class="muted"><code>{id}</code> · session <a href="/dashboard/sessions/{sid}">{sid}'
        "</a> · workspace {workspace} · {kind} · created {created}</p>"
        '<div id="flash" class="flash" hidden></div>'
        '<div data-stream="/dashboard/stream/campaigns/{sid}/{id}">{summary}</div>'
        '<div class="head"><h2>Recipients</h2><form class="filters" method="get">'
        '<label>Status <select name="status" data-autofilter>{statuses}</select></label>'
        '<noscript><button type="submit">Filter</button></noscript></form>'
        '<a class="button secondary" href="{csv}" data-csv>Download CSV</a></div>'
        '<table class="sessions recipients"><thead><tr><th>#</th><th>To</th><th>Key</th>'
        "<th>Status</th><th>Message</th><th>Error</th></tr></thead>"
        '<tbody data-stream="/dashboard/stream/campaigns/{sid}/{id}/recipients?{page}">{rows}'
        '</tbody></table><p class="empty muted" data-empty{hidden}>No recipients match.</p>'
        '<p class="pages">{pages}</p>',
        sid=session_id,
        id=campaign_id,
        name=shown.name,
        workspace=shown.workspace_id,
        kind=shown.message.type,
        created=moment(shown.created_at),
        summary=fragments({"summary": summary(request, shown)})["summary"]["html"],
        statuses=options(get_args(cm.RecipientStatus), query.status, "Any status"),
        csv=campaign_url(session_id, campaign_id, "/recipients.csv")
        + (f"?{urlencode(status)}" if status else ""),
        page=urlencode({**status, "after": query.after}),
        rows=join(f["html"] for f in rows.values()),
        hidden=Html(" hidden") if rows else Html(""),
        pages=join(pages, " "),
    )
    return page(request, shown.name, body, active="/campaigns")


async def campaign_stream(request: Request) -> Response:
    session_id, campaign_id = _ids(request)
    manager = manager_of(request)
    await manager.get(session_id, campaign_id)

    async def snapshot() -> dict[str, Any]:
        try:
            current = await manager.view(await manager.get(session_id, campaign_id))
        except NotFound:  # deleted with its session: the page empties
            return {}
        return fragments({"summary": summary(request, current)})

    return stream(request, throttled(snapshot), "fragment")


async def recipients_stream(request: Request) -> Response:
    session_id, campaign_id = _ids(request)
    query = _page_query(request)
    manager = manager_of(request)
    await manager.get(session_id, campaign_id)

    async def snapshot() -> dict[str, Any]:
        try:
            rows, _ = await _recipients(manager, session_id, campaign_id, query)
        except NotFound:
            return {}
        return rows

    return stream(request, throttled(snapshot), "fragment")


async def recipients_download(request: Request) -> Response:
    """The API's CSV of the recipients (of `status`), under the dashboard's sign-in."""
    session_id, campaign_id = _ids(request)
    query = _page_query(request)
    manager = manager_of(request)
    return recipients_csv(manager, await manager.get(session_id, campaign_id), query.status)


def _action(action: str) -> Route:
    async def run(request: Request) -> Response:
        session_id, campaign_id = _ids(request)
        manager = manager_of(request)
        done = await getattr(manager, action)(session_id, campaign_id)
        if wants_json(request):
            return JSONResponse({"id": done.id, "status": done.status})
        form = await form_of(request)
        return RedirectResponse(safe_next(form.get("next"), "/dashboard/campaigns"), 303)

    return view(f"/campaigns/{{session_id}}/{{campaign_id}}/{action}", run, methods=["POST"])


PAGE = Page(
    nav=NavEntry("Campaigns", "/campaigns"),
    routes=[
        view("/campaigns", campaigns_page),
        view("/stream/campaigns", campaigns_stream),
        view("/campaigns/{session_id}/{campaign_id}", campaign_page),
        view("/stream/campaigns/{session_id}/{campaign_id}", campaign_stream),
        view("/stream/campaigns/{session_id}/{campaign_id}/recipients", recipients_stream),
        view("/campaigns/{session_id}/{campaign_id}/recipients.csv", recipients_download),
        *(_action(action) for action in ACTIONS),
    ],
)
