"""Inbound HMAC auth (docs/api.md, Signing) against a live server on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.app import create_app
from service.settings import Settings
from service.signing import sign_request, verify_request
from tests.conftest import API_SECRET
from tests.support.server import serve_app
from tests.support.signing import SidecarAuth


def signed_headers(
    secret: str, method: str, path: str, body: bytes = b"", ts: int | None = None
) -> dict[str, str]:
    timestamp = str(int(time.time()) if ts is None else ts)
    return {
        "X-Timestamp": timestamp,
        "X-HMAC-Signature": sign_request(secret, timestamp, method, path, body),
        "Content-Type": "application/json",
    }


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


def test_signed_request_succeeds(api: httpx.Client) -> None:
    response = api.get("/api/sessions")
    assert response.status_code == 200
    assert response.json() == {"data": []}


def test_signed_post_creates(api: httpx.Client) -> None:
    response = api.post("/api/sessions", json={"workspace_id": "w1", "start": False})
    assert response.status_code == 201, response.text


def test_wrong_secret(raw: httpx.Client) -> None:
    headers = signed_headers("not-the-secret", "GET", "/api/sessions")
    response = raw.get("/api/sessions", headers=headers)
    assert response.status_code == 401
    assert error_code(response) == "invalid_signature"


def test_tampered_body(raw: httpx.Client) -> None:
    body = b'{"workspace_id":"w1"}'
    headers = signed_headers(API_SECRET, "POST", "/api/sessions", body)
    response = raw.post("/api/sessions", content=b'{"workspace_id":"w2"}', headers=headers)
    assert response.status_code == 401
    assert error_code(response) == "invalid_signature"
    listing = raw.get("/api/sessions", headers=signed_headers(API_SECRET, "GET", "/api/sessions"))
    assert listing.json() == {"data": []}


def test_tampered_path_and_query(raw: httpx.Client) -> None:
    headers = signed_headers(API_SECRET, "GET", "/api/sessions")
    response = raw.get("/api/sessions/other", headers=headers)
    assert response.status_code == 401
    assert error_code(response) == "invalid_signature"
    # The query string is part of what is signed.
    response = raw.get("/api/sessions?workspace_id=w1", headers=headers)
    assert response.status_code == 401
    headers = signed_headers(API_SECRET, "GET", "/api/sessions?workspace_id=w1")
    assert raw.get("/api/sessions?workspace_id=w1", headers=headers).status_code == 200


def test_tampered_method(raw: httpx.Client) -> None:
    headers = signed_headers(API_SECRET, "GET", "/api/sessions/x")
    response = raw.delete("/api/sessions/x", headers=headers)
    assert response.status_code == 401
    assert error_code(response) == "invalid_signature"


@pytest.mark.parametrize("offset", [-301, 301, -100_000])
def test_stale_and_future_timestamps(raw: httpx.Client, offset: int) -> None:
    headers = signed_headers(API_SECRET, "GET", "/api/sessions", ts=int(time.time()) + offset)
    response = raw.get("/api/sessions", headers=headers)
    assert response.status_code == 401
    assert error_code(response) == "stale_timestamp"


def test_timestamp_inside_window_is_accepted(raw: httpx.Client) -> None:
    headers = signed_headers(API_SECRET, "GET", "/api/sessions", ts=int(time.time()) - 250)
    assert raw.get("/api/sessions", headers=headers).status_code == 200


def test_replayed_state_changing_request(raw: httpx.Client) -> None:
    body = json.dumps({"workspace_id": "w1", "session_id": "s1", "start": False}).encode()
    headers = signed_headers(API_SECRET, "POST", "/api/sessions", body)
    first = raw.post("/api/sessions", content=body, headers=headers)
    assert first.status_code == 201
    again = raw.post("/api/sessions", content=body, headers=headers)
    assert again.status_code == 401
    assert error_code(again) == "replayed_request"


def test_replayed_read_is_allowed(raw: httpx.Client) -> None:
    headers = signed_headers(API_SECRET, "GET", "/api/sessions")
    assert raw.get("/api/sessions", headers=headers).status_code == 200
    assert raw.get("/api/sessions", headers=headers).status_code == 200


@pytest.mark.parametrize("missing", ["X-Timestamp", "X-HMAC-Signature", "both"])
def test_missing_headers(raw: httpx.Client, missing: str) -> None:
    headers = signed_headers(API_SECRET, "GET", "/api/sessions")
    for name in ("X-Timestamp", "X-HMAC-Signature"):
        if missing in (name, "both"):
            del headers[name]
    response = raw.get("/api/sessions", headers=headers)
    assert response.status_code == 401
    assert error_code(response) == "invalid_signature"


@pytest.mark.parametrize("timestamp", ["abc", "1.5", "-5", "99999999999999999999"])
def test_garbage_timestamp(raw: httpx.Client, timestamp: str) -> None:
    headers = signed_headers(API_SECRET, "GET", "/api/sessions")
    headers["X-Timestamp"] = timestamp
    response = raw.get("/api/sessions", headers=headers)
    assert response.status_code == 401
    assert error_code(response) == "invalid_signature"


def test_uppercase_hex_signature_is_accepted(raw: httpx.Client) -> None:
    headers = signed_headers(API_SECRET, "GET", "/api/sessions")
    headers["X-HMAC-Signature"] = headers["X-HMAC-Signature"].upper()
    assert raw.get("/api/sessions", headers=headers).status_code == 200


@pytest.mark.parametrize("path", ["/health", "/ready", "/openapi.json"])
def test_operational_endpoints_are_unsigned(raw: httpx.Client, path: str) -> None:
    assert raw.get(path).status_code == 200


def test_rotation_accepts_any_configured_secret(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(SIDECAR_API_SECRET="new-secret-aaaa, old-secret-bbbb")
    with serve_app(create_app(settings, with_browsers=False)) as base:
        for secret, expected in (
            ("new-secret-aaaa", 200),
            ("old-secret-bbbb", 200),
            ("retired-secret-cccc", 401),
        ):
            with httpx.Client(base_url=base, auth=SidecarAuth(secret)) as client:
                assert client.get("/api/sessions").status_code == expected, secret


def test_unknown_api_path_still_requires_a_signature(raw: httpx.Client) -> None:
    response = raw.get("/api/nothing-here")
    assert response.status_code == 401


@given(body=st.binary(max_size=512), flip=st.integers(min_value=0, max_value=511))
def test_any_byte_of_the_body_is_covered(body: bytes, flip: int) -> None:
    signature = sign_request("k", "1700000000", "POST", "/api/x", body)
    assert verify_request(["k"], signature, "1700000000", "POST", "/api/x", body)
    if body:
        i = flip % len(body)
        tampered = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
        assert not verify_request(["k"], signature, "1700000000", "POST", "/api/x", tampered)


def test_signature_matches_a_known_vector() -> None:
    # From: printf '1700000000\nPOST\n/api/sessions\n{}' | openssl dgst -sha256 -hmac secret
    expected = "b1ed0f18d4d0b17cc1da26caa6ff9a2965e92e2dca1c2455208b8da023921d49"
    assert sign_request("secret", "1700000000", "post", "/api/sessions", b"{}") == expected


async def test_the_store_remembers_signatures_for_the_window(tmp_path: Path) -> None:
    from service.store import SQLiteStore

    store = SQLiteStore(tmp_path / "s.sqlite3")
    await store.open()
    assert await store.first_sighting("a" * 64, now=100, ttl=10)
    assert not await store.first_sighting("a" * 64, now=105, ttl=10)
    assert await store.first_sighting("a" * 64, now=111, ttl=10)  # expired: new again
    await store.close()
    # Another process (or this one after a restart) sees the same record.
    again = SQLiteStore(tmp_path / "s.sqlite3")
    await again.open()
    assert not await again.first_sighting("a" * 64, now=115, ttl=10)
    for i in range(200):
        await again.first_sighting(f"{i:064x}", now=200, ttl=1)
    # Expired rows are swept as new ones come in.
    await again.first_sighting("b" * 64, now=500, ttl=1)
    await again.first_sighting("c" * 64, now=500, ttl=1)
    await again.close()


def test_a_signed_write_replayed_after_a_restart_is_refused(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    body = json.dumps({"workspace_id": "w1", "session_id": "once", "start": False}).encode()
    headers = signed_headers(API_SECRET, "POST", "/api/sessions", body)
    with serve_app(create_app(settings, with_browsers=False)) as base:
        first = httpx.post(f"{base}/api/sessions", content=body, headers=headers)
        assert first.status_code == 201, first.text
    # A new process on the same store: the captured request is still a replay.
    with serve_app(create_app(settings, with_browsers=False)) as base:
        replay = httpx.post(f"{base}/api/sessions", content=body, headers=headers)
        assert replay.status_code == 401 and error_code(replay) == "replayed_request"


def test_an_unsigned_body_is_refused_before_it_is_read(raw: httpx.Client) -> None:
    import socket
    from urllib.parse import urlsplit

    # Headers that cannot verify, then a promise of 16 MiB that never comes: the answer must
    # not wait for the body.
    url = urlsplit(str(raw.base_url))
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(
            b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 16000000\r\n\r\n{"
        )
        # The server closes the connection after its answer: read up to that.
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"invalid_signature" in answer


def test_a_body_that_trickles_in_is_cut_off(make_settings: Callable[..., Settings]) -> None:
    import socket

    from service.auth import RequestGuard

    settings = make_settings()
    app = create_app(settings, with_browsers=False)
    # The same guard with a short body deadline (the default is 30 s).
    for middleware in app.user_middleware:
        if middleware.cls is RequestGuard:
            middleware.kwargs["body_timeout"] = 1.0
    body = b'{"workspace_id": "w1", "start": false}'
    headers = signed_headers(API_SECRET, "POST", "/api/sessions", body)
    with serve_app(app) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            conn.sendall(
                f"POST /api/sessions HTTP/1.1\r\nHost: x\r\n{head}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:5]
            )
            # The rest never comes; the server answers and closes (its head and body may
            # arrive in separate segments: read up to the close).
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer


@pytest.mark.parametrize(
    ("method", "path", "body", "signature"),
    [
        (
            "POST",
            "/api/sessions",
            b'{"workspace_id":"acme"}',
            "4b21af60a3ba89946f68b3bc591f67df09f9efa2e9929d5af28c169c4d06e8c7",
        ),
        (
            "GET",
            "/api/sessions?workspace_id=acme",
            b"",
            "80a145ecdd5f4cef7214bebd3afe5ad54000ae9af0f67b5d9e948e7b731613cf",
        ),
    ],
)
def test_the_worked_examples_in_the_docs_are_what_the_service_computes(
    method: str, path: str, body: bytes, signature: str
) -> None:
    docs = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    assert signature in docs and path in docs and body.decode() in docs
    assert sign_request("s3cret", "1795315066", method, path, body) == signature
    assert verify_request(["other", "s3cret"], signature, "1795315066", method, path, body)
