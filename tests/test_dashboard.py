"""The dashboard's doors over plain HTTP: sign-in links (forged, expired, used), the cookie,
CSRF on every change, the API endpoint that gives Laravel a link, the CLI that prints one,
and the settings. One sidecar without browsers for the module; the browser test is
tests/test_dashboard_browser.py."""

from __future__ import annotations

import itertools
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest

from service.app import create_app
from service.cli import main
from service.dashboard.auth import DashboardAuth
from service.errors import ConfigError
from service.links import RedactLinkTokens
from service.settings import Settings
from tests.conftest import API_SECRET, base_env
from tests.support.sandbox import eventually
from tests.support.server import ROOT, serve_app
from tests.support.signing import SidecarAuth

SECRET = "dashboard-secret-0123456789abcdef0123"
ENV = {"SIDECAR_DASHBOARD_SECRET": SECRET}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    storage = tmp_path_factory.mktemp("dashboard") / "storage"
    settings = Settings.from_mapping(base_env(storage, **ENV))
    with serve_app(create_app(settings, with_browsers=False)) as url:
        with httpx.Client(base_url=url, auth=SidecarAuth(API_SECRET)) as api:
            for sid, workspace in (("s1", "acme"), ("s2", "beta")):
                body = {"workspace_id": workspace, "session_id": sid, "start": False}
                assert api.post("/api/sessions", json=body).status_code == 201
        yield url


@pytest.fixture
def api(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, auth=SidecarAuth(API_SECRET), timeout=30) as client:
        yield client


@pytest.fixture
def browser(base: str) -> Iterator[httpx.Client]:
    """A client that keeps cookies, as a browser does (no signing)."""
    with httpx.Client(base_url=base, timeout=30) as client:
        yield client


_LABELS = itertools.count()


def new_link(api: httpx.Client, **body: Any) -> str:
    # Each request its own body: the same signed bytes twice in a second are a replay.
    body.setdefault("label", f"operator {next(_LABELS)}")
    answer = api.post("/api/dashboard/links", json=body)
    assert answer.status_code == 201, answer.text
    url: str = answer.json()["url"]
    return url


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert f'data-code="{code}"' in response.text
    assert response.headers["content-type"].startswith("text/html")


def sign_in(browser: httpx.Client, api: httpx.Client, **body: Any) -> httpx.Response:
    token = token_of(new_link(api, **body))
    answer = browser.post("/dashboard/login", data={"token": token})
    assert answer.status_code == 303, answer.text
    return answer


def csrf_of(browser: httpx.Client, path: str = "/dashboard/sessions") -> str:
    page = browser.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page.text)
    assert found is not None
    return found.group(1)


def test_a_link_signs_in_once_with_a_strict_httponly_cookie(
    api: httpx.Client, browser: httpx.Client, base: str
) -> None:
    answer = api.post("/api/dashboard/links", json={"label": "ops@example.com"})
    assert answer.status_code == 201, answer.text
    link = answer.json()
    assert link["url"].startswith("http://127.0.0.1:3000/dashboard/login/")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", link["expires_at"])
    token = token_of(link["url"])
    # Opening the link shows a form that posts it: a GET alone does not use it up.
    for _ in range(2):
        shown = browser.get(f"/dashboard/login/{token}")
        assert shown.status_code == 200
        assert 'action="/dashboard/login"' in shown.text and token in shown.text
        assert "'self'" in shown.headers["content-security-policy"]
        assert shown.headers["referrer-policy"] == "no-referrer"
    assert browser.get("/dashboard/sessions").status_code == 401
    signed = browser.post("/dashboard/login", data={"token": token})
    assert (signed.status_code, signed.headers["location"]) == (303, "/dashboard/sessions")
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith("wa_dashboard=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age=28800"):
        assert attribute in cookie
    page = browser.get("/dashboard/sessions")
    assert page.status_code == 200
    assert "ops@example.com" in page.text
    assert 'data-key="s1"' in page.text and 'data-key="s2"' in page.text
    assert page.headers["x-frame-options"] == "DENY"
    # The same link again, from another browser: used.
    with httpx.Client(base_url=base) as other:
        refused(other.post("/dashboard/login", data={"token": token}), 403, "dashboard_link_used")
        assert other.get("/dashboard/sessions").status_code == 401


