"""A tiny real HTTP proxy on 127.0.0.1 for tests: CONNECT tunnels and absolute-form requests,
forwarded to loopback only, each request recorded with whether it carried the login."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.support.server import free_port

# Hop-by-hop headers: the proxy's own business, never forwarded.
_HOP = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}
_REQUIRED = (
    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
    b'Proxy-Authenticate: Basic realm="test"\r\n'
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)


@dataclass(frozen=True)
class Seen:
    """One request the proxy got: `target` is the URL (or host:port for CONNECT)."""

    method: str
    target: str
    authorized: bool


class ForwardProxy:
    """The proxy, served from its own thread; `username` and `password` make it demand
    Basic `Proxy-Authorization` (407 otherwise) as a real authenticated proxy does."""

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[Seen] = []
        self._expected = (
            None
            if username is None
            else "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> ForwardProxy:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", self.port), self._loop
        )
        self._server = started.result(timeout=10)
        return self

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        # The loop is idle now: finish every connection here, in this thread, then close it.
        self._loop.run_until_complete(self._shutdown())
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        while others := [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

    def forwarded(self, target: str) -> list[Seen]:
        """The requests for `target` it let through."""
        return [s for s in list(self.seen) if s.target == target and s.authorized]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            # No await here: a handler still open when the loop ends must close quietly.
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")[:-2]
        method, target, version = request_line.split(" ", 2)
        headers = [tuple(line.split(":", 1)) for line in lines]
        login = next((v.strip() for k, v in headers if k.lower() == "proxy-authorization"), None)
        authorized = self._expected is None or login == self._expected
        self.seen.append(Seen(method, target, authorized))
        if not authorized:
            writer.write(_REQUIRED)
            await writer.drain()
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream_reader, upstream_writer = await _loopback(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            pipes = [_pipe(reader, upstream_writer), _pipe(upstream_reader, writer)]
        else:
            parts = urlsplit(target)
            upstream_reader, upstream_writer = await _loopback(
                parts.hostname or "", parts.port or 80
            )
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            kept = "".join(f"{k}:{v}\r\n" for k, v in headers if k.lower() not in _HOP)
            # One request per connection keeps the forwarding simple; the browser reconnects.
            upstream_writer.write(
                f"{method} {path} {version}\r\n{kept}Connection: close\r\n\r\n".encode("latin-1")
            )
            length = next((v for k, v in headers if k.lower() == "content-length"), "0")
            upstream_writer.write(await reader.readexactly(int(length.strip())))
            pipes = [_pipe(upstream_reader, writer)]
        tasks = [asyncio.create_task(pipe) for pipe in pipes]
        try:
            # Either side closing ends the exchange.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            upstream_writer.close()


async def _loopback(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    # A test proxy must not become a way out: loopback only.
    if host not in ("127.0.0.1", "localhost", "[::1]", "::1"):
        raise ValueError(f"refusing to proxy to {host}")
    return await asyncio.open_connection(host.strip("[]"), port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()


@contextmanager
def forward_proxy(
    username: str | None = None, password: str | None = None
) -> Iterator[ForwardProxy]:
    """A running ForwardProxy for the duration of the block."""
    proxy = ForwardProxy(username, password).start()
    try:
        yield proxy
    finally:
        proxy.close()
