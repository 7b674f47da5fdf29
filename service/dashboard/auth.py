"""Who may see the dashboard: one-time login links, the signed session cookie, CSRF tokens.

A login link carries a token signed with SIDECAR_DASHBOARD_SECRET (itsdangerous, timed):
it expires after SIDECAR_DASHBOARD_LINK_TTL and signs in once (its nonce is recorded in the
store's seen-signatures table, shared by every process, for as long as it could be valid).
Signing in sets a cookie holding a signed, timed `{sid, who}`: HttpOnly, SameSite=Strict,
scoped to /dashboard, Secure behind https. The CSRF token is an HMAC of the cookie's `sid`,
so it is tied to that browser session and needs no server-side state.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from service.signing import hmac_hex

COOKIE = "wa_dashboard"
COOKIE_PATH = "/dashboard"
LOGIN_PATH = "/dashboard/login/"
# What a link may say about who asked for it (shown in the header and the log).
LABEL = re.compile(r"[A-Za-z0-9 _.@+:-]{1,64}")

LinkProblem = Literal["invalid", "expired"]


@dataclass(frozen=True)
class LoginLink:
    """A login link as issued: the URL and when it stops working (Unix seconds)."""

    url: str
    expires_at: float


@dataclass(frozen=True)
class LinkClaims:
    """What a valid link's token says: its one-time nonce, who asked, where to land."""

    nonce: str
    label: str
    session_id: str | None
    issued_at: float


@dataclass(frozen=True)
class Operator:
    """A signed-in browser: its session id (the CSRF key), who it is, when it ends."""

    sid: str
    label: str
    expires_at: float


class DashboardAuth:
    """Issues and reads login links, session cookies and CSRF tokens."""

    def __init__(self, secret: str, base_url: str, *, link_ttl: int, session_ttl: int) -> None:
        # One key per use, derived from the secret: a link token never passes for a cookie.
        self._links = URLSafeTimedSerializer(
            hmac_hex(secret, b"wa-sidecar dashboard link"), salt="dashboard-link"
        )
        self._cookies = URLSafeTimedSerializer(
            hmac_hex(secret, b"wa-sidecar dashboard session"), salt="dashboard-session"
        )
        self._csrf_key = hmac_hex(secret, b"wa-sidecar dashboard csrf").encode()
        self.base_url = base_url.rstrip("/")
        self.link_ttl = link_ttl
        self.session_ttl = session_ttl
        self.secure = self.base_url.startswith("https://")

    # -- links --

    def link(
        self, label: str = "operator", session_id: str | None = None, ttl: int | None = None
    ) -> LoginLink:
        """A fresh one-time login link; `session_id` makes it land on that session's page."""
        ttl = min(ttl or self.link_ttl, self.link_ttl)
        claims = {"n": secrets.token_urlsafe(16), "who": label, "ttl": ttl}
        if session_id is not None:
            claims["s"] = session_id
        token = self._links.dumps(claims)
        return LoginLink(f"{self.base_url}{LOGIN_PATH}{token}", time.time() + ttl)

    def read_link(self, token: str) -> LinkClaims | LinkProblem:
        """The claims of a valid token, or why it is not valid (used-ness is the store's)."""
        try:
            claims, signed_at = self._links.loads(
                token, max_age=self.link_ttl, return_timestamp=True
            )
        except SignatureExpired:
            return "expired"
        except BadSignature:
            return "invalid"
        if not isinstance(claims, dict) or not isinstance(claims.get("n"), str):
            return "invalid"
        issued = signed_at.timestamp()
        ttl = claims.get("ttl")
        if isinstance(ttl, int) and time.time() > issued + ttl:
            return "expired"
        session_id = claims.get("s")
        return LinkClaims(
            nonce=claims["n"],
            label=str(claims.get("who") or "operator"),
            session_id=session_id if isinstance(session_id, str) else None,
            issued_at=issued,
        )

    @staticmethod
    def nonce_key(claims: LinkClaims) -> str:
        """What the store records to make the link single-use (64 hex digits, like the API
        signatures kept beside it, and never one of them)."""
        return hashlib.sha256(f"dashboard-link:{claims.nonce}".encode()).hexdigest()

    # -- the session cookie --

    def cookie(self, label: str) -> tuple[str, Operator]:
        """A new session's cookie value and the operator it stands for."""
        operator = Operator(secrets.token_urlsafe(16), label, time.time() + self.session_ttl)
        return self._cookies.dumps({"sid": operator.sid, "who": label}), operator

    def operator(self, cookie: str | None) -> Operator | None:
        """The operator a cookie value stands for, or None (absent, forged or expired)."""
        if not cookie:
            return None
        try:
            data, signed_at = self._cookies.loads(
                cookie, max_age=self.session_ttl, return_timestamp=True
            )
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
            return None
        return Operator(
            data["sid"],
            str(data.get("who") or "operator"),
            signed_at.timestamp() + self.session_ttl,
        )

    def set_cookie_header(self, value: str) -> str:
        """The Set-Cookie header that stores a session cookie."""
        secure = "; Secure" if self.secure else ""
        return (
            f"{COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={self.session_ttl}; HttpOnly; "
            f"SameSite=Strict{secure}"
        )

    def clear_cookie_header(self) -> str:
        secure = "; Secure" if self.secure else ""
        return f"{COOKIE}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict{secure}"

    # -- CSRF --

    def csrf_token(self, operator: Operator) -> str:
        """The token every state-changing request of this browser session must carry."""
        return hmac.new(self._csrf_key, operator.sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, operator: Operator, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(operator), token or "")
