"""The session runtime: one supervised worker per running session, restored on boot."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from service.browser import BridgeError, PageBridge
from service.browser.process import kill_processes, profile_processes
from service.errors import Conflict, NoQr, SessionNotFound
from service.models.events import PairingCodeGenerated
from service.sessions.layout import profile_dir, remove_tree
from service.sessions.state import StatusWriter
from service.sessions.worker import SessionWorker, WorkerContext
from service.store import SessionRecord

log = logging.getLogger("service.sessions")

# How long an explicit stop, logout or delete waits for the browser to close.
STOP_TIMEOUT = 30.0
# How long a delete waits for the page to log out before it goes on without.
UNLINK_TIMEOUT = 15.0


class SessionRuntime:
    """Makes each session's observed status follow its desired_state."""

    def __init__(self, ctx: WorkerContext, owns: Callable[[str], bool] | None = None) -> None:
        self.ctx = ctx
        # In a cluster a worker runs only the sessions whose lease it holds (None: all).
        self.owns = owns
        self.workers: dict[str, SessionWorker] = {}
        self._lock = asyncio.Lock()
        self._closing = False
        # Sessions whose browser must not start now: a logout or delete is under way.
        self._held: set[str] = set()

    @property
    def status(self) -> StatusWriter:
        return self.ctx.status

    async def start(self) -> None:
        """Start the browser driver (the engines restore the sessions)."""
        await self.ctx.launcher.start()

    def stopping(self) -> None:
        """The service was told to stop (called from its signal handler, so it only sets
        flags): no session starts any more, and a browser that ends is no crash."""
        self._closing = True
        self.ctx.shutting_down = True

    async def shutdown(self, timeout: float = STOP_TIMEOUT) -> None:
        """Close every browser cleanly; statuses stay as they are for the next boot."""
        self.stopping()
        workers = list(self.workers.values())
        for worker in workers:
            worker.stop(silent=True)
        tasks = [w.task for w in workers if w.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        await self.ctx.launcher.stop()

    async def reconcile(self, session_id: str) -> None:
        async with self._lock:
            if self._closing or session_id in self._held:
                return
            record = await self.ctx.store.get_session(session_id)
            worker = self.workers.get(session_id)
            if record is None:
                return
            if self.owns is not None and not self.owns(session_id):
                # Another node's now (or nobody's yet): close ours, say nothing.
                if worker is not None and not worker.stopping:
                    worker.stop(silent=True)
                return
            if record.desired_state == "running":
                if worker is None or worker.stopping:
                    if worker is None:
                        # So the API's answer already shows the launch under way.
                        await self.status.move(record, "initializing")
                    self._spawn(session_id, after=worker)
            elif worker is not None and not worker.stopping:
                worker.stop()
            elif worker is None and record.status != "stopped":
                # Nothing runs it (left so by a crash, or never started): say so.
                await self.status.move(
                    record, "stopped", changes={"qr": None, "qr_expires_at": None}
                )

    async def detach(self, session_id: str) -> None:
        """Close the session's browser and leave its status to whoever takes it over."""
        async with self._lock:
            worker = self.workers.get(session_id)
            if worker is not None and not worker.stopping:
                worker.stop(silent=True)

    async def settled(self, session_id: str, timeout: float = STOP_TIMEOUT) -> bool:
        """Wait (bounded) until no browser of the session runs; False if one still does."""
        worker = self.workers.get(session_id)
        if worker is None or worker.task is None:
            return True
        done, _ = await asyncio.wait([worker.task], timeout=timeout)
        return bool(done)

    def _spawn(self, session_id: str, after: SessionWorker | None) -> None:
        worker = SessionWorker(session_id, self.ctx)
        self.workers[session_id] = worker
        worker.start(after=after.task if after else None)
        assert worker.task is not None
        worker.task.add_done_callback(lambda _t: self._forget(worker))

    def _forget(self, worker: SessionWorker) -> None:
        if self.workers.get(worker.session_id) is worker:
            del self.workers[worker.session_id]

    async def _hold_and_stop(self, session_id: str, reason: str) -> None:
        """Keep the session from starting, and make sure no browser uses its profile."""
        async with self._lock:
            self._held.add(session_id)
        worker = self.workers.get(session_id)
        if worker is None or worker.task is None:
            return
        worker.stop(reason=reason)
        done, _ = await asyncio.wait([worker.task], timeout=STOP_TIMEOUT)
        if not done:
            # Stuck (a hung launch or page): end it the hard way before anyone touches the
            # profile on disk.
            log.warning("session %s did not stop in %.0f s; killing it", session_id, STOP_TIMEOUT)
            await self.kill(session_id)

    async def kill(self, session_id: str) -> None:
        """End the session's supervisor and every process on its profile (stuck closing)."""
        worker = self.workers.get(session_id)
        if worker is not None and worker.task is not None:
            worker.task.cancel()
        record = await self.ctx.store.get_session(session_id)
        if record is not None:
            profile = profile_dir(self.ctx.sessions_root, record.workspace_id, session_id)
            await asyncio.to_thread(kill_processes, profile_processes(profile))

    def release(self, session_id: str) -> None:
        """End a hold taken by `remove` once the session's rows and files are gone."""
        self._held.discard(session_id)

    async def restart(self, session_id: str) -> None:
        worker = self.workers.get(session_id)
        if worker is not None and not worker.stopping:
            worker.restart()
        else:
            await self.reconcile(session_id)

    async def logout(self, session_id: str) -> None:
        """Unlink the device (when the page can), close the browser, wipe the profile."""
        record = await self._record(session_id)
        worker = self.workers.get(session_id)
        if worker is not None and worker.bridge is not None:
            try:
                await worker.bridge.logout()
            except BridgeError as exc:
                log.warning("session %s: in-page logout failed: %s", session_id, exc)
        try:
            await self._hold_and_stop(session_id, "logout")
            remove_tree(profile_dir(self.ctx.sessions_root, record.workspace_id, session_id))
            await self.ctx.store.update_session(
                session_id, {"phone_number": None, "qr": None, "qr_expires_at": None}
            )
        finally:
            self.release(session_id)
        await self.reconcile(session_id)

    async def remove(self, session_id: str, *, unlink: bool = True) -> None:
        """Stop the session for good; it stays held until `release` (after the purge).
        With `unlink`, a page that is logged in logs out first, so the phone no longer
        lists the device; a session whose browser is not running is not started for it."""
        async with self._lock:
            self._held.add(session_id)
        worker = self.workers.get(session_id)
        if unlink and worker is not None and worker.logged_in():
            await self._unlink(worker)
        await self._hold_and_stop(session_id, "deleted")

    async def _unlink(self, worker: SessionWorker) -> None:
        # The session is going: what the page says while it logs out (logged out, a new
        # QR) is no longer its status.
        worker.mute()
        bridge = worker.bridge
        if bridge is None:
            return
        try:
            await bridge.logout(timeout=UNLINK_TIMEOUT)
        except Exception as exc:  # whatever the page did, the delete goes on
            log.warning(
                "session %s: unlinking the device before the delete failed (%s); it may "
                "still be listed on the phone",
                worker.session_id,
                exc,
            )
        else:
            log.info("session %s: device unlinked before the delete", worker.session_id)

    async def pairing_code(self, session_id: str, phone: str) -> str:
        """Ask WhatsApp for a link code for `phone`; recorded as pairing_code_generated."""
        record = await self._record(session_id)
        worker = self.workers.get(session_id)
        if worker is None or worker.bridge is None or record.status != "qr_required":
            raise Conflict(
                f"session is {record.status}; a pairing code needs it waiting for login "
                "(status qr_required)",
                code="session_not_ready",
                details={"status": record.status},
            )
        try:
            code = await worker.pairing_code(phone)
        except BridgeError as exc:
            raise Conflict(
                f"WhatsApp refused the pairing code: {exc}", code="pairing_failed"
            ) from None
        await self.ctx.store.update_session(
            session_id, {}, [PairingCodeGenerated(code=code).new_event()]
        )
        return code

    async def current_qr(self, session_id: str, wait: float = 5.0) -> SessionRecord:
        """The session with its current QR. Between two QRs (the page went idle and its
        worker is refreshing it) this waits up to `wait` seconds for the next one."""
        record = await self._record(session_id)
        if record.status != "qr_required":
            raise NoQr(record.status)
        if record.qr is not None:
            return record
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            record = await self._record(session_id)
            if record.qr is not None:
                return record
            await asyncio.sleep(0.1)
        raise Conflict(
            "no QR is available yet; retry in a moment",
            code="qr_not_ready",
            details={"status": record.status},
        )

    async def _record(self, session_id: str) -> SessionRecord:
        record = await self.ctx.store.get_session(session_id)
        if record is None:
            raise SessionNotFound(session_id)
        return record

    def memory_sample(self) -> dict[str, int]:
        """PSS in bytes of each running session's Chromium tree (slow: call in a thread)."""
        return {
            sid: w.bridge.browser.memory_bytes()
            for sid, w in list(self.workers.items())
            if w.bridge is not None
        }

    def ready(self) -> bool:
        """The browser driver is up and Chromium is where the settings say."""
        return self.ctx.launcher.ready()

    def usable(self, session_id: str) -> bool:
        """Whether the session's page is logged in and online, as wa-js reports it now."""
        worker = self.workers.get(session_id)
        return worker is not None and worker.usable()

    def bridge(self, session_id: str) -> PageBridge | None:
        """The page of a running session, or None while its browser is down."""
        worker = self.workers.get(session_id)
        return worker.bridge if worker is not None else None
