"""Signing in with a one-time link, and signing out.

`GET /dashboard/login/{token}` checks the link and shows a page whose form posts it back
(the script submits it at once): a link preview or a mail scanner that only GETs the URL
does not use it up, and the cookie is set by a same-site POST, so SameSite=Strict holds for
a link opened from another site (a Laravel admin page). `POST /dashboard/login` uses the link
up, sets the cookie and lands on the sessions page, or on the session the link names.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from service.dashboard.auth import LinkClaims
from service.dashboard.markup import fmt
from service.dashboard.routing import (
    Page,
    Refused,
    bare_page,
    dashboard_of,
    form_of,
    operator_of,
    refusal,
    secure,
    view,
)
from service.store import Store
from service.validation import is_valid_id

log = logging.getLogger("service.dashboard")

_HOW = "Ask for a new one: run `python -m service dashboard link` on the server."


def _claims(request: Request, token: str) -> LinkClaims:
    claims = dashboard_of(request).auth.read_link(token)
    if claims == "expired":
        raise Refused(403, "dashboard_link_expired", "This sign-in link has expired", _HOW)
    if claims == "invalid":
        raise Refused(403, "dashboard_link_invalid", "This sign-in link is not valid", _HOW)
    return claims


async def login_form(request: Request) -> Response:
    token = request.path_params["token"]
    try:
        _claims(request, token)
    except Refused as refused:
        return secure(refusal(request, refused))
    body = fmt(
        '<section class="signin"><h1>Signing you in…</h1>'
        '<form method="post" action="/dashboard/login" data-autosubmit>'
        '<input type="hidden" name="token" value="{token}">'
        '<button type="submit">Continue to the dashboard</button></form></section>',
        token=token,
    )
    return secure(bare_page("Sign in", body))


async def login(request: Request) -> Response:
    try:
        # A page of another site must not sign this browser in (login CSRF).
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise Refused(403, "csrf_failed", "Refused", "Sign in from the link itself.")
        claims = _claims(request, (await form_of(request)).get("token", ""))
        dashboard = dashboard_of(request)
        store: Store = request.app.state.store
        # Single use, across every process sharing the store, for as long as it is valid.
        fresh = await store.first_sighting(
            dashboard.auth.nonce_key(claims), time.time(), float(dashboard.auth.link_ttl + 60)
        )
        if not fresh:
            raise Refused(403, "dashboard_link_used", "This sign-in link was used already", _HOW)
    except Refused as refused:
        return secure(refusal(request, refused))
    value, _ = dashboard.auth.cookie(claims.label)
    log.info("dashboard: %s signed in", claims.label)
    target = "/dashboard/sessions"
    if claims.session_id and is_valid_id(claims.session_id):
        target += f"/{claims.session_id}"
    response = RedirectResponse(target, status_code=303)
    response.headers["Set-Cookie"] = dashboard.auth.set_cookie_header(value)
    return secure(response)


async def logout(request: Request) -> Response:
    log.info("dashboard: %s signed out", operator_of(request).label)
    body = fmt(
        '<section class="signin"><h1>Signed out</h1><p>{how}</p></section>',
        how="To come back, ask for a new sign-in link.",
    )
    response = bare_page("Signed out", body)
    response.headers["Set-Cookie"] = dashboard_of(request).auth.clear_cookie_header()
    return response


async def home(request: Request) -> Response:
    return RedirectResponse("/dashboard/sessions", status_code=303)


PAGE = Page(
    nav=None,
    routes=[
        Route("/login/{token}", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        view("/logout", logout, methods=["POST"]),
        view("/", home),
    ],
)
