"""Broadcast to Reverb / Pusher (docs/webhooks.md): signed as the Pusher HTTP API requires."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pusher.http
import pusher.pusher_client
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.server import serve_app
from tests.support.sidecar import Sidecar
from webhooks.broadcast import MAX_REQUEST_BYTES, Broadcaster, PusherConfig, sign_query

APP_ID, KEY, SECRET = "4242", "app-key", "app-secret-for-tests"


def config(port: int = 8080) -> PusherConfig:
    return PusherConfig(APP_ID, KEY, SECRET, "127.0.0.1", port, "http")


def test_auth_signature_equals_the_official_pusher_package() -> None:
    client = pusher.pusher_client.PusherClient(
        app_id=APP_ID, key=KEY, secret=SECRET, host="127.0.0.1", port=8080, ssl=False
    )
    data = {"session_id": "s1", "qr": "2@abc,def,ghi,jkl", "expires_at": "2026-11-22T01:00:00Z"}
    params = {
        "name": "qr-code-generated",
        "channels": ["private-workspace.acme"],
        "data": json.dumps(data),
    }
    with mock.patch("pusher.http.time.time", return_value=1_790_000_000):
        reference = pusher.http.Request(client, "POST", f"/apps/{APP_ID}/events", params)
    ours = sign_query(config(), f"/apps/{APP_ID}/events", reference.body, 1_790_000_000)
    assert ours["auth_signature"] == reference.query_params["auth_signature"]
    assert ours["body_md5"] == reference.query_params["body_md5"]
    assert ours["auth_key"] == KEY and ours["auth_version"] == "1.0"


class ReverbLike:
    """Verifies each request as Laravel Reverb's HTTP API does, and records what passed."""

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.accepted: list[dict[str, Any]] = []
        self.rejected = 0
        self.sizes: list[int] = []

    def app(self) -> Starlette:
        async def events(request: Request) -> Response:
            body = await request.body()
            self.sizes.append(len(body))
            if request.path_params["app_id"] != APP_ID or len(body) > MAX_REQUEST_BYTES:
                self.rejected += 1
                return JSONResponse({"error": "rejected"}, status_code=413)
            query = dict(request.query_params)
            given = query.pop("auth_signature", "")
            query.pop("body_md5", None)
            if body:
                # Recomputed from the body, as Reverb does (MD5 is what the protocol names).
                query["body_md5"] = hashlib.md5(body, usedforsecurity=False).hexdigest()
            to_sign = "\n".join(
                ["POST", request.url.path, "&".join(f"{k}={query[k]}" for k in sorted(query))]
            )
            expected = hmac.new(self.secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
            if query.get("auth_key") != KEY or not hmac.compare_digest(expected, given):
                self.rejected += 1
                return JSONResponse({"error": "Authentication signature invalid."}, status_code=401)
            payload = json.loads(body)
            payload["data"] = json.loads(payload["data"])
            self.accepted.append(payload)
            return JSONResponse({})

        return Starlette(routes=[Route("/apps/{app_id}/events", events, methods=["POST"])])


@pytest.fixture
def reverb() -> Iterator[tuple[ReverbLike, int]]:
    server = ReverbLike()
    with serve_app(server.app()) as base:
        yield server, int(base.rsplit(":", 1)[1])


async def test_a_reverb_style_verifier_accepts_ours_and_rejects_a_wrong_secret(
    reverb: tuple[ReverbLike, int],
) -> None:
    server, port = reverb
    async with httpx.AsyncClient() as client:
        good = Broadcaster(config(port), client)
        assert await good.publish(
            "private-workspace.acme",
            "session-status-changed",
            {"session_id": "s1", "status": "connected"},
        )
        wrong = Broadcaster(
            PusherConfig(APP_ID, KEY, "not-the-secret", "127.0.0.1", port, "http"),
            client,
            attempts=1,
        )
        assert not await wrong.publish("private-workspace.acme", "x", {})
        too_big = await good.publish(
            "private-workspace.acme", "x", {"blob": "x" * MAX_REQUEST_BYTES}
        )
        assert not too_big
    assert server.rejected == 1  # the oversized one never left
    assert [a["name"] for a in server.accepted] == ["session-status-changed"]
    assert server.accepted[0]["channels"] == ["private-workspace.acme"]


@pytest.mark.browser
def test_qr_and_status_reach_reverb_from_a_live_session(
    tmp_path: Path, reverb: tuple[ReverbLike, int]
) -> None:
    server, port = reverb
    with sandbox_process() as phone:
        car = _sidecar(tmp_path, phone, port)
        try:
            car.api.post("/api/sessions", json={"workspace_id": "acme", "session_id": "b1"})
            car.wait_status("b1", "qr_required")
            qr = car.api.get("/api/sessions/b1/qr").json()["qr"]
            phone.scan(qr, "5511999990001")
            car.wait_status("b1", "connected")
            eventually(
                lambda: any(a["data"].get("status") == "connected" for a in server.accepted),
                30,
                "the connected broadcast",
            )
        finally:
            car.close()
    assert server.rejected == 0
    assert all(size < MAX_REQUEST_BYTES for size in server.sizes)
    assert {tuple(a["channels"]) for a in server.accepted} == {("private-workspace.acme",)}
    qr_events = [a["data"] for a in server.accepted if a["name"] == "qr-code-generated"]
    assert qr_events and qr_events[0]["qr"] == qr and qr_events[0]["session_id"] == "b1"
    assert set(qr_events[0]) == {"session_id", "qr", "expires_at", "image_url"}
    assert qr_events[0]["image_url"].startswith(f"{car.base}/qr/")  # a link, never a PNG
    statuses = [
        a["data"]["status"] for a in server.accepted if a["name"] == "session-status-changed"
    ]
    assert statuses[0] == "initializing" and statuses[-1] == "connected"


def _sidecar(tmp_path: Path, phone: Phone, port: int) -> Sidecar:
    return Sidecar(
        tmp_path / "storage",
        WA_WEB_URL=phone.base + "/",
        BROADCAST_DRIVER="reverb",
        PUSHER_APP_ID=APP_ID,
        PUSHER_APP_KEY=KEY,
        PUSHER_APP_SECRET=SECRET,
        PUSHER_HOST="127.0.0.1",
        PUSHER_PORT=str(port),
        PUSHER_SCHEME="http",
    ).start()
