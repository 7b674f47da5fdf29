"""Calls between the processes of a cluster: an `api` process asks the worker that owns a
session for what needs the session's page (QR, pairing code, logout, restart).

The owner is the node holding the session's live lease; its address is in its node row. A
call is a POST to `<address>/internal/...`, signed like the public API (X-Timestamp and
X-HMAC-Signature over the raw body) with SIDECAR_INTERNAL_SECRET, so a worker's port
answers no one else. Every body carries a nonce: two identical calls in one second are two
calls, not a replay. A worker that dies during a call, or does not answer in time, is a 503
`worker_unavailable`, never a hang; an error the worker answers (409 `no_qr`, ...) reaches
the API's client as it was given.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.errors import ApiError, MalformedJson, ValidationFailed, registered
from service.models.base import ID_PATTERN
from service.signing import HmacAuth
from service.store.base import Lease, NodeRecord, Store

log = logging.getLogger("service.cluster")

# How long a page call may take before the API answers 503 (a QR refresh waits up to 5 s, a
# logout closes a browser); a worker that does not even accept the connection fails sooner.
CALL_TIMEOUT = 15.0
CONNECT_TIMEOUT = 2.0
# A nudge is a hint: the worker polls its queues too, so a slow one is simply dropped.
NUDGE_TIMEOUT = 2.0


class WorkerUnavailable(ApiError):
    """The session's worker did not answer (it died, or the network between is down)."""

    status = 503
    code = "worker_unavailable"


class SessionUnassigned(ApiError):
    """No live worker holds the session now: it is being placed or moved."""

    status = 503
    code = "session_unassigned"


class WorkerError(ApiError):
    """The worker answered something an API client must not take for its own request's
    fault (a 401 from a secret or a clock the two processes disagree on, a 500, ...)."""

    status = 502
    code = "worker_error"


# What a worker answers that means the same to the API's client as it means to the api.
PASSED_ON = frozenset({404, 409, 422, 503, 504})


