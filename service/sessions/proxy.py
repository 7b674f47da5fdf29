"""A session's browser proxy: checked when it is set, sealed at rest, opened at launch.

The record keeps `proxy_url` (`scheme://host:port`, shown in the session record) and, when
the proxy needs a login, `proxy_sealed`: the username and password sealed with
SIDECAR_ENCRYPTION_KEY like the Meta credentials. Whoever launches the browser (the worker,
in a cluster) opens them from the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.browser import BrowserProxy
from service.errors import ValidationFailed
from service.netguard import Refused, proxy_server
from service.secretbox import SecretBox
from service.store import SessionRecord


@dataclass(frozen=True)
class ProxyConfig:
    """A proxy as asked for: `url` as given, credentials optional."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)


class ProxyUnavailable(Exception):
    """The session's proxy credentials cannot be opened here (no key, or another key)."""


def _context(session_id: str) -> str:
    # Bound to the session and to this use, so a sealed proxy login cannot stand in for
    # the session's Meta credentials (sealed under the bare session id) or another's.
    return f"{session_id}/proxy"


def proxy_columns(
    proxy: ProxyConfig | None, session_id: str, secretbox: SecretBox | None
) -> dict[str, Any]:
    """The store columns for `proxy` (None: no proxy); ValidationFailed says what is wrong."""
    if proxy is None:
        return {"proxy_url": None, "proxy_sealed": None}
    try:
        server = proxy_server(proxy.url)
    except Refused as exc:
        raise ValidationFailed("proxy.url", exc.reason) from None
    if proxy.password is not None and proxy.username is None:
        raise ValidationFailed("proxy.password", "needs proxy.username")
    if proxy.username is None:
        return {"proxy_url": server, "proxy_sealed": None}
    if server.startswith("socks5:"):
        raise ValidationFailed(
            "proxy.username",
            "a socks5 proxy takes no credentials: Chromium does not support SOCKS5 "
            "authentication; use an http or https proxy for one that needs a login",
        )
    if secretbox is None:
        raise ValidationFailed(
            "proxy",
            "cannot be stored with credentials: SIDECAR_ENCRYPTION_KEY is not set on the "
            "sidecar, and proxy credentials are only kept encrypted",
        )
    login = {"username": proxy.username, "password": proxy.password or ""}
    return {"proxy_url": server, "proxy_sealed": secretbox.seal(login, _context(session_id))}


def proxy_view(record: SessionRecord) -> dict[str, Any] | None:
    """What the session record shows of its proxy: never the credentials."""
    if record.proxy_url is None:
        return None
    return {"url": record.proxy_url, "authenticated": record.proxy_sealed is not None}


def open_proxy(record: SessionRecord, secretbox: SecretBox | None) -> BrowserProxy | None:
    """The session's proxy with its credentials opened; None when it has no proxy.
    ProxyUnavailable when the credentials do not open here: the browser must not start
    without the proxy it was given."""
    if record.proxy_url is None:
        return None
    if record.proxy_sealed is None:
        return BrowserProxy(record.proxy_url)
    if secretbox is None:
        raise ProxyUnavailable(
            "the proxy's credentials are sealed, and SIDECAR_ENCRYPTION_KEY is not set here"
        )
    try:
        login = secretbox.open(record.proxy_sealed, _context(record.session_id))
        return BrowserProxy(record.proxy_url, str(login["username"]), str(login["password"]))
    except (ValueError, KeyError):
        raise ProxyUnavailable(
            "the proxy's credentials do not open with this SIDECAR_ENCRYPTION_KEY; "
            "set the proxy again (PATCH proxy)"
        ) from None
