"""One session's page: its status, the QR (redrawn as it rotates) and the pairing-code form,
phone number, provider and failover state, recent messages, a text to send, and its
browser's memory.

Each part of the page is a fragment with a `data-key`; the page's stream sends a part again
whenever what it shows changed, and the script swaps it in place.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from adapters.selector import ProviderSelector
from service.dashboard.live import fragments, stream
from service.dashboard.markup import NONE, Html, fmt, join, when
from service.dashboard.routing import (
    Page,
    Refused,
    form_of,
    hidden_csrf,
    page,
    view,
    wants_json,
)
from service.dashboard.sessions import action_forms, manager_of, session_id_of, status_badge
from service.errors import SessionNotFound, require_browsers
from service.messaging.messenger import Messenger
from service.messaging.request import normalize_phone, parse_send_request
from service.qr import qr_png
from service.sessions.runtime import SessionRuntime
from service.store import MessageRecord, SessionRecord, Store

RECENT = 15
# PSS reads every page table of the browser's processes: not on every tick.
MEMORY_EVERY = 10.0
MESSAGES_EVERY = 3.0
PREVIEW = 60
MB = 1024 * 1024


async def _record(request: Request, session_id: str) -> SessionRecord:
    try:
        return await manager_of(request).get(session_id)
    except SessionNotFound:
        raise Refused(
            404, "session_not_found", "No such session", f"There is no session {session_id!r}."
        ) from None


def qr_version(qr: str) -> str:
    return hashlib.sha256(qr.encode()).hexdigest()[:16]


def summary_part(record: SessionRecord) -> Html:
    return fmt(
        '<section class="card" data-key="summary" data-status="{status}"><h2>Status</h2><dl>'
        "<dt>Status</dt><dd>{badge}</dd><dt>Desired</dt><dd>{desired}</dd>"
        "<dt>Phone number</dt><dd>{phone}</dd><dt>Workspace</dt><dd>{workspace}</dd>"
        "<dt>Updated</dt><dd>{updated}</dd><dt>Last error</dt><dd>{error}</dd></dl></section>",
        status=record.status,
        badge=status_badge(record.status),
        desired=record.desired_state,
        phone=record.phone_number or NONE,
        workspace=record.workspace_id,
        updated=when(record.updated_at),
        error=record.last_error or NONE,
    )


def qr_part(record: SessionRecord) -> Html:
    """The QR to scan while the session waits for a phone (sent again as it rotates)."""
    if record.status == "connected":
        inner = fmt(
            '<p class="linked">Linked to <strong>{phone}</strong>.</p>',
            phone=record.phone_number or "a phone",
        )
    elif record.status == "qr_required" and record.qr:
        inner = fmt(
            '<img class="qr" src="/dashboard/sessions/{sid}/qr.png?v={v}" width="240" '
            'height="240" alt="QR code to scan with WhatsApp" data-qr="{qr}">'
            '<p class="muted">On the phone: WhatsApp, Linked devices, Link a device, then '
            "scan. It changes as WhatsApp rotates it; this one expires {expires}.</p>",
            sid=record.session_id,
            v=qr_version(record.qr),
            qr=record.qr,
            expires=when(record.qr_expires_at),
        )
    else:
        inner = fmt(
            '<p class="muted">No QR to show: the session is {status}.</p>',
            status=record.status.replace("_", " "),
        )
    return fmt('<div data-key="qr">{inner}</div>', inner=inner)


def pairing_part(request: Request, record: SessionRecord) -> Html:
    """The pairing-code form: its own fragment, so a rotating QR leaves what is typed."""
    if record.status != "qr_required":
        return Html('<div data-key="pairing"></div>')
    return fmt(
        '<div data-key="pairing"><form method="post" class="pairing" data-async '
        'data-show="code" action="/dashboard/sessions/{sid}/pairing-code">{csrf}'
        '<label>Or link with a code: phone number <input name="phone" inputmode="tel" '
        'placeholder="+15551234567" required></label>'
        '<button type="submit">Get a pairing code</button>'
        '<output class="code" data-code></output></form></div>',
        sid=record.session_id,
        csrf=hidden_csrf(request),
    )


def actions_part(request: Request, record: SessionRecord) -> Html:
    back = f"/dashboard/sessions/{record.session_id}"
    return fmt(
        '<div class="actions" data-key="actions">{forms}</div>',
        forms=action_forms(request, record, back),
    )


def provider_part(request: Request, record: SessionRecord, last: str | None) -> Html:
    """The provider mode, whether the Cloud API can take over, and each circuit."""
    selector: ProviderSelector | None = request.app.state.selector
    rows: list[Html] = []
    if selector is not None:
        circuits = selector.circuits(record.session_id)
        for name, engine in selector.providers.items():
            state = engine.status(record)
            is_open, failures = circuits[name]
            rows.append(
                fmt(
                    "<tr><td>{name}</td><td>{available}</td><td>{circuit}</td></tr>",
                    name=name,
                    available="available" if state.available else f"unavailable: {state.reason}",
                    circuit=f"open ({failures} failures)" if is_open else "closed",
                )
            )
    return fmt(
        '<section class="card" data-key="provider"><h2>Provider</h2><dl>'
        "<dt>Mode</dt><dd>{mode}</dd><dt>Cloud API</dt><dd>{meta}</dd>"
        "<dt>Last sent through</dt><dd>{last}</dd></dl>"
        '<table class="compact"><thead><tr><th>Provider</th><th>Now</th><th>Circuit</th></tr>'
        "</thead><tbody>{rows}</tbody></table></section>",
        mode=record.provider_mode,
        meta=f"configured ({record.meta_phone_number_id})"
        if record.meta_sealed
        else "not configured",
        last=last or NONE,
        rows=join(rows),
    )


def send_part(request: Request, record: SessionRecord) -> Html:
    """A text to send from the page (what `sessions send` does): queued like the API's."""
    return fmt(
        '<div data-key="send"><form method="post" class="send" data-async data-show="queued" '
        'action="/dashboard/sessions/{sid}/messages">{csrf}'
        '<label>To <input name="to" inputmode="tel" placeholder="+15551234567" required></label>'
        '<label>Text <input name="text" maxlength="4096" required></label>'
        '<button type="submit">Send</button><output data-queued></output></form></div>',
        sid=record.session_id,
        csrf=hidden_csrf(request),
    )


