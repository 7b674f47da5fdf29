"""One session's supervisor: launch its browser, follow the page, restart it when it dies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from service.browser import BridgeError, ChromiumLauncher, LaunchError, PageBridge
from service.browser.bridge import BridgeEvent, WaJsConfig
from service.browser.profile_lock import lock_host
from service.clock import iso
from service.links import SignedLinks
from service.models.events import (
    GroupJoined,
    GroupParticipantsChanged,
    PresenceParticipant,
    PresenceUpdated,
    QrCodeGenerated,
)
from service.netguard import proxy_host_problem
from service.secretbox import SecretBox
from service.sessions.calls import Replier, on_incoming_call
from service.sessions.layout import profile_dir
from service.sessions.polls import on_poll_vote
from service.sessions.proxy import ProxyUnavailable, open_proxy
from service.sessions.state import StatusWriter
from service.store import SessionRecord, Store

log = logging.getLogger("service.sessions")

# Bridge events that are about messages, not the session: handed to the engine.
MESSAGE_EVENTS = frozenset({"message", "ack", "send_result", "reaction", "edited", "revoked"})


class PageListener(Protocol):
    """Who hears a page's message events and its end (the WhatsApp Web engine)."""

    async def on_bridge_event(self, session: SessionRecord, event: BridgeEvent) -> None: ...

    async def on_page_closed(self, session: SessionRecord) -> None:
        """What the page still had in hand is gone: it closed, reloaded or logged out."""


# Stream info values that mean the socket is down or not up yet, whatever the mode says
# (wa-js has no "disconnected" event; these, `online` and the mode are the signals).
DOWN_INFO = frozenset({"OFFLINE", "CONNECTING", "OPENING"})


def usable(conn: dict[str, Any] | None) -> bool:
    """Logged in and able to send, as wa-js reports it: authenticated, stream mode MAIN,
    online, the socket not down. (Not isMainReady: it latches on the QR screen.)"""
    return bool(
        conn
        and conn.get("authenticated")
        and conn.get("mode") == "MAIN"
        and conn.get("online")
        and conn.get("info") not in DOWN_INFO
    )


@dataclass
class WorkerContext:
    """What every worker shares: built once by the runtime."""

    store: Store
    status: StatusWriter
    launcher: ChromiumLauncher
    launch_slots: asyncio.Semaphore
    qr_links: SignedLinks
    sessions_root: Path
    wa_web_url: str
    wa_js_path: str | None
    memory_limit_bytes: int
    qr_ttl: float = 20.0
    # Seconds a session may wait for a scan, from its first QR, before it stops (0: never).
    qr_timeout: float = 300.0
    max_restarts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    stable_after: float = 120.0
    memory_check_interval: float = 15.0
    # From navigation to wa-js's `ready`; past it the run counts as a failed start.
    load_timeout: float = 90.0
    wa_js_config: WaJsConfig = field(default_factory=WaJsConfig)
    pages: PageListener | None = None
    # In a cluster on shared storage: whether a lock naming another host may be cleared
    # (session id, profile, host) -> bool; None opens whatever no local process holds.
    profile_guard: Callable[[str, Path, str], Awaitable[bool]] | None = None
    # Set the moment the service is told to stop (a signal): from then on a browser that
    # ends is part of the stop, not a crash to report and restart.
    shutting_down: bool = False
    # Opens a session's sealed proxy credentials (SIDECAR_ENCRYPTION_KEY).
    secretbox: SecretBox | None = None
    # Queues a call's auto-reply as an API send would (the Messenger).
    replier: Replier | None = None
    # How long the page may take to reject a call (WA_PAGE_TIMEOUT).
    page_timeout: float = 20.0