class RemoteError(ApiError):
    """An error the worker answered, passed on with its status, code and details."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any]) -> None:
        # The status first: the code is checked against the registry under it.
        self.status = status
        super().__init__(message, code=code, details=details)


class RpcClient:
    """Finds a session's owner through the store and calls it."""

    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        secret: str,
        ttl: float,
        *,
        timeout: float = CALL_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.http = http
        self.auth = HmacAuth(secret)
        self.ttl = ttl
        self.timeout = timeout
        self.clock = clock
        self._nodes: dict[str, NodeRecord] = {}
        self._nodes_at = 0.0
        self._background: set[asyncio.Task[None]] = set()
        # Sessions with a nudge in flight -> whether another was asked for meanwhile.
        self._nudging: dict[str, bool] = {}

    async def nodes(self) -> dict[str, NodeRecord]:
        """Node rows by id, read at most once a second."""
        now = self.clock()
        if now - self._nodes_at > 1.0:
            self._nodes = {node.node_id: node for node in await self.store.list_nodes()}
            self._nodes_at = now
        return self._nodes

    async def owner(self, session_id: str) -> tuple[Lease, NodeRecord] | None:
        """The live lease on the session and its node (with an address), or None."""
        lease = await self.store.lease(session_id)
        if lease is None or lease.expires_at <= self.clock():
            return None
        node = (await self.nodes()).get(lease.node_id)
        if node is None or not node.address:
            self._nodes_at = 0.0  # a node that joined since the last read
            node = (await self.nodes()).get(lease.node_id)
        if node is None or not node.address:
            return None
        return lease, node

    async def call(
        self,
        session_id: str,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Ask the session's owner to do `op`; its 2xx answer, or the ApiError it gave."""
        found = await self.owner(session_id)
        if found is None:
            raise SessionUnassigned(
                f"no worker runs session {session_id!r} now (it is being placed or moved); "
                "retry in a few seconds",
                details={"session_id": session_id},
            )
        _, node = found
        return await self.post(
            node, f"/internal/sessions/{session_id}/{op}", args or {}, timeout=timeout
        )

    async def post(
        self,
        node: NodeRecord,
        path: str,
        args: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> httpx.Response:
        assert node.address is not None
        body = json.dumps({**args, "nonce": secrets.token_hex(8)}).encode()
        try:
            response = await self.http.post(
                node.address.rstrip("/") + path,
                content=body,
                headers={"Content-Type": "application/json"},
                auth=self.auth,
                timeout=httpx.Timeout(timeout or self.timeout, connect=CONNECT_TIMEOUT),
            )
        except httpx.HTTPError as exc:
            self._nodes_at = 0.0  # read the node rows again next time (a new address?)
            raise WorkerUnavailable(
                f"worker {node.node_id} did not answer: {type(exc).__name__}",
                details={"node_id": node.node_id},
            ) from None
        if response.is_success:
            return response
        if response.status_code not in PASSED_ON:
            log.error(
                "worker %s answered %s to %s",
                node.node_id,
                response.status_code,
                path.split("/")[-1],
            )
            raise WorkerError(
                f"worker {node.node_id} answered {response.status_code}; see its log",
                details={"node_id": node.node_id, "status": response.status_code},
            )
        try:
            error = response.json()["error"]
            if not registered(str(error["code"]), response.status_code):
                # A worker of another version: its code means nothing to this api's clients.
                raise WorkerError(
                    f"worker {node.node_id} answered {response.status_code} "
                    f"{str(error['code'])[:64]!r}; see its log",
                    details={"node_id": node.node_id, "status": response.status_code},
                )
            raise RemoteError(
                response.status_code,
                str(error["code"]),
                str(error["message"]),
                dict(error.get("details") or {}),
            )
        except (ValueError, KeyError, TypeError):
            raise WorkerUnavailable(
                f"worker {node.node_id} answered {response.status_code}",
                details={"node_id": node.node_id},
            ) from None

    def nudge(self, session_id: str) -> None:
        """Tell the owner now that a message was queued; a failure is only logged. Nudges of
        one session coalesce: while one is in flight, any number more make one more after
        it (the sender reads its whole queue when woken), not one call per message."""
        if session_id in self._nudging:
            self._nudging[session_id] = True
            return
        self._nudging[session_id] = False

        async def nudge() -> None:
            try:
                while True:
                    await self._quietly(self.call(session_id, "wake", timeout=NUDGE_TIMEOUT))
                    if not self._nudging.get(session_id):
                        return
                    self._nudging[session_id] = False
            finally:
                self._nudging.pop(session_id, None)

        self._spawn(nudge())

    def spawn_post(self, node: NodeRecord, path: str) -> None:
        """`post` in the background; a failure is only logged."""
        self._spawn(self._quietly(self.post(node, path, {}, timeout=NUDGE_TIMEOUT)))

    def wake_workers(self) -> None:
        """Every live worker runs a placement round now (a session wants to run)."""
        self._spawn(self._quietly(self.wake_all()))

    async def wake_all(self, but: str | None = None) -> None:
        """`wake_workers`, awaited; `but` is left out (the caller itself)."""
        now = self.clock()
        self._nodes_at = 0.0
        for node in (await self.nodes()).values():
            live = now - node.heartbeat_at < self.ttl and not node.draining
            if node.address and node.role == "worker" and live and node.node_id != but:
                await self._quietly(self.post(node, "/internal/claim", {}, timeout=NUDGE_TIMEOUT))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _quietly(call: Awaitable[Any]) -> None:
        try:
            await call
        except Exception as exc:  # a hint only: the worker's own rounds catch up
            log.debug("cluster nudge not delivered: %s", exc)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


class WorkerOps(Protocol):
    """What a worker does for the API (service.cluster.agent.WorkerAgent)."""

    async def claim_now(self) -> None: ...

    async def session_op(self, session_id: str, op: str, args: dict[str, Any]) -> Response: ...


SESSION_OPS = frozenset(
    {"reconcile", "restart", "logout", "qr", "pairing-code", "wake", "remove", "release", "call"}
)


def internal_routes(ops: WorkerOps) -> list[Route]:
    """The worker's RPC endpoints (behind a RequestGuard signing `/internal`)."""

    async def claim(request: Request) -> Response:
        await ops.claim_now()
        return JSONResponse({"ok": True})

    async def session(request: Request) -> Response:
        session_id = request.path_params["session_id"]
        op = request.path_params["op"]
        if len(session_id) > 64 or not re.fullmatch(ID_PATTERN, session_id):
            raise ValidationFailed("session_id", "is not a session id")
        if op not in SESSION_OPS:
            raise ApiError(f"unknown operation {op!r}", code="unknown_operation")
        try:
            args = json.loads(await request.body() or b"{}")
        except ValueError:
            raise MalformedJson("the body is not JSON") from None
        if not isinstance(args, dict):
            raise MalformedJson("the body must be a JSON object")
        return await ops.session_op(session_id, op, args)

    return [
        Route("/internal/claim", claim, methods=["POST"]),
        Route("/internal/sessions/{session_id}/{op}", session, methods=["POST"]),
    ]
