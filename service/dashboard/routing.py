"""The dashboard's plumbing: pages and their nav entries, the guarded route, the layout.

Every dashboard route is made with `view()`: it refuses a browser that is not signed in
(401 page), checks the CSRF token on every POST (403), adds the security headers, and renders
refusals and errors as pages (or as the API's JSON error shape when the caller asked for
JSON, as the dashboard's script does).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from service import __version__
from service.dashboard.auth import COOKIE, DashboardAuth, Operator
from service.dashboard.live import Changes
from service.dashboard.markup import Html, fmt, join
from service.errors import ApiError, registered

log = logging.getLogger("service.dashboard")

Handler = Callable[[Request], Awaitable[Response]]

# Only the dashboard's own files; no inline script or style anywhere.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # The login link's token is in its path: never hand it on as a Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
FORM_LIMIT = 64 * 1024


@dataclass(frozen=True)
class NavEntry:
    """A link in the navigation bar. `cluster_only` entries show only in cluster mode."""

    title: str
    path: str
    cluster_only: bool = False


@dataclass(frozen=True)
class Page:
    """One dashboard module's contribution: its nav entry (None for a page reached from
    another one) and its routes (page, streams, actions), with paths under /dashboard."""

    nav: NavEntry | None
    routes: Sequence[BaseRoute] = field(default_factory=list)


@dataclass
class Dashboard:
    """What the dashboard's handlers share (`request.app.state.dashboard`)."""

    auth: DashboardAuth
    changes: Changes
    role: str
    # The operations pages' history and event monitor (service/dashboard/ops.py
    # `Operations`). Typed loosely: ops imports the event monitor, whose page imports this
    # module; the pages that read it name the type they take out of it.
    ops: Any
    nav: list[NavEntry] = field(default_factory=list)


class Refused(Exception):
    """A request the dashboard turns away, shown as a page: `status`, a stable `code` (in
    the page, for tests and support), a title and what to do."""

    def __init__(self, status: int, code: str, title: str, message: str) -> None:
        super().__init__(message)
        # The script reads these codes as it reads the API's: one registry for both.
        if not registered(code, status):
            raise ValueError(f"dashboard code {code!r} at {status} is not in ERRORS")
        self.status = status
        self.code = code
        self.title = title
        self.message = message


def dashboard_of(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


def operator_of(request: Request) -> Operator:
    """The signed-in operator of a request that passed `view()`."""
    operator: Operator = request.state.operator
    return operator


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


async def form_of(request: Request) -> dict[str, str]:
    """An urlencoded form body (the dashboard's forms; the script sends the same)."""
    body = await request.body()
    if len(body) > FORM_LIMIT:
        raise Refused(413, "payload_too_large", "Too large", "The form is larger than allowed.")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise Refused(422, "validation_failed", "Bad form", "The form is not UTF-8.") from None


def view(path: str, handler: Handler, methods: Sequence[str] = ("GET",)) -> Route:
    """A dashboard route: signed-in operators only, CSRF-checked on POST (see module doc)."""

    async def guarded(request: Request) -> Response:
        dashboard = dashboard_of(request)
        try:
            operator = dashboard.auth.operator(request.cookies.get(COOKIE))
            if operator is None:
                raise Refused(
                    401,
                    "dashboard_signin_required",
                    "Sign in first",
                    "This page needs a dashboard session. Ask for a sign-in link: run "
                    "`python -m service dashboard link` on the server, or use the link your "
                    "Laravel admin page gives you.",
                )
            request.state.operator = operator
            if request.method == "POST":
                await check_csrf(request, operator)
            response = await handler(request)
        except Refused as refused:
            response = refusal(request, refused)
        except ApiError as exc:
            if wants_json(request):
                raise
            response = refusal(request, Refused(exc.status, exc.code, "Not done", exc.message))
        secure(response)
        return response

    return Route(path, guarded, methods=list(methods))


async def check_csrf(request: Request, operator: Operator) -> None:
    """The request's CSRF token (X-CSRF-Token header, or the form's `csrf_token` field)
    must be this browser session's."""
    token = request.headers.get("x-csrf-token")
    if token is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        token = (await form_of(request)).get("csrf_token")
    if not dashboard_of(request).auth.csrf_ok(operator, token):
        raise Refused(
            403,
            "csrf_failed",
            "Refused",
            "This request did not carry the page's CSRF token. Reload the page and try again.",
        )


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def refusal(request: Request, refused: Refused) -> Response:
    """A refusal as a page (or the JSON error shape for the script)."""
    if wants_json(request):
        body = {"error": {"code": refused.code, "message": refused.message, "details": {}}}
        return secure(JSONResponse(body, status_code=refused.status))
    html = fmt(
        '<section class="refusal" data-code="{code}"><h1>{title}</h1><p>{message}</p>'
        '<p class="muted">Code: <code>{code}</code></p></section>',
        code=refused.code,
        title=refused.title,
        message=refused.message,
    )
    return bare_page(refused.title, html, status=refused.status)


def _shell(title: str, header: Html, body: Html, csrf: str = "") -> Html:
    return fmt(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="csrf-token" content="{csrf}">'
        "<title>{title} · wa-sidecar</title>"
        '<link rel="stylesheet" href="/dashboard/static/dashboard.css">'
        '<script src="/dashboard/static/dashboard.js" defer></script>'
        "</head><body>{header}<main>{body}</main>"
        '<footer class="muted">wa-sidecar {version}</footer></body></html>',
        csrf=csrf,
        title=title,
        header=header,
        body=body,
        version=__version__,
    )


def bare_page(title: str, body: Html, status: int = 200) -> HTMLResponse:
    """A page outside the signed-in layout (sign-in, refusals)."""
    header = Html('<header class="bar"><span class="brand">wa-sidecar</span></header>')
    return HTMLResponse(_shell(title, header, body), status_code=status)


def page(request: Request, title: str, body: Html, *, active: str = "") -> HTMLResponse:
    """A signed-in page: the layout, the navigation (`active` is the current entry's path),
    who is signed in, and the CSRF token the script sends with every change."""
    dashboard = dashboard_of(request)
    operator = operator_of(request)
    csrf = dashboard.auth.csrf_token(operator)
    links = join(
        fmt(
            '<a href="/dashboard{path}"{current}>{title}</a>',
            path=entry.path,
            title=entry.title,
            current=Html(' aria-current="page"') if entry.path == active else Html(""),
        )
        for entry in dashboard.nav
    )
    header = fmt(
        '<header class="bar"><a class="brand" href="/dashboard/">wa-sidecar</a>'
        '<nav>{links}</nav><span class="who">{role}{who}</span>'
        '<form method="post" action="/dashboard/logout" class="logout">'
        '<input type="hidden" name="csrf_token" value="{csrf}">'
        '<button type="submit" class="link">Sign out</button></form></header>',
        links=links,
        role=fmt('<span class="tag">{role}</span> ', role=dashboard.role)
        if dashboard.role != "all"
        else Html(""),
        who=operator.label,
        csrf=csrf,
    )
    return HTMLResponse(_shell(title, header, body, csrf))


def hidden_csrf(request: Request) -> Html:
    """The CSRF field every dashboard form carries."""
    token = dashboard_of(request).auth.csrf_token(operator_of(request))
    return fmt('<input type="hidden" name="csrf_token" value="{token}">', token=token)
