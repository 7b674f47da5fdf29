"""Media files: fetched by URL (bounded), kept in the session directory, offered by signed URL.

Outgoing media is fetched when the request is accepted, so an unreachable URL is the
caller's 422 rather than a failure found minutes later; the bytes wait on disk, not in SQLite.
The URL comes from the caller, so every hop of a fetch goes through the NetGuard: only public
destinations (or those SIDECAR_FETCH_ALLOW names), connected to at the very address checked.
"""

from __future__ import annotations

import mimetypes
import os
import ssl
from pathlib import Path

import httpx

from service import __version__
from service.digits import ascii_int
from service.errors import PayloadTooLarge, ValidationFailed
from service.links import SignedLinks
from service.netguard import Destination, LookupFailed, NetGuard, Refused, redact_url
from service.sessions.layout import private_dir

MEDIA_LINK_MAX_AGE = 3600
MAX_REDIRECTS = 5
# Addresses of one host tried in turn when connecting is refused (all of them were checked).
MAX_ADDRESSES = 3


class MediaFetcher:
    """Downloads media URLs: http(s) only, through the guard, with a size cap and a time cap.

    Each hop (the URL, then each redirect, at most MAX_REDIRECTS) is checked and connected
    to with a client of its own: no proxy from the environment, no cookies, and no
    connection kept for another host that happens to share an address.
    """

    def __init__(
        self,
        guard: NetGuard,
        max_bytes: int,
        timeout: float,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.guard = guard
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._ssl_context = ssl_context

    async def fetch(self, url: str) -> tuple[bytes, str | None]:
        """The body and its Content-Type; ValidationFailed / PayloadTooLarge name the problem."""
        try:
            body, content_type = await self._follow(url)
        except (Refused, LookupFailed) as exc:
            raise ValidationFailed("media.url", exc.reason) from None
        except httpx.TimeoutException:
            raise ValidationFailed(
                "media.url", f"did not answer within {self.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise ValidationFailed("media.url", f"could not be fetched: {_why(exc)}") from None
        except httpx.InvalidURL:
            raise ValidationFailed("media.url", "is not a valid URL") from None
        if not body:
            raise ValidationFailed("media.url", "returned an empty body")
        mimetype = content_type.split(";")[0].strip().lower() if content_type else None
        return body, mimetype

    async def _follow(self, url: str) -> tuple[bytes, str | None]:
        current: str | httpx.URL = url
        for hop in range(MAX_REDIRECTS + 1):
            try:
                destination = await self.guard.check(current)
            except Refused as exc:
                if hop == 0:
                    raise
                shown = redact_url(str(current))
                raise Refused(f"was redirected to {shown}, which {exc.reason}") from None
            async with self._client() as client:
                response = await self._connect(client, destination)
                try:
                    if response.has_redirect_location:
                        current = _redirect_target(destination, response)
                        continue
                    return await self._read(response)
                finally:
                    await response.aclose()
        raise Refused(f"was redirected more than {MAX_REDIRECTS} times")

    def _client(self) -> httpx.AsyncClient:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return httpx.AsyncClient(
            verify=self._ssl_context,
            trust_env=False,
            follow_redirects=False,
            timeout=self.timeout,
            headers={"User-Agent": f"wa-sidecar/{__version__}"},
        )

    async def _connect(self, client: httpx.AsyncClient, destination: Destination) -> httpx.Response:
        """The response from the first checked address that takes the connection."""
        refused: httpx.ConnectError | None = None
        for address in destination.addresses[:MAX_ADDRESSES]:
            url, headers, extensions = destination.request_target(address)
            request = client.build_request("GET", url, headers=headers, extensions=extensions)
            try:
                return await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                refused = exc
        assert refused is not None
        raise refused

    async def _read(self, response: httpx.Response) -> tuple[bytes, str | None]:
        if response.status_code != 200:
            raise ValidationFailed(
                "media.url", f"answered HTTP {response.status_code}, expected 200"
            )
        declared = ascii_int(response.headers.get("content-length"))
        if declared is not None and declared > self.max_bytes:
            raise self._too_large()
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large()
            chunks.append(chunk)
        return b"".join(chunks), response.headers.get("content-type")

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"media is larger than {self.max_bytes} bytes",
            code="media_too_large",
            details={"field": "media", "limit": self.max_bytes},
        )


def _redirect_target(destination: Destination, response: httpx.Response) -> httpx.URL:
    """Where a redirect points, resolved against the URL as asked (the name, not the
    address it was fetched from)."""
    try:
        return destination.url.join(response.headers["location"])
    except httpx.InvalidURL:
        raise Refused("was redirected to an invalid URL") from None


def _why(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return "its TLS certificate did not verify"
    return type(exc).__name__


def guess_filename(message_id: str, mimetype: str) -> str:
    extension = mimetypes.guess_extension(mimetype) or ".bin"
    return f"{message_id}{extension}"


def write_media(directory: Path, name: str, data: bytes) -> Path:
    """Write a media file privately (0600) and atomically, so a crash leaves no half file."""
    private_dir(directory)  # media/ and media/in|out: owner-only, like the rest
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