def test_a_forged_link_is_refused(api: httpx.Client, browser: httpx.Client) -> None:
    token = token_of(new_link(api))
    payload, stamp, signature = token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    forged = [
        f"{payload}.{stamp}.{flipped}",
        # Another payload under the real signature (another label, a longer ttl).
        f"eyJuIjoieCIsIndobyI6ImV2ZSIsInR0bCI6MzYwMH0.{stamp}.{signature}",
        # Signed with the right scheme and the wrong secret.
        token_of(DashboardAuth("x" * 40, "http://h", link_ttl=300, session_ttl=600).link().url),
        "not-a-token",
    ]
    for bad in forged:
        refused(browser.get(f"/dashboard/login/{bad}"), 403, "dashboard_link_invalid")
        refused(
            browser.post("/dashboard/login", data={"token": bad}), 403, "dashboard_link_invalid"
        )
    assert browser.get("/dashboard/sessions").status_code == 401
    # The untouched token still works: nothing above used it.
    assert browser.post("/dashboard/login", data={"token": token}).status_code == 303


def test_an_expired_link_is_refused(browser: httpx.Client) -> None:
    auth = DashboardAuth(SECRET, "http://h", link_ttl=300, session_ttl=28800)
    # Signed with this service's secret 301 s ago: one second past SIDECAR_DASHBOARD_LINK_TTL.
    with mock.patch("itsdangerous.timed.time.time", return_value=time.time() - 301):
        old = token_of(auth.link().url)
    refused(browser.get(f"/dashboard/login/{old}"), 403, "dashboard_link_expired")
    refused(browser.post("/dashboard/login", data={"token": old}), 403, "dashboard_link_expired")
    assert browser.get("/dashboard/sessions").status_code == 401


def test_a_link_with_a_short_ttl_expires_by_its_own(
    api: httpx.Client, browser: httpx.Client
) -> None:
    token = token_of(new_link(api, ttl=1))

    def expired() -> bool:
        return browser.get(f"/dashboard/login/{token}").status_code == 403

    eventually(expired, 10, "the 1 s link to expire")
    refused(browser.post("/dashboard/login", data={"token": token}), 403, "dashboard_link_expired")


def test_pages_and_streams_need_a_valid_cookie(browser: httpx.Client, api: httpx.Client) -> None:
    for path in ("/dashboard/sessions", "/dashboard/sessions/s1", "/dashboard/stream/sessions"):
        refused(browser.get(path), 401, "dashboard_signin_required")
    browser.cookies.set("wa_dashboard", "eyJzaWQiOiJ4Iiwid2hvIjoiZXZlIn0.aw6ajg.forged")
    refused(browser.get("/dashboard/sessions"), 401, "dashboard_signin_required")
    # The script asks for JSON: the refusal is the API's error shape.
    answer = browser.get("/dashboard/sessions", headers={"Accept": "application/json"})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "dashboard_signin_required"


def test_every_change_needs_the_sessions_csrf_token(
    api: httpx.Client, browser: httpx.Client, base: str
) -> None:
    sign_in(browser, api)
    token = csrf_of(browser)
    json_ = {"Accept": "application/json"}
    changes = ["/dashboard/sessions/s1/start", "/dashboard/sessions/s1/stop", "/dashboard/logout"]
    changes += ["/dashboard/sessions/s1/restart", "/dashboard/sessions/s1/pairing-code"]
    changes += ["/dashboard/sessions/s1/messages"]
    for path in changes:
        refused(browser.post(path), 403, "csrf_failed")
        refused(browser.post(path, data={"csrf_token": "0" * 64}), 403, "csrf_failed")
        wrong = browser.post(path, headers={**json_, "X-CSRF-Token": token[::-1]})
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "csrf_failed")
    # Another browser session's token opens nothing here.
    with httpx.Client(base_url=base) as other:
        sign_in(other, api)
        theirs = csrf_of(other)
    assert theirs != token
    refused(browser.post(changes[0], data={"csrf_token": theirs}), 403, "csrf_failed")
    assert api.get("/api/sessions/s1").json()["desired_state"] == "stopped"
    # With the token, as a form (then back where it came from) and as the script sends it.
    started = browser.post(changes[0], data={"csrf_token": token, "next": "/dashboard/sessions/s1"})
    assert (started.status_code, started.headers["location"]) == (303, "/dashboard/sessions/s1")
    assert api.get("/api/sessions/s1").json()["desired_state"] == "running"
    stopped = browser.post(changes[1], headers={**json_, "X-CSRF-Token": token})
    assert stopped.status_code == 202, stopped.text
    assert api.get("/api/sessions/s1").json()["desired_state"] == "stopped"
    # A text from the page is checked as the API checks it, and queued through the same path.
    send = "/dashboard/sessions/s1/messages"
    headers = {**json_, "X-CSRF-Token": token}
    bad = browser.post(send, data={"to": "12", "text": "hi"}, headers=headers)
    assert (bad.status_code, bad.json()["error"]["details"]["field"]) == (422, "to"), bad.text
    blank = browser.post(send, data={"to": "+15551234567", "text": " "}, headers=headers)
    assert (blank.status_code, blank.json()["error"]["details"]["field"]) == (422, "text")
    # This sidecar runs no browsers: the API's answer, as the page shows it.
    idle = browser.post(send, data={"to": "+15551234567", "text": "hi"}, headers=headers)
    assert (idle.status_code, idle.json()["error"]["code"]) == (409, "runtime_disabled")
    # A form cannot send the operator to another site afterwards.
    away = browser.post(changes[1], data={"csrf_token": token, "next": "//evil.example/x"})
    assert away.headers["location"] == "/dashboard/sessions"
    out = browser.post("/dashboard/logout", data={"csrf_token": token})
    assert out.status_code == 200 and "Max-Age=0" in out.headers["set-cookie"]
    refused(browser.get("/dashboard/sessions"), 401, "dashboard_signin_required")


