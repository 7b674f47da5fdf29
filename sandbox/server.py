"""Running the sandbox under uvicorn, from the command line or a test thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette

from sandbox.network import Network

# Backstop for anything still streaming once the network has closed its streams.
GRACEFUL_SHUTDOWN_SECONDS = 3


class SandboxServer(uvicorn.Server):
    """A uvicorn server that ends the pages' event streams as it starts shutting down.

    uvicorn waits for open responses to finish *before* it runs the lifespan shutdown, so
    the app's own shutdown hook would come too late for endless SSE streams.
    """

    def __init__(self, config: uvicorn.Config, network: Network) -> None:
        super().__init__(config)
        self.network = network

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Close the streams, then shut down as uvicorn does."""
        self.network.close()
        await super().shutdown(sockets=sockets)


def make_server(
    app: Starlette, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> SandboxServer:
    """A server for an app made by `create_app`."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return SandboxServer(config, app.state.network)


@contextmanager
def serve_in_thread(
    app: Starlette, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 10.0
) -> Iterator[str]:
    """Serve `app` on a background thread; yields the base URL (`http://host:port`)."""
    # Binding here, before the thread starts, removes the race for a free port. The explicit
    # IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on accepted sockets that carry it,
    # and without it Nagle's algorithm adds ~40 ms to every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = make_server(app, host, bound_port)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="sandbox-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the sandbox server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=GRACEFUL_SHUTDOWN_SECONDS + 5)
        sock.close()
