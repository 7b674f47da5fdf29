"""QR codes for humans: PNG rendering and the signed image links (`/qr/{token}.png`).

The link names a session, not a code, so an `<img>` reloaded later shows the current QR.
"""

from __future__ import annotations

import io
from typing import TextIO

import segno

from service.links import SignedLinks

QR_LINK_MAX_AGE = 300


def qr_png(data: str, scale: int = 6) -> bytes:
    out = io.BytesIO()
    segno.make(data, error="l").save(out, kind="png", scale=scale, border=2)
    return out.getvalue()


def qr_terminal(data: str, out: TextIO) -> None:
    """Draw the QR in a terminal, ready for a phone's camera."""
    qr = segno.make(data, error="l")
    try:
        qr.terminal(out=out, compact=True, border=2)
    except UnicodeEncodeError:
        # A terminal without UTF-8: ANSI background colours draw it instead.
        qr.terminal(out=out, border=2)
    out.flush()


def qr_links(api_secret: str, base_url: str) -> SignedLinks:
    return SignedLinks(
        api_secret, base_url, purpose="qr", prefix="/qr/", suffix=".png", max_age=QR_LINK_MAX_AGE
    )
