"""The session endpoints on the store (docs/api.md): persistence, validation, errors."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from starlette.routing import Route

from service import apidocs
from service.app import create_app
from service.models.events import EVENTS
from service.settings import Settings
from service.store import open_store
from tests.conftest import API_SECRET
from tests.support.server import serve_app
from tests.support.signing import SidecarAuth


def error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    result: dict[str, object] = body["error"]
    return result


def test_create_get_list_patch_delete(api: httpx.Client, settings: Settings) -> None:
    created = api.post(
        "/api/sessions",
        json={"workspace_id": "acme", "session_id": "sales-1", "start": False},
    )
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["session_id"] == "sales-1"
    assert record["workspace_id"] == "acme"
    assert record["provider_mode"] == "auto"
    assert record["status"] == "stopped"
    assert record["desired_state"] == "stopped"
    assert record["created_at"].endswith("Z")
    for field in ("phone_number", "last_error", "qr_expires_at", "updated_at"):
        assert field in record
    directory = settings.sessions_dir / "acme" / "sales-1"
    assert directory.is_dir()
    assert directory.stat().st_mode & 0o777 == 0o700

    assert api.get("/api/sessions/sales-1").json() == record
    api.post("/api/sessions", json={"workspace_id": "other", "start": False})
    listed = api.get("/api/sessions", params={"workspace_id": "acme"}).json()["data"]
    assert [s["session_id"] for s in listed] == ["sales-1"]
    assert len(api.get("/api/sessions").json()["data"]) == 2
    assert api.get("/api/sessions", params={"status": "connected"}).json()["data"] == []

    patched = api.patch(
        "/api/sessions/sales-1",
        json={"provider_mode": "webjs", "webhook_url": "https://app.test/hooks/wa"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["provider_mode"] == "webjs"
    assert patched.json()["webhook_url"] == "https://app.test/hooks/wa"
    assert (
        api.patch("/api/sessions/sales-1", json={"webhook_url": None}).json()["webhook_url"] is None
    )

    assert api.delete("/api/sessions/sales-1").status_code == 204
    assert api.get("/api/sessions/sales-1").status_code == 404
    assert not directory.exists()


def test_generated_session_id_is_a_valid_id(api: httpx.Client) -> None:
    record = api.post("/api/sessions", json={"workspace_id": "w", "start": False}).json()
    assert record["session_id"].startswith("ses_")
    assert api.get(f"/api/sessions/{record['session_id']}").status_code == 200


def test_start_and_stop_set_desired_state(api: httpx.Client) -> None:
    api.post("/api/sessions", json={"workspace_id": "w", "session_id": "s", "start": False})
    started = api.post("/api/sessions/s/start")
    assert started.status_code == 202
    assert started.json()["desired_state"] == "running"
    assert api.get("/api/sessions/s").json()["desired_state"] == "running"
    stopped = api.post("/api/sessions/s/stop")
    assert stopped.status_code == 202
    assert stopped.json()["desired_state"] == "stopped"


def test_create_defaults_to_running(api: httpx.Client) -> None:
    record = api.post("/api/sessions", json={"workspace_id": "w"}).json()
    assert record["desired_state"] == "running"


def test_duplicate_session_id_conflicts(api: httpx.Client) -> None:
    body = {"workspace_id": "w", "session_id": "dup", "start": False}
    assert api.post("/api/sessions", json=body).status_code == 201
    again = api.post("/api/sessions", json={**body, "workspace_id": "w2"})
    assert again.status_code == 409
    assert error(again)["code"] == "session_exists"


BAD_IDS = ["../x", "a/b", "x" * 65, "", "..", "a..b", ".hidden", "-x", "a b", "ü", 5, ["a"]]


# A null session_id means "generate one", so null is only bad for workspace_id.
@pytest.mark.parametrize(
    ("field", "bad"),
    [("workspace_id", None)] + [(f, b) for f in ("workspace_id", "session_id") for b in BAD_IDS],
)
def test_bad_ids_are_rejected(
    api: httpx.Client, settings: Settings, field: str, bad: object
) -> None:
    body: dict[str, object] = {"workspace_id": "w", "session_id": "s", "start": False, field: bad}
    response = api.post("/api/sessions", json=body)
    assert response.status_code == 422, response.text
    assert error(response)["details"] == {"field": field}
    assert api.get("/api/sessions").json()["data"] == []
    assert not any(settings.sessions_dir.rglob("*"))


def test_id_limit_is_64(api: httpx.Client) -> None:
    assert (
        api.post("/api/sessions", json={"workspace_id": "w" * 64, "start": False}).status_code
        == 201
    )


# `..` itself is collapsed by clients, so it arrives percent-encoded when it arrives at all.
@pytest.mark.parametrize("path_id", ["%2E%2E", "a..b", "x" * 65])
def test_bad_id_in_path(api: httpx.Client, path_id: str) -> None:
    response = api.get(f"/api/sessions/{path_id}")
    assert response.status_code == 422
    assert error(response)["details"] == {"field": "session_id"}


def test_unknown_session_is_404(api: httpx.Client) -> None:
    for method, path in (
        ("GET", "/api/sessions/nope"),
        ("PATCH", "/api/sessions/nope"),
        ("DELETE", "/api/sessions/nope"),
        ("POST", "/api/sessions/nope/start"),
        ("POST", "/api/sessions/nope/stop"),
        ("POST", "/api/sessions/nope/restart"),
        ("POST", "/api/sessions/nope/logout"),
    ):
        response = api.request(method, path, json={} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path, response.text)
        assert error(response)["code"] == "session_not_found"


def test_twenty_mib_body_is_413(api: httpx.Client) -> None:
    body = b'{"workspace_id":"w","pad":"' + b"x" * (20 * 1024 * 1024) + b'"}'
    response = api.post("/api/sessions", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert error(response)["code"] == "payload_too_large"


def test_chunked_oversized_body_is_413(api: httpx.Client) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * (1024 * 1024)

    # No Content-Length: the limit must hold while streaming too. Well-formed signature
    # headers get the body read (up to the limit); the signature itself is checked after.
    headers = {"X-Timestamp": str(int(time.time())), "X-HMAC-Signature": "0" * 64}
    with httpx.Client(base_url=str(api.base_url)) as client:
        response = client.post("/api/sessions", content=chunks(), headers=headers)
        assert response.status_code == 413
        # Without them nothing is read at all.
        assert client.post("/api/sessions", content=chunks()).status_code == 401


@pytest.mark.parametrize(
    "body", [b"{", b"not json", b'{"workspace_id": "w",}', b"\xff\xfe", b"", b"   "]
)
def test_malformed_json_is_400(api: httpx.Client, body: bytes) -> None:
    response = api.post("/api/sessions", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert error(response)["code"] == "malformed_json"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], "body"),
        ("text", "body"),
        ({}, "workspace_id"),
        ({"workspace_id": "w", "provider_mode": "carrier-pigeon"}, "provider_mode"),
        ({"workspace_id": "w", "start": "yes"}, "start"),
        ({"workspace_id": "w", "webhook_url": "ftp://x"}, "webhook_url"),
        ({"workspace_id": "w", "webhook_url": "not a url"}, "webhook_url"),
        ({"workspace_id": "w", "webhook_url": 7}, "webhook_url"),
        ({"workspace_id": "w", "surprise": 1}, "surprise"),
        ({"workspace_id": "w", "meta": "x"}, "meta"),
        ({"workspace_id": "w", "meta": {"access_token": "t"}}, "meta.phone_number_id"),
        ({"workspace_id": "w", "meta": {"phone_number_id": "1"}}, "meta.access_token"),
        ({"workspace_id": "w", "provider_mode": "meta"}, "meta"),
    ],
)
def test_validation_names_the_field(api: httpx.Client, body: object, field: str) -> None:
    response = api.post("/api/sessions", json=body)
    assert response.status_code == 422, response.text
    assert error(response)["details"] == {"field": field}


def test_patch_validation(api: httpx.Client) -> None:
    api.post("/api/sessions", json={"workspace_id": "w", "session_id": "s", "start": False})
    for body, field in (
        ({"workspace_id": "x"}, "workspace_id"),
        ({"session_id": "x"}, "session_id"),
        ({"provider_mode": "nope"}, "provider_mode"),
        ({"provider_mode": "meta"}, "meta"),
        ({"status": "connected"}, "status"),
    ):
        response = api.patch("/api/sessions/s", json=body)
        assert response.status_code == 422, (body, response.text)
        assert error(response)["details"] == {"field": field}


def test_meta_secrets_are_sealed_and_never_returned(api: httpx.Client, settings: Settings) -> None:
    token = "EAAG-super-secret-token-123"
    app_secret = "app-secret-xyz-456"
    response = api.post(
        "/api/sessions",
        json={
            "workspace_id": "w",
            "session_id": "m",
            "provider_mode": "meta",
            "start": False,
            "meta": {
                "phone_number_id": "1098765",
                "access_token": token,
                "app_secret": app_secret,
                "verify_token": "vt",
            },
        },
    )
    assert response.status_code == 201, response.text
    for text in (response.text, api.get("/api/sessions/m").text, api.get("/api/sessions").text):
        assert token not in text
        assert app_secret not in text
    assert response.json()["meta"] == {"configured": True, "phone_number_id": "1098765"}
    # Nothing in the database file (or its WAL) holds the plaintext.
    for path in settings.storage_dir.glob("sidecar.sqlite3*"):
        data = path.read_bytes()
        assert token.encode() not in data
        assert app_secret.encode() not in data


def test_a_proxy_is_set_changed_and_cleared_and_its_password_never_shown(
    api: httpx.Client, settings: Settings
) -> None:
    password = "proxy-pa55-word-789"
    created = api.post(
        "/api/sessions",
        json={
            "workspace_id": "w",
            "session_id": "p",
            "start": False,
            "proxy": {"url": "http://10.0.0.5:3128/", "username": "ops", "password": password},
        },
    )
    assert created.status_code == 201, created.text
    # A private host is fine (operators run proxies on their LAN); the URL is normalised.
    assert created.json()["proxy"] == {"url": "http://10.0.0.5:3128", "authenticated": True}
    plain = api.patch("/api/sessions/p", json={"proxy": {"url": "SOCKS5://Proxy.LAN:1080"}})
    assert plain.status_code == 200, plain.text
    assert plain.json()["proxy"] == {"url": "socks5://proxy.lan:1080", "authenticated": False}
    again = api.patch(
        "/api/sessions/p",
        json={"proxy": {"url": "https://[fd00::5]:8443", "username": "ops", "password": password}},
    )
    assert again.json()["proxy"] == {"url": "https://[fd00::5]:8443", "authenticated": True}
    # Other changes leave the proxy as it is.
    kept = api.patch("/api/sessions/p", json={"metadata": {"a": 1}})
    assert kept.json()["proxy"] == again.json()["proxy"]
    for text in (created.text, again.text, api.get("/api/sessions/p").text):
        assert password not in text and "ops" not in text
    # Nothing in the database file (or its WAL) holds the plaintext.
    files = list(settings.storage_dir.glob("sidecar.sqlite3*"))
    assert files
    for path in files:
        assert password.encode() not in path.read_bytes()
    cleared = api.patch("/api/sessions/p", json={"proxy": None})
    assert cleared.status_code == 200 and cleared.json()["proxy"] is None
    assert api.get("/api/sessions/p").json()["proxy"] is None


def test_a_bad_proxy_is_422_and_changes_nothing(api: httpx.Client) -> None:
    body = {"workspace_id": "w", "session_id": "q", "start": False}
    good = {"url": "http://proxy.lan:3128"}
    assert api.post("/api/sessions", json=body | {"proxy": good}).status_code == 201
    for proxy, field, says in (
        ({"url": "ftp://proxy.lan:21"}, "proxy.url", "http://, https:// or socks5://"),
        ({"url": "http://proxy.lan"}, "proxy.url", "needs a host and a port"),
        ({"url": "http://proxy.lan:0"}, "proxy.url", "invalid port"),
        ({"url": "http://proxy.lan:65536"}, "proxy.url", "invalid port"),
        ({"url": "http://proxy.lan:\u0663\u0661\u0662\u0668"}, "proxy.url", "invalid port"),
        ({"url": "http://proxy.lan:3128/path"}, "proxy.url", "without a path"),
        ({"url": "http://proxy.lan:3128?x=1"}, "proxy.url", "without a path"),
        ({"url": "http://u:p@proxy.lan:3128"}, "proxy.url", "proxy.username"),
        ({"url": "http://169.254.169.254:80"}, "proxy.url", "link-local"),
        ({"url": "http://[fe80::1]:3128"}, "proxy.url", "link-local"),
        ({"url": "http://100.100.100.200:80"}, "proxy.url", "metadata"),
        ({"url": "http://metadata.google.internal:80"}, "proxy.url", "metadata"),
        ({"url": "http://0x7f.1:3128"}, "proxy.url", "numeric form"),
        ({"url": "socks5://proxy.lan:1080", "username": "u", "password": "p"},
         "proxy.username", "Chromium does not support SOCKS5 authentication"),
        ({"url": "http://proxy.lan:3128", "password": "p"}, "proxy.password", "username"),
        ({"url": "http://proxy.lan:3128", "username": "a:b"}, "proxy.username", "`:`"),
        ({"url": "http://proxy.lan:3128", "username": "u", "password": "a\r\nb"},
         "proxy.password", "control characters"),
        ({"url": "http://proxy.lan:3128", "token": "x"}, "proxy.token", ""),
    ):  # fmt: skip
        for response in (
            api.post("/api/sessions", json=body | {"session_id": "q2", "proxy": proxy}),
            api.patch("/api/sessions/q", json={"proxy": proxy}),
        ):
            assert response.status_code == 422, (proxy, response.text)
            problem = error(response)
            assert problem["code"] == "validation_failed"
            assert problem["details"] == {"field": field}, (proxy, problem)
            assert says in str(problem["message"]), (proxy, problem)
    assert api.get("/api/sessions/q2").status_code == 404
    assert api.get("/api/sessions/q").json()["proxy"] == {
        "url": "http://proxy.lan:3128",
        "authenticated": False,
    }


def test_meta_needs_an_encryption_key(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(SIDECAR_ENCRYPTION_KEY="")
    with (
        serve_app(create_app(settings, with_browsers=False)) as base,
        httpx.Client(base_url=base, auth=SidecarAuth(API_SECRET)) as client,
    ):
        response = client.post(
            "/api/sessions",
            json={"workspace_id": "w", "meta": {"phone_number_id": "1", "access_token": "t"}},
        )
        assert response.status_code == 422
        assert "SIDECAR_ENCRYPTION_KEY" in str(error(response)["message"])


def test_a_proxy_login_needs_an_encryption_key(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(SIDECAR_ENCRYPTION_KEY="")
    with (
        serve_app(create_app(settings, with_browsers=False)) as base,
        httpx.Client(base_url=base, auth=SidecarAuth(API_SECRET)) as client,
    ):
        body = {"workspace_id": "w", "session_id": "k", "start": False}
        proxy = {"url": "http://proxy.lan:3128", "username": "u", "password": "p"}
        response = client.post("/api/sessions", json=body | {"proxy": proxy})
        assert response.status_code == 422
        assert error(response)["details"] == {"field": "proxy"}
        assert "SIDECAR_ENCRYPTION_KEY" in str(error(response)["message"])
        # Without credentials there is nothing to seal.
        plain = client.post("/api/sessions", json=body | {"proxy": {"url": proxy["url"]}})
        assert plain.status_code == 201, plain.text
        assert plain.json()["proxy"] == {"url": "http://proxy.lan:3128", "authenticated": False}


def test_at_capacity(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(MAX_SESSIONS="2")
    with (
        serve_app(create_app(settings, with_browsers=False)) as base,
        httpx.Client(base_url=base, auth=SidecarAuth(API_SECRET)) as client,
    ):
        for i in range(2):
            body = {"workspace_id": "w", "session_id": f"s{i}"}
            assert client.post("/api/sessions", json=body).status_code == 201
        full = client.post("/api/sessions", json={"workspace_id": "w", "session_id": "s2"})
        assert full.status_code == 503
        assert error(full)["code"] == "at_capacity"
        # A stopped session costs no browser, so it may still be created, but not started.
        parked = client.post(
            "/api/sessions", json={"workspace_id": "w", "session_id": "p", "start": False}
        )
        assert parked.status_code == 201
        assert client.post("/api/sessions/p/start").status_code == 503
        assert len(client.get("/api/sessions").json()["data"]) == 3


def test_wrong_method_is_json_405(api: httpx.Client) -> None:
    response = api.put("/api/sessions")
    assert response.status_code == 405
    assert error(response)["code"] == "method_not_allowed"


def test_openapi_documents_every_route(live: str, settings: Settings) -> None:
    document = httpx.get(f"{live}/openapi.json").json()
    assert document["openapi"].startswith("3.")
    app = create_app(settings)
    # The API viewer is a page beside the document it shows, not an operation in it.
    pages = {route.path for route in apidocs.routes if isinstance(route, Route)}
    assert pages
    for route in app.routes:
        assert isinstance(route, Route)
        if route.path in pages:
            continue
        documented = document["paths"].get(route.path)
        assert documented is not None, f"{route.path} is not in /openapi.json"
        for method in route.methods or ():
            if method != "HEAD":
                assert method.lower() in documented, f"{method} {route.path} is not documented"


_counter = itertools.count()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=12,
)
session_fields = st.sampled_from(
    ["workspace_id", "session_id", "provider_mode", "start", "webhook_url", "meta", "x"]
)


@hyp_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.dictionaries(session_fields, json_values, max_size=6) | json_values)
def test_no_bad_input_yields_500(api: httpx.Client, body: object) -> None:
    raw_body = json.dumps(body).encode()
    for method, path in (("POST", "/api/sessions"), ("PATCH", "/api/sessions/fuzz")):
        # Hypothesis repeats examples ({} above all): a byte-identical write signed in the
        # same second is rightly a replay, so such a one is signed again at another second.
        for _ in range(5):
            auth = SidecarAuth(API_SECRET, clock_offset=-(next(_counter) % 250))
            response = api.request(method, path, content=raw_body, auth=auth)
            if response.status_code != 401 or "replayed_request" not in response.text:
                break
        assert response.status_code in (200, 201, 400, 404, 409, 422, 503), response.text
        assert "Traceback" not in response.text


def test_store_file_is_private(api: httpx.Client, settings: Settings) -> None:
    api.get("/api/sessions")
    db = settings.storage_dir / "sidecar.sqlite3"
    assert db.stat().st_mode & 0o777 == 0o600

    async def journal_mode() -> str:
        store = open_store(str(db))
        await store.open()
        try:
            return str((await store.server_info())["journal_mode"])
        finally:
            await store.close()

    assert asyncio.run(journal_mode()) == "wal"


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # deeper than Python's recursion limit
        b'{"\\ud800": 1}',  # a lone surrogate as a key: the 422 would name it
        b'{"workspace_id": "w", "webhook_url": "http://x.test/\\ud800"}',
        b'{"workspace_id": "w", "start": false, "x": NaN}',
    ],
)
def test_hostile_json_is_a_clean_4xx(api: httpx.Client, body: bytes) -> None:
    response = api.post("/api/sessions", content=body, params={"n": hash(body)})
    assert response.status_code in (400, 422), response.text
    assert "Traceback" not in response.text


def test_a_non_ascii_digit_timestamp_is_invalid_not_a_crash(raw: httpx.Client) -> None:
    # '²' passes str.isdigit() but not int(); latin-1 header bytes make it reachable.
    response = raw.get("/api/sessions", headers={"X-Timestamp": b"\xb2", "X-HMAC-Signature": "00"})
    assert response.status_code == 401
    assert error(response)["code"] == "invalid_signature"


def test_access_log_never_shows_link_tokens() -> None:
    import logging

    from service.links import RedactLinkTokens

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/media/eyJtIjoibXNnXzEifQ.abc.def?x=1", "1.1", 200),
        None,
    )
    RedactLinkTokens().filter(record)
    assert "eyJtIjoi" not in record.getMessage()
    assert "/media/[redacted]" in record.getMessage()


def test_metadata_and_webhook_events_are_kept_replaced_and_cleared(api: httpx.Client) -> None:
    metadata = {"account_id": 42, "plan": {"name": "pro", "seats": [1, 2]}, "note": "Zoë"}
    created = api.post(
        "/api/sessions",
        json={
            "workspace_id": "w",
            "session_id": "md",
            "start": False,
            "metadata": metadata,
            # A name given twice counts once, in the order given.
            "webhook_events": ["message_received", "session_status_changed", "message_received"],
        },
    )
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["metadata"] == metadata
    assert record["webhook_events"] == ["message_received", "session_status_changed"]
    assert api.get("/api/sessions/md").json() == record
    # Another field changes nothing of them; metadata is replaced whole, never merged.
    assert api.patch("/api/sessions/md", json={"provider_mode": "webjs"}).json()["metadata"] == (
        metadata
    )
    patched = api.patch(
        "/api/sessions/md", json={"metadata": {"account_id": 7}, "webhook_events": []}
    ).json()
    assert (patched["metadata"], patched["webhook_events"]) == ({"account_id": 7}, [])
    cleared = api.patch("/api/sessions/md", json={"metadata": None, "webhook_events": None})
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["metadata"], cleared.json()["webhook_events"]) == (None, None)
    plain = api.post("/api/sessions", json={"workspace_id": "w", "start": False}).json()
    assert (plain["metadata"], plain["webhook_events"]) == (None, None)


SECRET = "s3cr3t-value"


def _deep(levels: int) -> dict[str, object]:
    value: dict[str, object] = {"k": SECRET}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("metadata", {"blob": SECRET + "x" * 4096}, "at most 4096 bytes"),
        ("metadata", [SECRET], "must be an object"),
        ("metadata", SECRET, "must be an object"),
        ("metadata", _deep(5), "nested at most 4 levels"),
        ("metadata", {"": SECRET}, "keys must be 1-64 characters"),
        ("metadata", {SECRET * 10: 1}, "keys must be 1-64 characters"),
        ("webhook_events", "message_received", "must be a list"),
        ("webhook_events", [1], "must be a string"),
        ("webhook_events", ["message_received"] * 33, "at most 32 items"),
    ],
)
def test_bad_metadata_and_webhook_events_are_422_and_never_echoed(
    api: httpx.Client, field: str, value: object, message: str
) -> None:
    api.post("/api/sessions", json={"workspace_id": "w", "session_id": "md", "start": False})
    for response in (
        api.post("/api/sessions", json={"workspace_id": "w", "start": False, field: value}),
        api.patch("/api/sessions/md", json={field: value}),
    ):
        assert response.status_code == 422, response.text
        assert str(error(response)["details"]["field"]).split(".")[0] == field
        assert message in str(error(response)["message"])
        assert SECRET not in response.text
    assert api.get("/api/sessions/md").json()["metadata"] is None
    assert len(api.get("/api/sessions").json()["data"]) == 1


def test_an_unknown_event_is_refused_naming_the_allowed_ones(api: httpx.Client) -> None:
    response = api.post(
        "/api/sessions",
        json={"workspace_id": "w", "webhook_events": ["message_received", "message_recieved"]},
    )
    assert response.status_code == 422, response.text
    assert error(response)["details"] == {"field": "webhook_events.1"}
    # Every event of the registry, in its order (session_status_changed first).
    assert error(response)["message"] == ("webhook_events.1: must be one of " + ", ".join(EVENTS))
    assert list(EVENTS)[:2] == ["session_status_changed", "qr_code_generated"]


def test_metadata_numbers_must_be_finite(api: httpx.Client) -> None:
    # Python's JSON parser takes NaN, which no receiver could read back from a webhook.
    response = api.post(
        "/api/sessions",
        content=b'{"workspace_id": "w", "metadata": {"ratio": NaN}}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert error(response)["details"] == {"field": "metadata"}