def _preview(message: MessageRecord) -> str:
    try:
        content = json.loads(message.content)
    except ValueError:
        return ""
    text = content.get("text") or content.get("caption") or ""
    if not isinstance(text, str):
        return ""
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def messages_part(messages: list[MessageRecord]) -> Html:
    rows = join(
        fmt(
            '<tr data-message="{id}"><td>{when}</td><td>{direction}</td><td>{chat}</td>'
            '<td>{type}</td><td class="preview">{preview}</td><td>{badge}</td><td>{provider}</td>'
            "</tr>",
            id=m.id,
            when=when(m.created_at),
            direction="in" if m.direction == "in" else "out",
            chat=m.chat_id,
            type=m.type,
            preview=_preview(m),
            badge=fmt('<span class="status msg-{s}">{s}</span>', s=m.status),
            provider=m.provider or NONE,
        )
        for m in messages
    )
    empty = Html("") if messages else Html('<p class="muted">No messages yet.</p>')
    return fmt(
        '<section class="card wide" data-key="messages"><h2>Recent messages</h2>'
        '<table class="compact"><thead><tr><th>When</th><th></th><th>Chat</th><th>Type</th>'
        "<th>Text</th><th>Status</th><th>Provider</th></tr></thead><tbody>{rows}</tbody>"
        "</table>{empty}</section>",
        rows=rows,
        empty=empty,
    )


async def memory_text(request: Request, record: SessionRecord) -> str:
    runtime: SessionRuntime | None = request.app.state.runtime
    if runtime is not None:
        bridge = runtime.bridge(record.session_id)
        if bridge is None:
            return "no browser running"
        pss = await asyncio.to_thread(bridge.browser.memory_bytes)
        return f"{pss / MB:.0f} MB (PSS of its Chromium processes)"
    store: Store = request.app.state.store
    lease = await store.lease(record.session_id)
    if lease is not None and lease.expires_at > time.time():
        return f"measured on its worker {lease.node_id} (its /metrics: wa_session_memory_bytes)"
    return "no worker runs it"


def memory_part(text: str) -> Html:
    return fmt(
        '<section class="card" data-key="memory"><h2>Browser memory</h2><p>{text}</p></section>',
        text=text,
    )