def test_a_sign_in_posted_from_another_site_is_refused(
    api: httpx.Client, browser: httpx.Client
) -> None:
    token = token_of(new_link(api))
    cross = browser.post(
        "/dashboard/login", data={"token": token}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    refused(cross, 403, "csrf_failed")
    # Refused before the link was used: the operator's own click still works.
    assert browser.post("/dashboard/login", data={"token": token}).status_code == 303


def test_a_link_can_land_on_a_session(api: httpx.Client, browser: httpx.Client) -> None:
    landed = sign_in(browser, api, session_id="s2", label="Ana")
    assert landed.headers["location"] == "/dashboard/sessions/s2"
    page = browser.get("/dashboard/sessions/s2")
    assert page.status_code == 200 and "Ana" in page.text
    assert 'data-key="summary"' in page.text and 'data-key="messages"' in page.text
    refused(browser.get("/dashboard/sessions/nope"), 404, "session_not_found")
    refused(browser.get("/dashboard/sessions/s2/qr.png"), 404, "no_qr")


def test_filters_by_workspace_and_status(api: httpx.Client, browser: httpx.Client) -> None:
    sign_in(browser, api)
    acme = browser.get("/dashboard/sessions", params={"workspace_id": "acme"}).text
    assert 'data-key="s1"' in acme and 'data-key="s2"' not in acme
    assert 'data-stream="/dashboard/stream/sessions?workspace_id=acme"' in acme
    failed = browser.get("/dashboard/sessions", params={"status": "failed"}).text
    assert "data-key=" not in failed.split("<tbody", 1)[1].split("</tbody>")[0]
    refused(
        browser.get("/dashboard/sessions", params={"status": "asleep"}), 422, "validation_failed"
    )
    bad = browser.get("/dashboard/sessions", params={"workspace_id": "../x"})
    refused(bad, 422, "validation_failed")


def test_the_stream_sends_a_new_session_without_a_reload(
    api: httpx.Client, browser: httpx.Client
) -> None:
    sign_in(browser, api)
    seen: list[str] = []
    with browser.stream("GET", "/dashboard/stream/sessions?workspace_id=gamma") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        lines = events.iter_lines()
        assert next(lines) == "retry: 2000"
        body = {"workspace_id": "gamma", "session_id": "s3", "start": False}
        assert api.post("/api/sessions", json=body).status_code == 201
        for line in lines:
            seen.append(line)
            if line.startswith("data:") and '"key":"s3"' in line:
                break
    assert "event: fragment" in seen
    assert 'data-key=\\"s3\\"' in seen[-1]


def test_the_api_gives_links_only_while_the_dashboard_is_on(
    api: httpx.Client, tmp_path: Path
) -> None:
    bad = api.post("/api/dashboard/links", json={"label": "<script>", "ttl": 0})
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["error"]["details"]["errors"]}
    assert fields == {"label", "ttl"}
    assert api.post("/api/dashboard/links", json={"session_id": "../x"}).status_code == 422
    assert api.post("/api/dashboard/links").status_code == 201  # no body: the defaults
    settings = Settings.from_mapping(base_env(tmp_path / "storage"))
    with serve_app(create_app(settings, with_browsers=False)) as off:
        with httpx.Client(base_url=off, auth=SidecarAuth(API_SECRET)) as client:
            answer = client.post("/api/dashboard/links", json={})
            assert answer.status_code == 409
            assert answer.json()["error"]["code"] == "dashboard_disabled"
            assert client.get("/dashboard/sessions").status_code == 404


