"""A worker process's part in the cluster: it runs the sessions whose leases it holds.

`ClusterNode` decides which sessions this worker holds (heartbeats, leases, placement);
the agent turns each change into the runtime's work. A session gained is settled (sends its
previous worker left in flight fail as interrupted, as after a crash) and started from its
profile; a session lost is closed without a word written (its new owner speaks for it now);
a session given up on purpose (drain, rebalance, stopped) finishes its send in flight and
closes its browser before the lease goes, so the next owner opens a profile no one holds.
It also answers the API's calls for what needs a session's page (`session_op`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from starlette.responses import JSONResponse, Response

from adapters.base import PAGE_OPS
from adapters.webjs import WebJsEngine
from service.cluster.node import ClusterNode
from service.cluster.rpc import RpcClient, SessionUnassigned
from service.errors import ValidationFailed
from service.messaging.messenger import Messenger
from service.sessions.manager import SessionManager
from service.sessions.runtime import SessionRuntime
from service.store import Store
from service.store.base import Lease

log = logging.getLogger("service.cluster")

# How long a session leaving this worker waits for wa-js to settle the sends its page holds.
HANDOVER_SETTLE = 10.0


class WorkerAgent:
    """Runs what `node` holds with `runtime` and `messenger`; answers internal calls."""

    def __init__(
        self,
        node: ClusterNode,
        store: Store,
        manager: SessionManager,
        runtime: SessionRuntime,
        messenger: Messenger,
        webjs: WebJsEngine,
        rpc: RpcClient | None = None,
    ) -> None:
        self.node = node
        self.store = store
        self.manager = manager
        self.runtime = runtime
        self.messenger = messenger
        self.webjs = webjs
        # To tell the other workers at once that sessions were let go (else: their next round).
        self.rpc = rpc
        node.on_acquired = self._acquired
        node.on_lost = self._lost
        node.on_released = self._released
        node.before_release = self._before_release
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.create_task(self.node.run(), name=f"cluster:{self.node.node_id}")
        self._spawn(self._poll_queues())

    async def _poll_queues(self) -> None:
        """The fallback for a nudge that never came (the api could not reach us): every
        owned session's sender looks at its queue every third of the lease ttl."""
        while True:
            await asyncio.sleep(self.node.ttl / 3)
            for session_id in list(self.node.owned):
                self.messenger.wake(session_id)

    async def stop(self) -> None:
        """A clean exit: every session is handed over (closed, then its lease released), so
        the other workers take them at once instead of after the lease ttl."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        # The leases stay renewed while the browsers close.
        self.node.draining = True
        keeper = asyncio.create_task(self.node.keep_alive())
        try:
            # Close every browser at once (a worker may hold dozens), then give the leases up.
            await asyncio.gather(
                *(self._before_release(sid) for sid in list(self.node.owned)),
                return_exceptions=True,
            )
            released = await self.node.drain()
            log.info("worker %s handed over %d sessions", self.node.node_id, len(released))
            if released and self.rpc is not None:
                await self.rpc.wake_all(but=self.node.node_id)
        except Exception as exc:  # the store is down: the leases expire by themselves
            log.warning("worker %s could not hand its sessions over: %s", self.node.node_id, exc)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- what the node reports ---------------------------------------------------------------

    def _acquired(self, lease: Lease) -> None:
        self._spawn(self._take(lease.session_id))

    async def _take(self, session_id: str) -> None:
        try:
            record = await self.store.get_session(session_id)
            if record is None:
                return
            log.info("worker %s takes session %s", self.node.node_id, session_id)
            await self.messenger.take_over(session_id)
            await self.manager.apply(session_id)
        except LookupError:
            return  # lost again already, or deleted
        except Exception:
            log.exception("worker %s: starting session %s failed", self.node.node_id, session_id)

    def _released(self, session_id: str) -> None:
        if self.rpc is not None:
            self.rpc.wake_workers()

    def _lost(self, session_id: str) -> None:
        log.warning("worker %s lost the lease of session %s", self.node.node_id, session_id)
        self._spawn(self._drop(session_id))

    async def _drop(self, session_id: str) -> None:
        await self.runtime.detach(session_id)
        await self.messenger.hand_over(session_id)

    async def _before_release(self, session_id: str) -> None:
        record = await self.store.get_session(session_id)
        # The send in flight finishes, and wa-js settles what it holds (bounded), before
        # the page closes: closing it would fail those sends as interrupted.
        await self.messenger.hand_over(session_id)
        await self.webjs.quiesce(session_id, timeout=HANDOVER_SETTLE)
        if record is not None and record.desired_state != "running":
            # Stopped on purpose: say so while the lease is still ours.
            await self.manager.apply(session_id)
        else:
            await self.runtime.detach(session_id)
        if not await self.runtime.settled(session_id):
            # A browser that would not close must not be left on a profile the next owner
            # opens: end it the hard way while the lease is still ours.
            log.warning("session %s: browser did not close; killing it", session_id)
            await self.runtime.kill(session_id)

    # -- what the API asks -----------------------------------------------------------------

    async def claim_now(self) -> None:
        self.node.wake()

    async def session_op(self, session_id: str, op: str, args: dict[str, Any]) -> Response:
        if op == "release":
            self.runtime.release(session_id)
            return JSONResponse({"ok": True})
        if session_id not in self.node.owned:
            self.node.wake()
            raise SessionUnassigned(
                f"session {session_id!r} is not on this worker (it is being moved); retry",
                details={"session_id": session_id, "node_id": self.node.node_id},
            )
        match op:
            case "wake":
                self.messenger.wake(session_id)
            case "reconcile":
                record = await self.manager.get(session_id)
                if record.provider_mode == "meta":
                    await self.webjs.stop(record, handover=True)
                await self.manager.apply(session_id)
            case "restart":
                await self.manager.restart(session_id)
            case "logout":
                await self.manager.logout(session_id)
            case "qr":
                code = await self.manager.qr(session_id)
                return JSONResponse({"qr": code.qr, "expires_at": code.expires_at})
            case "pairing-code":
                phone = args.get("phone")
                if not isinstance(phone, str):
                    raise ValidationFailed("phone", "must be a string")
                return JSONResponse({"code": await self.manager.pairing_code(session_id, phone)})
            case "call":
                name, op_args = args.get("op"), args.get("args")
                if not isinstance(name, str) or name not in PAGE_OPS:
                    raise ValidationFailed("op", "is not a page operation")
                if not isinstance(op_args, dict):
                    raise ValidationFailed("args", "must be an object")
                value = await self.manager.call(session_id, name, op_args)
                return JSONResponse({"value": value})
            case "remove":
                keep_device = args.get("keep_device", False)
                if not isinstance(keep_device, bool):
                    raise ValidationFailed("keep_device", "must be a boolean")
                await self.runtime.remove(session_id, unlink=not keep_device)
                self.messenger.forget(session_id)
        return JSONResponse({"ok": True})