async def _first(*events: asyncio.Event, timeout: float) -> None:
    """Wait until any of `events` is set, or `timeout` seconds."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


@dataclass(frozen=True)
class Outcome:
    """Why one browser run ended: `stop`, `restart` (asked for), `memory`, `crash`, or
    `proxy` (its proxy cannot be used: no retry helps until the proxy is set again)."""

    kind: str
    detail: str = ""


class SessionWorker:
    """Runs one session's browser until told to stop; crashes restart it with backoff."""

    def __init__(self, session_id: str, ctx: WorkerContext) -> None:
        self.session_id = session_id
        # Every line this session logs carries its id (a field of the JSON log line).
        self.log = logging.LoggerAdapter(log, {"session_id": session_id})
        self.ctx = ctx
        self.bridge: PageBridge | None = None
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self._muted = False
        self._silent = False
        self._stop_reason: str | None = None
        self._stop = asyncio.Event()
        self._restart = asyncio.Event()
        self._events: asyncio.Queue[BridgeEvent] = asyncio.Queue()
        self._loaded = asyncio.Event()
        self._record: SessionRecord | None = None
        # The connection as wa-js last reported it (see `usable`); None while no page runs.
        self.conn: dict[str, Any] | None = None
        # When the current wait for a scan began (its first QR, monotonic); None when the
        # session is not waiting. `_qr_clock` wakes the timeout's watcher when it changes.
        self._qr_since: float | None = None
        self._qr_clock = asyncio.Event()
        self._qr_expired = asyncio.Event()
        self._refreshing: asyncio.Task[None] | None = None

    def start(self, after: asyncio.Task[None] | None = None) -> None:
        """Begin supervising, once `after` (a previous worker of this session) is done."""
        self.task = asyncio.create_task(self._main(after), name=f"session:{self.session_id}")

    def stop(self, *, reason: str | None = None, silent: bool = False) -> None:
        """Ask the worker to close its browser; `silent` leaves the status as it is
        (the service is shutting down and will restore the session on boot)."""
        self.stopping = True
        self._silent = silent
        self._stop_reason = reason
        self._stop.set()

    def restart(self) -> None:
        """Close the browser and open it again; an operator's restart begins a new wait
        for a scan."""
        self._scan_wait(None)
        self._restart.set()

    def mute(self) -> None:
        """From now on the page's word on the session's status is ignored (it is being
        deleted); its messages and acks still count."""
        self._muted = True

    def logged_in(self) -> bool:
        """Whether the running page holds a login (online or not), as wa-js last said."""
        return self.bridge is not None and bool(self.conn and self.conn.get("authenticated"))

    async def record(self) -> SessionRecord:
        record = await self.ctx.store.get_session(self.session_id)
        if record is None:
            raise LookupError(self.session_id)
        return record

    async def move(self, status: str, **kwargs: Any) -> SessionRecord:
        return await self.ctx.status.move(await self.record(), status, **kwargs)

    async def _main(self, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.gather(after, return_exceptions=True)
        failures = 0
        final: tuple[str, str | None, dict[str, Any]] = ("stopped", None, {})
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    outcome = await self._run_once()
                except LookupError:
                    raise
                except Exception as exc:
                    # Whatever went wrong, supervision goes on: it counts as a crash.
                    self.log.exception("session %s: the browser run failed", self.session_id)
                    outcome = Outcome("crash", f"internal error: {type(exc).__name__}")
                if self._stop.is_set() or outcome.kind == "stop":
                    break
                if self.ctx.shutting_down:
                    # A signal to the whole process group reaches Playwright's driver too,
                    # which closes every browser at once: that is the stop, not a crash.
                    self._silent = True
                    break
                if outcome.kind == "restart":
                    failures = 0
                    continue
                if outcome.kind == "proxy":
                    self.log.error("session %s: %s", self.session_id, outcome.detail)
                    final = ("failed", "proxy_unavailable", {"last_error": outcome.detail})
                    break
                if outcome.kind == "memory":
                    self.log.warning(
                        "session %s over its memory ceiling; restarting", self.session_id
                    )
                    await self.move("initializing", reason="memory_limit")
                    continue
                if time.monotonic() - started > self.ctx.stable_after:
                    failures = 0
                failures += 1
                self.log.warning(
                    "session %s browser ended (%s), failure %d",
                    self.session_id,
                    outcome.detail,
                    failures,
                )
                if failures > self.ctx.max_restarts:
                    final = ("failed", "crashed", {"last_error": outcome.detail})
                    break
                await self.move(
                    "initializing",
                    reason="browser_restart",
                    changes={"last_error": outcome.detail},
                )
                delay = min(self.ctx.backoff_base * 2 ** (failures - 1), self.ctx.backoff_max)
                # A restart asked for during the backoff only cuts the wait short; the
                # failures keep counting, so a crash loop still ends in `failed`.
                await _first(self._stop, self._restart, timeout=delay)
                self._restart.clear()
            if self._stop.is_set():
                final = ("stopped", self._stop_reason, {})
        except LookupError:
            return  # the session was deleted underneath us
        finally:
            self.stopping = True
        if not self._silent:
            status, reason, changes = final
            with contextlib.suppress(LookupError):
                await self.move(
                    status, reason=reason, changes={"qr": None, "qr_expires_at": None, **changes}
                )

    async def _run_once(self) -> Outcome:
        await self.move("initializing", changes={"qr": None, "qr_expires_at": None})
        record = await self.record()
        profile = profile_dir(self.ctx.sessions_root, record.workspace_id, record.session_id)
        host = lock_host(profile)
        if (
            host is not None
            and host != socket.gethostname()
            and self.ctx.profile_guard is not None
            and not await self.ctx.profile_guard(self.session_id, profile, host)
        ):
            return Outcome("crash", f"the profile is in use on host {host}")
        # Read from the store at each start, so a PATCHed proxy applies from the next one
        # (and a cluster worker uses what the api role wrote).
        try:
            proxy = open_proxy(record, self.ctx.secretbox)
        except ProxyUnavailable as exc:
            return Outcome("proxy", str(exc))
        if proxy is not None and (problem := await proxy_host_problem(proxy.server)):
            return Outcome("proxy", f"proxy {proxy.server} {problem}")
        async with self.ctx.launch_slots:
            if self._stop.is_set():
                return Outcome("stop")
            self._loaded.clear()
            self.conn = None
            # A fresh queue per page: nothing a closed page said may reach the next one.
            self._events = asyncio.Queue()
            try:
                bridge = await PageBridge.open(
                    self.ctx.launcher,
                    profile,
                    self.ctx.wa_web_url,
                    wa_js_path=self.ctx.wa_js_path,
                    config=self.ctx.wa_js_config,
                    on_event=self._events.put,
                    proxy=proxy,
                )
            except LaunchError as exc:
                return Outcome("crash", str(exc))
        self.bridge = bridge
        consumer = asyncio.create_task(self._consume(self._events))
        waits = {
            asyncio.create_task(self._crashed(bridge)): "crash",
            asyncio.create_task(self._wait(self._stop)): "stop",
            asyncio.create_task(self._wait(self._restart)): "restart",
            asyncio.create_task(self._watch_memory(bridge)): "memory",
            asyncio.create_task(self._load_deadline(bridge)): "crash",
            asyncio.create_task(self._qr_deadline()): "stop",
        }
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finished = {waits[t]: t.result() or "" for t in done}
            kind = next(k for k in ("stop", "restart", "memory", "crash") if k in finished)
            self._restart.clear()
            return Outcome(kind, finished[kind] if kind == "crash" else "")
        finally:
            for task in waits:
                task.cancel()
            if self._refreshing is not None:
                self._refreshing.cancel()
                self._refreshing = None
            try:
                # Events the page sent still count (inbound messages, acks); they are handled
                # while the page is still there to download media from.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._events.join(), 10)
                self.bridge = None
                self.conn = None
                await bridge.close()
            finally:
                self.bridge = None
                self.conn = None
                consumer.cancel()
                await self._page_closed()

    async def _page_closed(self) -> None:
        if self.ctx.pages is None:
            return
        try:
            await self.ctx.pages.on_page_closed(await self.record())
        except LookupError:
            pass
        except Exception:
            self.log.exception("session %s: closing the page's sends failed", self.session_id)

    @staticmethod
    async def _wait(event: asyncio.Event) -> str:
        await event.wait()
        return ""

    @staticmethod
    async def _crashed(bridge: PageBridge) -> str:
        await bridge.browser.closed.wait()
        return bridge.browser.close_reason or ""

    async def _load_deadline(self, bridge: PageBridge) -> str:
        """Returns (ending the run) when wa-js does not get ready in time; never otherwise."""
        try:
            await asyncio.wait_for(self._loaded.wait(), self.ctx.load_timeout)
        except TimeoutError:
            try:
                probe = await bridge.probe()
            except BridgeError:
                probe = {}
            return load_failure(probe, self.ctx.load_timeout, self.ctx.wa_web_url)
        await asyncio.Event().wait()
        return ""

    async def _qr_deadline(self) -> None:
        """Returns (stopping the session for good) once the wait for a scan has lasted
        `qr_timeout` seconds, or an idle QR could not be refreshed; never otherwise."""
        limit = self.ctx.qr_timeout
        while not self._qr_expired.is_set():
            self._qr_clock.clear()
            if self._qr_since is None or limit <= 0:
                await _first(self._qr_clock, self._qr_expired, timeout=3600)
                continue
            left = self._qr_since + limit - time.monotonic()
            if left <= 0:
                self._qr_expired.set()
                break
            await _first(self._qr_clock, self._qr_expired, timeout=left)
        self.log.info("session %s: the wait for a scan is over (qr_timeout)", self.session_id)
        # desired_state first, so nothing (a boot, a cluster reconcile) starts it again;
        # then the stop, whose final move records `stopped` with reason qr_timeout.
        # A session deleted (or, in a cluster, a lease lost) meanwhile just stops; a store
        # that fails otherwise makes this run a crash, retried with the usual backoff.
        with contextlib.suppress(LookupError):
            await self.ctx.store.update_session(self.session_id, {"desired_state": "stopped"})
        self.stop(reason="qr_timeout")

    def _scan_wait(self, since: float | None) -> None:
        """Begin (a time) or end (None) the current wait for a scan."""
        if since is not None and self._qr_since is not None:
            return  # the wait goes on: its clock runs from its first QR
        self._qr_since = since
        self._qr_clock.set()

    def _qr_idle(self) -> None:
        """wa-js stopped rotating the QR: ask for a fresh one while the wait has time left."""
        self._scan_wait(time.monotonic())
        limit = self.ctx.qr_timeout
        assert self._qr_since is not None
        if limit > 0 and time.monotonic() >= self._qr_since + limit:
            self._qr_expired.set()
            return
        bridge = self.bridge
        if bridge is None or (self._refreshing is not None and not self._refreshing.done()):
            return
        self._refreshing = asyncio.create_task(self._refresh_qr(bridge))

    async def _refresh_qr(self, bridge: PageBridge) -> None:
        try:
            # wa-js answers once the new QR is there; it arrives as an auth_code event.
            await bridge.refresh_qr()
        except BridgeError as exc:
            self.log.warning("session %s: refreshing the idle QR failed: %s", self.session_id, exc)
            self._qr_expired.set()

    async def _watch_memory(self, bridge: PageBridge) -> None:
        """Returns when the browser's process tree exceeds the ceiling; never without one."""
        if self.ctx.memory_limit_bytes <= 0:
            await asyncio.Event().wait()
        while True:
            await asyncio.sleep(self.ctx.memory_check_interval)
            used = await asyncio.to_thread(bridge.browser.memory_bytes)
            if used > self.ctx.memory_limit_bytes:
                return

    async def _consume(self, events: asyncio.Queue[BridgeEvent]) -> None:
        while True:
            event = await events.get()
            try:
                await self._handle(event)
            except LookupError:
                # The session was deleted: this worker has nothing left to run.
                self.stop(silent=True)
            except Exception:
                self.log.exception("session %s: handling %s failed", self.session_id, event.type)
            finally:
                events.task_done()

    async def _handle(self, event: BridgeEvent) -> None:
        payload = event.payload or {}
        if event.type == "group_participants":
            # News like a message: it counts while the page closes too.
            await self._group_participants(payload)
            return
        quiet = self.stopping or self._muted or self.ctx.shutting_down or self._qr_expired.is_set()
        if quiet and event.type not in MESSAGE_EVENTS:
            # Closing (or handed over to another engine, the QR wait timed out, or the
            # service stopping): the session's status is no longer this page's to say.
            # Messages and acks still count.
            return
        if event.type in MESSAGE_EVENTS:
            # Messages need only who the session is, which never changes: spare the store
            # a read per message and ack.
            if self._record is None:
                self._record = await self.record()
            if self.ctx.pages is not None:
                await self.ctx.pages.on_bridge_event(self._record, event)
            return
        record = self._record = await self.record()
        match event.type:
            case "ready":
                if self._loaded.is_set():
                    await self._page_closed()  # the page reloaded: its sends are gone
                self._loaded.set()
                conn = payload.get("conn")
                if isinstance(conn, dict):
                    record = await self._follow(record, conn)
                if payload.get("auth_code") and not usable(self.conn):
                    await self._qr(record, payload["auth_code"])
            case "state":
                await self._follow(record, payload)
            case "auth_code":
                if payload:
                    await self._qr(record, payload)
            case "qr_idle":
                # The old QR cannot be scanned any more; a refreshed one replaces it.
                await self.ctx.status.move(
                    record, record.status, changes={"qr": None, "qr_expires_at": None}
                )
                self._qr_idle()
            case "authenticated":
                # A new link was scanned; wa-js never says this for a restored session.
                self._scan_wait(None)
                await self.ctx.status.move(
                    record, "authenticating", changes={"qr": None, "qr_expires_at": None}
                )
            case "logout":
                await self._logged_out(record)
                await self._page_closed()  # sends of an unlinked device never settle
            case "presence":
                await self._presence(payload)
            case "call":
                # Handled inline: the rejection must happen while the call still rings.
                await on_incoming_call(
                    record,
                    payload,
                    store=self.ctx.store,
                    reject=self._reject_call,
                    replier=self.ctx.replier,
                )
            case "poll_vote":
                await on_poll_vote(record, payload, store=self.ctx.store)
            case "bridge_error":
                self.log.warning("session %s bridge error: %s", self.session_id, payload)
            case _:
                self.log.debug("session %s: unknown bridge event %s", self.session_id, event.type)

    async def _follow(self, record: SessionRecord, conn: dict[str, Any]) -> SessionRecord:
        """Move the session to what wa-js's connection state says."""
        self.conn = conn
        if not conn.get("authenticated"):
            if record.status in ("connected", "disconnected"):
                return await self._logged_out(record)
            # The QR flow (auth codes) and the logout event drive the status; a fresh link's
            # isAuthenticated() may lag its authenticated event.
            return record
        self._scan_wait(None)  # logged in: no scan is awaited any more
        if usable(conn):
            return await self._connected(record, conn.get("me"))
        offline = conn.get("mode") == "MAIN" and not conn.get("online")
        if offline or record.status in ("connected", "disconnected"):
            # Logged in but cut off (offline, the socket down, CONFLICT, TOS_BLOCK, ...).
            # A login still opening its socket is not that: it stays where it is.
            if offline:
                reason = "offline"
            elif conn.get("mode") != "MAIN":
                reason = str(conn.get("mode")).lower()
            else:
                reason = str(conn.get("info") or "offline").lower()
            return await self.ctx.status.move(record, "disconnected", reason=reason)
        if record.status == "qr_required":
            # Linked while the QR was up (the authenticated event says the same).
            return await self.ctx.status.move(
                record, "authenticating", changes={"qr": None, "qr_expires_at": None}
            )
        return record  # a restored login still loading stays `initializing`

    async def _logged_out(self, record: SessionRecord) -> SessionRecord:
        return await self.ctx.status.move(
            record,
            "qr_required",
            reason="logged_out",
            changes={"phone_number": None, "qr": None, "qr_expires_at": None},
        )

    async def _qr(self, record: SessionRecord, code: dict[str, Any]) -> None:
        full = code.get("full_code")
        if not isinstance(full, str) or not full or full == record.qr:
            return
        self._scan_wait(time.monotonic())
        expires = time.time() + self.ctx.qr_ttl
        event = QrCodeGenerated(
            qr=full, expires_at=iso(expires), image_url=self.ctx.qr_links.url(record.session_id)
        )
        await self.ctx.status.move(
            record,
            "qr_required",
            changes={"qr": full, "qr_expires_at": expires},
            events=[event.new_event()],
        )

    async def _presence(self, payload: dict[str, Any]) -> None:
        """A subscribed contact's presence changed (wa-js's chat.presence_change)."""
        chat = payload.get("id")
        if not isinstance(chat, str):
            return
        state = payload.get("state")
        participants = [
            PresenceParticipant(
                id=p["id"], state=p.get("state") if isinstance(p.get("state"), str) else None
            )
            for p in payload.get("participants") or []
            if isinstance(p, dict) and isinstance(p.get("id"), str)
        ]
        event = PresenceUpdated(
            chat_id=chat,
            online=bool(payload.get("online")),
            state=state if isinstance(state, str) else None,
            participants=participants,
        )
        await self.ctx.store.update_session(self.session_id, {}, [event.new_event()])

    async def _connected(self, record: SessionRecord, me: object) -> SessionRecord:
        phone = str(me) if me else record.phone_number
        return await self.ctx.status.move(
            record,
            "connected",
            changes={"phone_number": phone, "qr": None, "qr_expires_at": None, "last_error": None},
        )

    async def _group_participants(self, payload: dict[str, Any]) -> None:
        """wa-js's group.participant_changed as `group_participants_changed`, and as
        `group_joined` when this account is the one added or joining."""
        data = dict(payload)
        if data.get("action") == "leaver":
            data["action"] = "leave"  # wa-js's d.ts word for what its bundle calls `leave`
        try:
            changed = GroupParticipantsChanged.model_validate(data)
        except ValueError:
            self.log.warning(
                "session %s: a group change the page sent is malformed", self.session_id
            )
            return
        events = [changed.new_event()]
        if changed.includes_me and changed.action in ("add", "join"):
            joined = GroupJoined(
                group_id=changed.group_id, action=changed.action, author=changed.author
            )
            events.append(joined.new_event())
        await self.ctx.store.update_session(self.session_id, {}, events)

    async def _reject_call(self, call_id: str) -> bool:
        """Decline a ringing call through the page (wa-js `call.reject`)."""
        if self.bridge is None:
            return False
        answer = await self.bridge.op(
            "calls.reject", {"id": call_id}, timeout=self.ctx.page_timeout
        )
        return bool(answer.get("ok") and answer.get("value"))

    def usable(self) -> bool:
        """Whether the page is logged in and online right now (wa-js's own report)."""
        return self.bridge is not None and usable(self.conn)

    async def pairing_code(self, phone: str) -> str:
        if self.bridge is None:
            raise BridgeError("the browser is not running")
        code = await self.bridge.pairing_code(phone)
        # Someone is linking right now: the wait for the scan (or the code) starts over.
        self._qr_since = None
        self._scan_wait(time.monotonic())
        return code


def load_failure(probe: dict[str, Any], timeout: float, url: str) -> str:
    """The `last_error` of a page where wa-js never got ready."""
    head = f"WhatsApp Web did not load within {timeout:.0f} s at {url}"
    if probe.get("error"):
        return f"{head}: the wa-js bundle failed: {str(probe['error']).splitlines()[0][:300]}"
    if not probe.get("wpp"):
        return f"{head}: window.WPP never appeared (is WA_JS_PATH the wa-js bundle?)"
    if not probe.get("ready"):
        return f"{head}: wa-js is injected but WhatsApp's own loader never appeared"
    return f"{head}: the page bridge never reported"
