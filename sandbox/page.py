"""What the browser loads: the page, its `WPP` script, and the page's network under /net."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from sandbox.errors import Invalid
from sandbox.network import Network
from sandbox.payloads import read_json
from sandbox.stream import MAX_STREAM_SECONDS, event_stream

STATIC_DIR = Path(__file__).parent / "static"
# Persistent profiles would otherwise keep a stale script across sandbox upgrades.
NO_CACHE = {"Cache-Control": "no-cache"}


class PageSite:
    """The web.whatsapp.com stand-in: `GET /`, `/static/wpp.js` and the `/net/*` calls."""

    def __init__(self, network: Network, stream_lifetime: float = MAX_STREAM_SECONDS) -> None:
        self.network = network
        self.stream_lifetime = stream_lifetime
        self.index_html = (STATIC_DIR / "index.html").read_bytes()
        self.wpp_js = (STATIC_DIR / "wpp.js").read_bytes()

    def routes(self) -> list[BaseRoute]:
        """The page's routes."""
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/static/wpp.js", self.script, methods=["GET"]),
            Route("/favicon.ico", self.favicon, methods=["GET"]),
            Route("/net/hello", self.hello, methods=["POST"]),
            Route("/net/qr", self.qr, methods=["POST"]),
            Route("/net/qr/idle", self.qr_idle, methods=["POST"]),
            Route("/net/pairing", self.pairing, methods=["POST"]),
            Route("/net/send", self.send, methods=["POST"]),
            Route("/net/message", self.message, methods=["POST"]),
            Route("/net/logout", self.logout, methods=["POST"]),
            Route("/net/media", self.media, methods=["GET"]),
            Route("/net/contact", self.contact, methods=["POST"]),
            Route("/net/blocklist", self.blocklist, methods=["POST"]),
            Route("/net/group", self.group, methods=["POST"]),
            Route("/net/chat", self.chat, methods=["POST"]),
            Route("/net/presence", self.presence, methods=["POST"]),
            Route("/net/react", self.react, methods=["POST"]),
            Route("/net/edit", self.edit, methods=["POST"]),
            Route("/net/revoke", self.revoke, methods=["POST"]),
            Route("/net/call/reject", self.reject_call, methods=["POST"]),
            Route("/net/events", self.events, methods=["GET"]),
        ]

    async def index(self, request: Request) -> Response:
        """The page itself."""
        return Response(self.index_html, media_type="text/html", headers=NO_CACHE)

    async def script(self, request: Request) -> Response:
        """The `window.WPP` implementation."""
        return Response(self.wpp_js, media_type="text/javascript", headers=NO_CACHE)

    async def favicon(self, request: Request) -> Response:
        """Nothing, without a 404 in the browser console."""
        return Response(status_code=204)

    async def hello(self, request: Request) -> Response:
        """`{device_id?, token?, keys?}` -> status, device id, phone, config, event seq."""
        body = await read_json(request)
        answer = self.network.hello(body.get("device_id"), body.get("token"), body.get("keys"))
        return JSONResponse(answer)

    async def qr(self, request: Request) -> Response:
        """`{device_id, keys?}` -> a fresh QR ref."""
        body = await read_json(request)
        return JSONResponse(self.network.issue_ref(body.get("device_id"), body.get("keys")))

    async def qr_idle(self, request: Request) -> Response:
        """`{device_id}`: the page stopped rotating; its last ref dies."""
        body = await read_json(request)
        self.network.idle_ref(body.get("device_id"))
        return JSONResponse({"ok": True})

    async def pairing(self, request: Request) -> Response:
        """`{device_id, phone}` -> `{code}`."""
        body = await read_json(request)
        code = self.network.request_pairing_code(body.get("device_id"), body.get("phone"))
        return JSONResponse({"code": code})

    async def send(self, request: Request) -> Response:
        """`{device_id, token, to, type, message_id?, quoted?, ...}` ->
        `{id, message_id, t, ack, result}`; waits while the device is offline or stalled."""
        body = await read_json(request)
        record = await self.network.send(body.get("device_id"), body.get("token"), body)
        return JSONResponse(
            {
                "id": record.id,
                "message_id": record.message_id,
                "t": record.timestamp,
                "ack": record.ack,
                "result": record.result,
            }
        )

    async def message(self, request: Request) -> Response:
        """`{device_id, token, id}` -> a message this device sent or received (the page's
        "local database" outlives a reload here, as WhatsApp's does)."""
        body = await read_json(request)
        found = self.network.lookup(body.get("device_id"), body.get("token"), body.get("id"))
        return JSONResponse(
            {
                "key": found.key,
                "remote": found.remote,
                "sender": found.sender,
                "from_me": found.from_me,
            }
        )

    async def logout(self, request: Request) -> Response:
        """`{device_id, token}`: the page unlinks itself."""
        body = await read_json(request)
        seq = self.network.page_logout(body.get("device_id"), body.get("token"))
        return JSONResponse({"ok": True, "event_seq": seq})

    async def media(self, request: Request) -> Response:
        """`?device=&token=&id=` -> the media bytes."""
        q = request.query_params
        found = self.network.media(q.get("device"), q.get("token"), q.get("id"))
        return Response(found.data, media_type=found.mimetype)

    async def contact(self, request: Request) -> Response:
        """`{device_id, token, id}` -> `{exists, wid?, lid?, picture?, about?}`."""
        body = await read_json(request)
        device, token = body.get("device_id"), body.get("token")
        info = await self.network.contact_info(device, token, body.get("id"))
        return JSONResponse(info)

    async def blocklist(self, request: Request) -> Response:
        """`{device_id, token, id?, block?}` -> `{blocked: [ids]}`: with an id, block it
        (`block: true`) or unblock it first; without one, only the list."""
        body = await read_json(request)
        device, token = body.get("device_id"), body.get("token")
        if body.get("id") is None:
            return JSONResponse({"blocked": self.network.blocklist(device, token)})
        block = body.get("block")
        if not isinstance(block, bool):
            raise Invalid("validation_error", "block must be true or false", field="block")
        listed = await self.network.set_blocked(device, token, body.get("id"), block)
        return JSONResponse({"blocked": listed})

    async def group(self, request: Request) -> Response:
        """`{device_id, token, op, ...args}` -> `{value}`: one of the page's WPP.group
        operations, for the device's account."""
        body = await read_json(request)
        device, token = body.pop("device_id", None), body.pop("token", None)
        op = body.pop("op", None)
        return JSONResponse({"value": await self.network.group_op(device, token, op, body)})

    async def chat(self, request: Request) -> Response:
        """`{device_id, token, chat, action, ids?}` -> `{ok}`: read receipts (`read` with
        the bare ids read), archive, unarchive, delete, or the chat state."""
        body = await read_json(request)
        answer = await self.network.chat_action(
            body.get("device_id"),
            body.get("token"),
            body.get("chat"),
            body.get("action"),
            body.get("ids"),
        )
        return JSONResponse(answer)

    async def presence(self, request: Request) -> Response:
        """`{device_id, token, id}` -> `{id}`: follow that user's presence."""
        body = await read_json(request)
        wid = await self.network.subscribe_presence(
            body.get("device_id"), body.get("token"), body.get("id")
        )
        return JSONResponse({"id": wid})

    async def react(self, request: Request) -> Response:
        """`{device_id, token, id, reaction}`: react to a message ('' takes it back)."""
        body = await read_json(request)
        self.network.react(
            body.get("device_id"), body.get("token"), body.get("id"), body.get("reaction")
        )
        return JSONResponse({"ok": True})

    async def edit(self, request: Request) -> Response:
        """`{device_id, token, id, text}` -> `{edit_id}`: edit a text this device sent."""
        body = await read_json(request)
        edit_id = self.network.edit(
            body.get("device_id"), body.get("token"), body.get("id"), body.get("text")
        )
        return JSONResponse({"edit_id": edit_id})

    async def revoke(self, request: Request) -> Response:
        """`{device_id, token, id}`: delete a message this device sent, for everyone."""
        body = await read_json(request)
        self.network.revoke(body.get("device_id"), body.get("token"), body.get("id"))
        return JSONResponse({"ok": True})

    async def reject_call(self, request: Request) -> Response:
        """`{device_id, token, id}` -> `{id, state}`: decline a call ringing on the phone."""
        body = await read_json(request)
        device, token = body.get("device_id"), body.get("token")
        call = await self.network.reject_call(device, token, body.get("id"))
        return JSONResponse({"id": call.id, "state": call.state})

    async def events(self, request: Request) -> Response:
        """`?device=&since=` -> the device's events as Server-Sent Events."""
        device = self.network.device(request.query_params.get("device"))
        since = _int(request.query_params.get("since"), "since")
        # EventSource resends the last id it saw when it reconnects by itself.
        since = max(since, _int(request.headers.get("last-event-id"), "Last-Event-ID"))
        return StreamingResponse(
            event_stream(self.network, device, since, max_lifetime=self.stream_lifetime),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def _int(value: str | None, field: str) -> int:
    if value is None or value == "":
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        raise Invalid("validation_error", f"{field} must be an integer", field=field) from None