def test_the_cli_says_how_to_turn_the_dashboard_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name, value in base_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SIDECAR_DASHBOARD_SECRET", raising=False)
    assert main(["dashboard", "link"]) == 2
    assert "set SIDECAR_DASHBOARD_SECRET" in capsys.readouterr().err
    assert main(["dashboard", "secret"]) == 0
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(r"SIDECAR_DASHBOARD_SECRET=[0-9a-f]{64}", line)
    monkeypatch.setenv("SIDECAR_DASHBOARD_SECRET", line.split("=", 1)[1])
    assert main(["dashboard", "link", "--session", "../x"]) == 2
    assert main(["dashboard", "link", "--ttl", "60"]) == 0
    assert "/dashboard/login/" in capsys.readouterr().out


def test_the_cli_prints_a_link_that_signs_in(base: str, browser: httpx.Client) -> None:
    port = base.rsplit(":", 1)[1]
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        **base_env(Path("/nonexistent"), **ENV),
        "SIDECAR_PORT": port,
    }
    result = subprocess.run(
        [sys.executable, "-m", "service", "dashboard", "link", "--label", "cli", "--session", "s1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith(f"{base}/dashboard/login/")
    answer = browser.post("/dashboard/login", data={"token": token_of(url)})
    assert answer.headers["location"] == "/dashboard/sessions/s1"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"SIDECAR_DASHBOARD_SECRET": "short"}, "at least 32"),
        ({"SIDECAR_DASHBOARD_SECRET": API_SECRET + "-padding-padding"}, None),
        ({"SIDECAR_DASHBOARD_LINK_TTL": "0"}, "LINK_TTL"),
        ({"SIDECAR_DASHBOARD_SESSION_TTL": "10"}, "SESSION_TTL"),
    ],
)
def test_dashboard_settings_are_checked(
    tmp_path: Path, extra: dict[str, str], message: str | None
) -> None:
    env: dict[str, Any] = base_env(tmp_path, **{**ENV, **extra})
    if message is None:
        Settings.from_mapping(env)  # a secret of its own, only starting like another: fine
        env["SIDECAR_API_SECRET"] = env["SIDECAR_DASHBOARD_SECRET"]
        message = "must differ"
    with pytest.raises(ConfigError, match=message):
        Settings.from_mapping(env)


@pytest.mark.php
def test_the_laravel_kit_asks_for_a_link(base: str, browser: httpx.Client) -> None:
    from tests.test_laravel_kit import call, run_kit, values

    output = run_kit(
        base,
        call("dashboardLink"),
        call("dashboardLink", label="ana@acme.example", sessionId="s2", ttlSeconds=60),
        call("dashboardLink", label="<bad>"),
    )
    plain, landing, bad = values(output, True, True, False)
    assert plain["url"].startswith("http://127.0.0.1:3000/dashboard/login/")
    assert (bad["status"], bad["code"]) == (422, "validation_failed")
    answer = browser.post("/dashboard/login", data={"token": token_of(landing["url"])})
    assert answer.headers["location"] == "/dashboard/sessions/s2"
    assert "ana@acme.example" in browser.get("/dashboard/sessions/s2").text


def test_the_access_log_never_shows_a_sign_in_token() -> None:
    request = '%s - "%s %s HTTP/%s" %d'
    path = "/dashboard/login/eyJuIjoieCJ9.aw6ajg.G98eSg8ecrNPjHcvjlyWaImk284"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        request,
        ("127.0.0.1:5", "GET", path, "1.1", 200),
        None,
    )
    assert RedactLinkTokens().filter(record)
    assert record.getMessage().endswith('"GET /dashboard/login/[redacted] HTTP/1.1" 200')
