"""Media files: fetched by URL (bounded), kept in the session directory, offered by signed URL.

Outgoing media is fetched when the request is accepted, so an unreachable URL is the
caller's 422 rather than a failure found minutes later; the bytes wait on disk, not in SQLite.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path

import httpx

from service.errors import PayloadTooLarge, ValidationFailed
from service.links import SignedLinks

MEDIA_LINK_MAX_AGE = 3600


class MediaFetcher:
    """Downloads media URLs with httpx: http(s) only, a size cap and a time cap."""

    def __init__(self, client: httpx.AsyncClient, max_bytes: int, timeout: float) -> None:
        self.client = client
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def fetch(self, url: str) -> tuple[bytes, str | None]:
        """The body and its Content-Type; ValidationFailed / PayloadTooLarge name the problem."""
        try:
            async with self.client.stream(
                "GET", url, timeout=self.timeout, follow_redirects=True
            ) as response:
                if response.url.scheme not in ("http", "https"):
                    raise ValidationFailed("media.url", "redirected to a non-http URL")
                if response.status_code != 200:
                    raise ValidationFailed(
                        "media.url", f"answered HTTP {response.status_code}, expected 200"
                    )
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise self._too_large()
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise self._too_large()
                    chunks.append(chunk)
                content_type = response.headers.get("content-type")
        except httpx.TimeoutException:
            raise ValidationFailed(
                "media.url", f"did not answer within {self.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise ValidationFailed(
                "media.url", f"could not be fetched: {type(exc).__name__}"
            ) from None
        body = b"".join(chunks)
        if not body:
            raise ValidationFailed("media.url", "returned an empty body")
        mimetype = content_type.split(";")[0].strip().lower() if content_type else None
        return body, mimetype

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"media is larger than {self.max_bytes} bytes",
            code="media_too_large",
            details={"field": "media", "limit": self.max_bytes},
        )


def guess_filename(message_id: str, mimetype: str) -> str:
    extension = mimetypes.guess_extension(mimetype) or ".bin"
    return f"{message_id}{extension}"


def write_media(directory: Path, name: str, data: bytes) -> Path:
    """Write a media file privately (0600) and atomically, so a crash leaves no half file."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / name
    tmp = directory / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.replace(path)
    return path


def media_links(api_secret: str, base_url: str) -> SignedLinks:
    return SignedLinks(
        api_secret, base_url, purpose="media", prefix="/media/", max_age=MEDIA_LINK_MAX_AGE
    )
