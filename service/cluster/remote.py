"""The api role's view of sessions that run elsewhere: each one's worker does the work.

`RemoteEngine` stands where the browser engine stands in a single process: the session
manager asks it to start, stop, restart, log out, show the QR or a pairing code, and it
asks the worker that holds the session's lease over RPC. A session nobody holds is placed
by the workers themselves (`wake_workers` runs their placement round at once); until one
takes it, the API shows it `initializing`. `RemoteRuntime` keeps the owner's browser off a
session's profile while the API deletes it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from adapters.base import (
    PAGE_TIMEOUT,
    Engine,
    ErrorKind,
    ProviderError,
    ProviderStatus,
    QrCode,
    SendResult,
    not_supported_by_provider,
)
from service.cluster.rpc import RpcClient
from service.errors import Conflict, NoQr
from service.sessions.layout import profile_dir, remove_tree
from service.sessions.state import StatusWriter
from service.store import MessageRecord, SessionRecord, StaleStatus, Store
from service.store.base import NodeRecord

# A logout waits for the browser to close (the runtime's STOP_TIMEOUT, 30 s) and more.
LOGOUT_TIMEOUT = 45.0
# A page operation waits this much longer than the worker's page may take, so the worker's
# own answer (504 `page_timeout`) reaches the client rather than a 503.
PAGE_CALL_MARGIN = 5.0
# A delete may unlink the device first (the runtime's UNLINK_TIMEOUT, 15 s), then does the
# same.
REMOVE_TIMEOUT = 60.0


class RemoteEngine(Engine):
    """Every session's lifecycle, run by the worker that owns it."""

    name = "webjs"

    def __init__(
        self,
        store: Store,
        rpc: RpcClient,
        status: StatusWriter,
        sessions_root: Path,
        page_timeout: float = PAGE_TIMEOUT,
    ) -> None:
        self.page_timeout = page_timeout
        self.store = store
        self.rpc = rpc
        self.statuses = status
        self.sessions_root = sessions_root

    async def start(self, session: SessionRecord) -> None:
        if await self.rpc.owner(session.session_id) is not None:
            await self.rpc.call(session.session_id, "reconcile")
            return
        if session.status in ("stopped", "failed"):
            # Only if no worker has moved it meanwhile: theirs is the newer word.
            with contextlib.suppress(StaleStatus):
                await self.statuses.move_once(session, "initializing")
        self.rpc.wake_workers()

    async def stop(self, session: SessionRecord, *, handover: bool = False) -> None:
        if await self.rpc.owner(session.session_id) is not None:
            await self.rpc.call(session.session_id, "reconcile")
            return
        if not handover and session.status != "stopped":
            # No worker runs it (its worker died, or none took it yet): say so.
            with contextlib.suppress(StaleStatus):
                await self.statuses.move_once(
                    session, "stopped", changes={"qr": None, "qr_expires_at": None}
                )

    async def restart(self, session: SessionRecord) -> None:
        await self.rpc.call(session.session_id, "restart")

    async def qr(self, session: SessionRecord) -> QrCode:
        if session.status != "qr_required":
            raise NoQr(session.status)  # as a worker would answer, without the round trip
        answer = (await self.rpc.call(session.session_id, "qr")).json()
        return QrCode(str(answer["qr"]), answer.get("expires_at"))

    async def pairing_code(self, session: SessionRecord, phone: str) -> str:
        answer = (await self.rpc.call(session.session_id, "pairing-code", {"phone": phone})).json()
        return str(answer["code"])

    async def logout(self, session: SessionRecord) -> None:
        if await self.rpc.owner(session.session_id) is not None:
            # Unlinking closes the browser (up to STOP_TIMEOUT): give it that long.
            await self.rpc.call(session.session_id, "logout", timeout=LOGOUT_TIMEOUT)
            return
        # No browser has the profile open: forget the login on disk.
        remove_tree(profile_dir(self.sessions_root, session.workspace_id, session.session_id))
        await self.store.update_session(session.session_id, {"phone_number": None})

    async def call(self, session: SessionRecord, op: str, args: dict[str, Any]) -> Any:
        # What the worker would answer, without the round trip (it checks its page again).
        if session.provider_mode == "meta":
            raise not_supported_by_provider("meta", op)
        if session.status != "connected":
            raise Conflict(
                "the session is not connected to WhatsApp Web",
                code="session_not_connected",
                details={"status": session.status},
            )
        answer = await self.rpc.call(
            session.session_id,
            "call",
            {"op": op, "args": args},
            timeout=self.page_timeout + PAGE_CALL_MARGIN,
        )
        return answer.json()["value"]

    def status(self, session: SessionRecord) -> ProviderStatus:
        # What the owner last recorded; it re-checks the page itself before each send.
        if session.status != "connected":
            return ProviderStatus(False, f"web session is {session.status}")
        return ProviderStatus(True)

    async def send(self, session: SessionRecord, message: MessageRecord) -> SendResult:
        raise ProviderError(ErrorKind.PROVIDER_DOWN, "the session's worker sends its messages")


class RemoteEngines:
    """The manager's engines in the api role: every session runs on its worker. Two stand-
    ins, one per kind of engine, so a change of provider_mode reaches the worker (which
    closes the browser, or opens one) as it would reach the engines in one process."""

    def __init__(self, web: RemoteEngine, meta: RemoteEngine) -> None:
        self.web = web
        self.meta = meta

    def engine(self, session: SessionRecord) -> Engine:
        return self.meta if session.provider_mode == "meta" else self.web


class RemoteRuntime:
    """Keeps a session's owner from running it while the API deletes it."""

    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc
        self._holders: dict[str, NodeRecord] = {}

    async def remove(self, session_id: str, *, unlink: bool) -> None:
        found = await self.rpc.owner(session_id)
        if found is None:
            return  # no worker runs it: no page could unlink it
        _, node = found
        await self.rpc.call(
            session_id, "remove", {"keep_device": not unlink}, timeout=REMOVE_TIMEOUT
        )
        self._holders[session_id] = node

    def release(self, session_id: str) -> None:
        node = self._holders.pop(session_id, None)
        if node is not None:
            # The id may be used again on that worker (its lease row is gone with the rows).
            self.rpc.spawn_post(node, f"/internal/sessions/{session_id}/release")
