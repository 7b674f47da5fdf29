"""Findings of the hostile test of the running service, each pinned by a test."""

from __future__ import annotations

import argparse
import logging
import stat
from collections.abc import Callable
from pathlib import Path

import httpx

from service.app import create_app
from service.links import RedactLinkTokens
from service.sessions.layout import private_dir
from service.settings import Settings
from tests.support.server import serve_app


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_metrics_can_be_closed_with_a_bearer_token(
    make_settings: Callable[..., Settings],
) -> None:
    with serve_app(
        create_app(make_settings(SIDECAR_METRICS_TOKEN="scrape-me"), with_browsers=False)
    ) as base:
        assert httpx.get(f"{base}/metrics").status_code == 401
        wrong = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
        right = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert right.status_code == 200 and "wa_sessions" in right.text
    with serve_app(create_app(make_settings(), with_browsers=False)) as base:
        assert httpx.get(f"{base}/metrics").status_code == 200  # open unless a token is set


def test_the_access_log_never_shows_a_verify_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', (
            "127.0.0.1:5000", "GET",
            "/webhooks/meta?hub.mode=subscribe&hub.verify_token=s3cret-verify&hub.challenge=42",
            "1.1", 200,
        ), None,
    )  # fmt: skip
    assert RedactLinkTokens().filter(record)
    line = record.getMessage()
    assert "s3cret-verify" not in line
    assert "hub.verify_token=[redacted]" in line and "hub.challenge=42" in line


def test_storage_directories_are_created_owner_only(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    nested = private_dir(tmp_path / "a" / "b" / "c")
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", nested)] == [0o700] * 3

    storage = tmp_path / "fresh" / "storage"
    settings = make_settings(SIDECAR_STORAGE_DIR=str(storage))
    with serve_app(create_app(settings, with_browsers=False)):
        pass
    assert mode(tmp_path / "fresh") == 0o700
    assert mode(storage) == 0o700
    assert mode(storage / "sessions") == 0o700


def test_numbers_from_outside_are_ascii_digits_only() -> None:
    import pytest

    from adapters.meta import _graph_error
    from service.digits import ascii_int, port_arg, seconds_arg
    from service.errors import ConfigError

    assert ascii_int("42") == 42
    for bad in ("²", "①", "١٢", " 12", "12 ", "+1", "-1", "1e3", "", "9" * 19, None):
        assert ascii_int(bad) is None, bad
    assert ascii_int("5", low=1, high=4) is None and ascii_int("0", low=1) is None

    # The CLI's seconds and ports: what float() and int() would take is not enough.
    assert seconds_arg("90") == 90.0 and seconds_arg("0.5") == 0.5 and port_arg("3000") == 3000
    for bad in ("1e3", "inf", "nan", "١٢", " 5", "-1", "86401", "", "0x10"):
        with pytest.raises(argparse.ArgumentTypeError):
            seconds_arg(bad)
    for bad in ("0", "65536", "١٢", "+80", " 80"):
        with pytest.raises(argparse.ArgumentTypeError):
            port_arg(bad)

    # A Cloud API answer with a Unicode Retry-After is an ordinary error, not a crash.
    for header in ("²", "①", "١٢"):
        response = httpx.Response(429, headers=[(b"retry-after", header.encode())], json={})
        assert _graph_error(response, {}).retry_after is None
    response = httpx.Response(429, headers={"retry-after": "7"}, json={})
    assert _graph_error(response, {}).retry_after == 7.0

    for value in ("٣٠٠٠", "3000²", "3e3"):
        with pytest.raises(ConfigError):
            Settings.from_mapping({"SIDECAR_PORT": value})
    assert Settings.from_mapping({"SIDECAR_PORT": "3001"}).port == 3001


def test_media_directories_are_owner_only(tmp_path: Path) -> None:
    from service.messaging.media import write_media

    session = tmp_path / "sessions" / "w" / "s"
    session.mkdir(parents=True)
    written = write_media(session / "media" / "in", "msg_1.png", b"png")
    assert mode(session / "media") == mode(session / "media" / "in") == 0o700
    assert mode(written) == 0o600


def test_an_empty_filter_is_an_error_not_every_tenant(api: httpx.Client) -> None:
    for workspace in ("acme", "other"):
        created = api.post("/api/sessions", json={"workspace_id": workspace, "start": False})
        assert created.status_code == 201
    assert len(api.get("/api/sessions", params={"workspace_id": "acme"}).json()["data"]) == 1
    for path, name in (
        ("/api/sessions?workspace_id=", "workspace_id"),
        ("/api/sessions?status=", "status"),
        ("/api/webhooks/deliveries?session_id=", "session_id"),
        ("/api/webhooks/deliveries?status=", "status"),
    ):
        response = api.get(path)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"]["details"]["field"] == name


def test_a_unicode_digit_in_a_query_is_a_422_not_a_500(api: httpx.Client) -> None:
    for limit in ("²", "①", "١٢", "0", "1001", "-1", ""):
        response = api.get("/api/webhooks/deliveries", params={"limit": limit})
        assert response.status_code == 422, (limit, response.text)
        assert response.json()["error"]["details"]["field"] == "limit"
    assert api.get("/api/webhooks/deliveries", params={"limit": "5"}).status_code == 200