class _Parts:
    """The page's parts, each re-read no more often than it is worth."""

    def __init__(self, request: Request, session_id: str) -> None:
        self.request = request
        self.session_id = session_id
        self.store: Store = request.app.state.store
        self._messages: tuple[float, list[MessageRecord]] = (0.0, [])
        self._memory: tuple[float, str] = (0.0, "")

    async def render(self) -> dict[str, Any]:
        record = await self.store.get_session(self.session_id)
        if record is None:
            return fragments({"summary": _gone(self.session_id)})
        now = time.monotonic()
        if now - self._messages[0] >= MESSAGES_EVERY:
            self._messages = (now, await self.store.recent_messages(self.session_id, RECENT))
        if now - self._memory[0] >= MEMORY_EVERY:
            self._memory = (now, await memory_text(self.request, record))
        messages = self._messages[1]
        last = next((m.provider for m in messages if m.direction == "out" and m.provider), None)
        parts = {
            "actions": actions_part(self.request, record),
            "summary": summary_part(record),
            "qr": qr_part(record),
            "pairing": pairing_part(self.request, record),
            "provider": provider_part(self.request, record, last),
            "messages": messages_part(messages),
            "send": send_part(self.request, record),
            "memory": memory_part(self._memory[1]),
        }
        return fragments(parts)


def _gone(session_id: str) -> Html:
    return fmt(
        '<section class="card" data-key="summary"><h2>Deleted</h2>'
        "<p>The session {sid} no longer exists.</p></section>",
        sid=session_id,
    )


async def session_page(request: Request) -> Response:
    session_id = session_id_of(request)
    await _record(request, session_id)
    parts = await _Parts(request, session_id).render()
    body = fmt(
        '<div data-stream="/dashboard/stream/sessions/{sid}">'
        '<div class="head"><h1><a href="/dashboard/sessions">Sessions</a> / {sid}</h1>'
        '<span class="live" data-live>live</span>{actions}</div>'
        '<div id="flash" class="flash" hidden></div><div class="grid">{summary}'
        '<section class="card"><h2>Link a phone</h2>{qr}{pairing}</section>'
        "{provider}{memory}"
        '<section class="card wide"><h2>Send a text</h2>{send}</section>'
        "{messages}</div></div>",
        sid=session_id,
        **{key: part["html"] for key, part in parts.items()},
    )
    return page(request, session_id, body, active="/sessions")


async def session_stream(request: Request) -> Response:
    session_id = session_id_of(request)
    await _record(request, session_id)
    return stream(request, _Parts(request, session_id).render, "fragment")


async def qr_image(request: Request) -> Response:
    record = await _record(request, session_id_of(request))
    if record.status != "qr_required" or not record.qr:
        raise Refused(404, "no_qr", "No QR", "The session shows no QR at the moment.")
    return Response(qr_png(record.qr), media_type="image/png")


async def pairing_code(request: Request) -> Response:
    session_id = session_id_of(request)
    phone = normalize_phone((await form_of(request)).get("phone", ""))
    if phone is None:
        raise Refused(
            422,
            "validation_failed",
            "Bad phone number",
            "Give an international number: digits, optional +.",
        )
    code = await manager_of(request).pairing_code(session_id, phone)
    if wants_json(request):
        return JSONResponse({"code": code})
    body = fmt(
        '<section class="card"><h1>Pairing code</h1><p class="code">{code}</p>'
        "<p>On the phone: Linked devices, Link a device, Link with phone number instead.</p>"
        '<p><a href="/dashboard/sessions/{sid}">Back to {sid}</a></p></section>',
        code=code,
        sid=session_id,
    )
    return page(request, "Pairing code", body, active="/sessions")


async def send_text(request: Request) -> Response:
    """Queue a text through the same path as `POST /api/sessions/{id}/messages`."""
    session_id = session_id_of(request)
    form = await form_of(request)
    outgoing = parse_send_request(
        {"to": form.get("to", ""), "type": "text", "text": form.get("text", "")}, None
    )
    messenger: Messenger = require_browsers(request.app.state.messenger)
    record, _ = await messenger.accept(session_id, outgoing)
    if wants_json(request):
        return JSONResponse({"queued": f"queued as {record.id}", "id": record.id})
    return RedirectResponse(f"/dashboard/sessions/{session_id}", status_code=303)


PAGE = Page(
    nav=None,
    routes=[
        view("/sessions/{session_id}", session_page),
        view("/stream/sessions/{session_id}", session_stream),
        view("/sessions/{session_id}/qr.png", qr_image),
        view("/sessions/{session_id}/pairing-code", pairing_code, methods=["POST"]),
        view("/sessions/{session_id}/messages", send_text, methods=["POST"]),
    ],
)
