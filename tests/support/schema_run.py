"""Request signing for schemathesis runs: a requests Auth that signs the bytes on the wire."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests
from urllib3.util.url import _encode_target

from service.auth import STATE_CHANGING
from service.signing import sign_request


class FreshSignature(requests.auth.AuthBase):
    """X-Timestamp and X-HMAC-Signature over the exact path, query and body requests sends.

    requests applies auth after the body is encoded, so `request.body` is what goes out. The
    sidecar refuses a state-changing request whose signature it saw in the last 2 x tolerance
    seconds, and schemathesis sends byte-identical writes (the same shrunk example twice, a
    coverage case and a fuzzed one). So a write whose signature this run already used is signed
    again one second earlier: still inside the window, a different signature, and the request
    itself is unchanged. A `replayed_request` from the server is then a real finding.
    """

    def __init__(
        self, secret: str, *, max_age: int = 240, clock: Callable[[], float] = time.time
    ) -> None:
        self.secret = secret
        self.max_age = max_age  # how far back a timestamp may go; below the tolerance of 300 s
        self.clock = clock
        self.used: set[str] = set()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body
        if body is None:
            body = b""
        elif isinstance(body, str):
            # urllib3 sends a str as UTF-8: encode it here, so the signed bytes are the sent ones.
            body = body.encode("utf-8")
            request.body = body
            request.prepare_content_length(body)
        elif not isinstance(body, bytes):
            raise TypeError(f"cannot sign a streamed body ({type(body).__name__})")
        method = (request.method or "GET").upper()
        # urllib3 percent-encodes the request target once more (and upper-cases escapes) before
        # it writes it: the server verifies that form, so sign that form. (A private helper: if
        # urllib3 drops it, the import fails loudly rather than signing a different path.)
        path = _encode_target(request.path_url)
        now = int(self.clock())
        for age in range(self.max_age + 1):
            timestamp = str(now - age)
            signature = sign_request(self.secret, timestamp, method, path, body)
            if method not in STATE_CHANGING or signature not in self.used:
                break
        else:
            raise RuntimeError(f"{method} {path}: no unused timestamp left in {self.max_age} s")
        self.used.add(signature)
        request.headers["X-Timestamp"] = timestamp
        request.headers["X-HMAC-Signature"] = signature
        return request
