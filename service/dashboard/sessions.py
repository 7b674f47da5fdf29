"""The Sessions page: every session, its status live, filters, and the operator's actions.

The actions go through the same `SessionManager` as `POST /api/sessions/{id}/{action}`, so
in a cluster the api process forwards them to the session's worker exactly as for the API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from service.dashboard.live import fragments, stream
from service.dashboard.markup import NONE, Html, fmt, join, options, when
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
from service.sessions.manager import SessionManager
from service.store import SESSION_STATUSES, SessionRecord
from service.validation import is_valid_id

ACTIONS = ("start", "stop", "restart", "logout")
# What each action says before it runs, where it cannot be taken back.
CONFIRM = {"logout": "Unlink this device from the phone and wipe its login?"}


def manager_of(request: Request) -> SessionManager:
    manager: SessionManager = request.app.state.sessions
    return manager


def session_id_of(request: Request) -> str:
    session_id = request.path_params["session_id"]
    if not is_valid_id(session_id):
        raise Refused(404, "session_not_found", "No such session", "That is not a session id.")
    return str(session_id)


def status_badge(status: str) -> Html:
    return fmt(
        '<span class="status status-{status}">{label}</span>',
        status=status,
        label=status.replace("_", " "),
    )


def action_forms(request: Request, record: SessionRecord, back: str) -> Html:
    """The start/stop/restart/logout buttons of a session (one small form each)."""
    running = record.desired_state == "running"
    # Start only what is stopped, stop only what runs.
    shown = [a for a in ACTIONS if a != ("stop" if not running else "start")]
    return join(
        fmt(
            '<form method="post" action="/dashboard/sessions/{sid}/{action}" data-async'
            '{confirm}>{csrf}<input type="hidden" name="next" value="{back}">'
            '<button type="submit" class="{kind}" data-action="{action}">{label}</button></form>',
            sid=record.session_id,
            action=action,
            label=action.capitalize(),
            kind="danger" if action == "logout" else "secondary",
            back=back,
            csrf=hidden_csrf(request),
            confirm=fmt(' data-confirm="{text}"', text=CONFIRM[action])
            if action in CONFIRM
            else Html(""),
        )
        for action in shown
    )


def session_row(request: Request, record: SessionRecord, back: str) -> Html:
    return fmt(
        '<tr data-key="{sid}" data-status="{status}">'
        '<td><a href="/dashboard/sessions/{sid}">{sid}</a></td><td>{workspace}</td>'
        "<td>{badge}</td><td>{desired}</td><td>{phone}</td><td>{mode}</td><td>{updated}</td>"
        '<td class="error">{error}</td><td class="actions">{actions}</td></tr>',
        sid=record.session_id,
        status=record.status,
        workspace=record.workspace_id,
        badge=status_badge(record.status),
        desired=record.desired_state,
        phone=record.phone_number or NONE,
        mode=record.provider_mode,
        updated=when(record.updated_at),
        error=record.last_error or "",
        actions=action_forms(request, record, back),
    )


def _filters(request: Request) -> tuple[str | None, str | None]:
    workspace = request.query_params.get("workspace_id") or None
    status = request.query_params.get("status") or None
    if workspace is not None and not is_valid_id(workspace):
        raise Refused(422, "validation_failed", "Bad filter", "workspace_id is not a valid id.")
    if status is not None and status not in SESSION_STATUSES:
        raise Refused(
            422, "validation_failed", "Bad filter", f"status must be one of {SESSION_STATUSES}."
        )
    return workspace, status


def _query(workspace: str | None, status: str | None) -> str:
    given = {k: v for k, v in (("workspace_id", workspace), ("status", status)) if v}
    return f"?{urlencode(given)}" if given else ""


async def sessions_page(request: Request) -> Response:
    workspace, status = _filters(request)
    manager = manager_of(request)
    records = await manager.list(workspace_id=workspace, status=status)
    workspaces = sorted({r.workspace_id for r in await manager.list()})
    if workspace is not None and workspace not in workspaces:
        workspaces.append(workspace)
    back = f"/dashboard/sessions{_query(workspace, status)}"
    body = fmt(
        '<div class="head"><h1>Sessions</h1><span class="live" data-live>live</span></div>'
        '<form class="filters" method="get" action="/dashboard/sessions">'
        '<label>Workspace <select name="workspace_id" data-autofilter>{workspaces}</select></label>'
        '<label>Status <select name="status" data-autofilter>{statuses}</select></label>'
        '<noscript><button type="submit">Filter</button></noscript></form>'
        '<div id="flash" class="flash" hidden></div>'
        '<table class="sessions"><thead><tr><th>Session</th><th>Workspace</th><th>Status</th>'
        "<th>Desired</th><th>Phone</th><th>Provider</th><th>Updated</th><th>Last error</th>"
        "<th></th></tr></thead>"
        '<tbody data-stream="/dashboard/stream/sessions{query}">{rows}</tbody></table>'
        '<p class="empty muted" data-empty{hidden}>No sessions match.</p>',
        workspaces=options(workspaces, workspace, "All workspaces"),
        statuses=options(list(SESSION_STATUSES), status, "Any status"),
        query=_query(workspace, status),
        rows=join(
            f["html"]
            for f in fragments(
                {r.session_id: session_row(request, r, back) for r in records}
            ).values()
        ),
        hidden=Html(" hidden") if records else Html(""),
    )
    return page(request, "Sessions", body, active="/sessions")


async def sessions_stream(request: Request) -> Response:
    workspace, status = _filters(request)
    manager = manager_of(request)
    back = f"/dashboard/sessions{_query(workspace, status)}"

    async def snapshot() -> dict[str, Any]:
        records = await manager.list(workspace_id=workspace, status=status)
        return fragments({r.session_id: session_row(request, r, back) for r in records})

    return stream(request, snapshot, "fragment")


def safe_next(value: str | None, default: str) -> str:
    """Where a form goes back to: a dashboard path only (never another site)."""
    if value and value.startswith("/dashboard/") and "//" not in value and "\\" not in value:
        return value
    return default


def _action(action: str) -> Route:
    async def run(request: Request) -> Response:
        session_id = session_id_of(request)
        record = await getattr(manager_of(request), action)(session_id)
        if wants_json(request):
            return JSONResponse({"session_id": record.session_id, "status": record.status}, 202)
        form = await form_of(request)
        return RedirectResponse(safe_next(form.get("next"), "/dashboard/sessions"), 303)

    return view(f"/sessions/{{session_id}}/{action}", run, methods=["POST"])


PAGE = Page(
    nav=NavEntry("Sessions", "/sessions"),
    routes=[
        view("/sessions", sessions_page),
        view("/stream/sessions", sessions_stream),
        *(_action(action) for action in ACTIONS),
    ],
)
