"""The webhook dispatcher: delivers the durable outbox to Laravel, in order per session.

Each session's events form a line; only the head of a line is ever in flight, so Laravel sees
a session's events in the order they were produced, while different sessions deliver in
parallel. 2xx is done; 408, 425, 429, 5xx, timeouts and connection errors retry with
exponential backoff and full jitter (base doubling to a cap) until the event is 24 h old;
any other answer makes it dead at once. Dead events can be listed and replayed, one by one
or in bulk.

An event with no URL (no SIDECAR_WEBHOOK_URL and no `webhook_url` on its session) is not
dead: its line waits, the head parked until its 24 h horizon with `last_error`
NO_WEBHOOK_URL. A session's `webhook_url` set later makes its waiting events due at once
(the store does it in the same write); a dispatcher that starts with a default URL wakes
every waiting line. Past the horizon a waiting event is dead, so a forgotten configuration
cannot grow the outbox without end.

Any number of dispatchers may share one store: before delivering a head, a dispatcher claims
its session's line in the store (`Store.claim_line`, for `claim_ttl` seconds), and records
the attempt only while it still holds the claim (`finish_attempt(owner=...)`), which releases
it. A dispatcher that dies mid-delivery holds its lines until their claims expire; then
another delivers those heads again (at least once: same id, same bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from service.digits import ascii_int
from service.netguard import Refused, Resolver, redact_url, webhook_host_problem
from service.store import (
    NO_WEBHOOK_URL,
    RETRY_WINDOW,
    AppendedEvent,
    ClaimLost,
    OutboxEvent,
    Store,
)
from webhooks.signing import webhook_headers

log = logging.getLogger("webhooks")

RETRYABLE = frozenset({408, 425, 429})
SCAN_INTERVAL = 0.02


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 1.0
    cap: float = 600.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)] (attempt counts from 0)."""
        return rng() * min(self.cap, self.base * 2 ** min(attempt, 40))


class Dispatcher:
    """Delivers outbox events; one task per session line, at most `concurrency` at once."""

    def __init__(
        self,
        store: Store,
        client: httpx.AsyncClient,
        *,
        secret: str,
        default_url: str,
        timeout: float = 10.0,
        concurrency: int = 32,
        retry: RetryPolicy | None = None,
        idle_poll: float = 1.0,
        on_result: Callable[[str], None] | None = None,
        resolver: Resolver | None = None,
        host_check_ttl: float = 30.0,
        owner: str | None = None,
        claim_ttl: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        # Wall-clock seconds, as the store writes them (tests move it past the horizon).
        self.clock = clock
        self.client = client
        self.secret = secret
        self.default_url = default_url
        self.timeout = timeout
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.idle_poll = idle_poll
        self.on_result = on_result
        self.delivered = 0
        self.resolver = resolver
        self.host_check_ttl = host_check_ttl
        # Who claims lines in the store: unique per process unless given (a service that is
        # alone on its store passes a stable one, so after a restart it takes back its own
        # claims at once instead of waiting for them to expire).
        self.owner = owner or f"dispatcher-{secrets.token_hex(8)}"
        # Long enough for one attempt (a host check, then a request bounded by `timeout`).
        self.claim_ttl = claim_ttl if claim_ttl is not None else 2 * timeout + 5.0
        # URL -> (checked until, problem): what its host resolved to, re-checked now and then.
        self._hosts: dict[str, tuple[float, str | None]] = {}
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def on_events(self, events: list[AppendedEvent]) -> None:
        """Store listener: new events (or a replay) wake the loop."""
        self._wake.set()

    async def start(self) -> None:
        """Start delivering; with a default URL, what waited for one goes out first."""
        if self.default_url:
            woken = await self.store.wake_waiting(self.clock())
            if woken:
                log.info("%d webhook event(s) waited for a URL; delivering them now", woken)
        else:
            log.warning(
                "SIDECAR_WEBHOOK_URL is not set: events of sessions without a webhook_url wait"
                " in the outbox until one is set (at most %d h, then they are dead)",
                RETRY_WINDOW // 3600,
            )
        self._task = asyncio.create_task(self._loop(), name="webhook-dispatcher")

    async def stop(self, drain: float = 5.0, timeout: float = 5.0) -> None:
        """Deliver what is due for up to `drain` seconds, then stop taking new work and let
        attempts in flight finish (bounded). What is left waits in the outbox."""
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline and self._task is not None and not self._task.done():
            if not self._busy and not await self.store.due_lines(self.clock(), 1, owner=self.owner):
                break
            await asyncio.sleep(0.05)
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        in_flight = list(self._busy.values())
        if in_flight:
            _, pending = await asyncio.wait(in_flight, timeout=timeout)
            for task in pending:
                task.cancel()

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free = self.concurrency - len(self._busy)
            lines: list[str] = []
            if free > 0:
                try:
                    due = await self.store.due_lines(
                        self.clock(), free + len(self._busy), owner=self.owner
                    )
                    lines = [s for s in due if s not in self._busy][:free]
                except Exception:
                    log.exception("reading the outbox failed")
            for session_id in lines:
                self._launch(session_id)
            if not (lines and len(lines) == free):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_poll)
            # Busy lines fetch their own next events; a scan only finds new lines, so a burst
            # of commits needs no more than one scan per short interval.
            await asyncio.sleep(SCAN_INTERVAL)

    def _count(self, result: str) -> None:
        if self.on_result is not None:
            self.on_result(result)

    def _launch(self, session_id: str) -> None:
        task = asyncio.create_task(self._line(session_id), name=f"webhook-line:{session_id}")
        self._busy[session_id] = task
        task.add_done_callback(lambda _task: self._done(session_id))

    def _done(self, session_id: str) -> None:
        self._busy.pop(session_id, None)
        # A line that stopped early (a retry is scheduled) may be due again later.
        self._wake.set()

    async def _line(self, session_id: str) -> None:
        """Deliver a session's events one after another while they are due, claiming each
        head before its attempt: the next head is one indexed claim, not another scan of
        every line. No claim (another dispatcher holds the line, or nothing is due) ends
        the line here; a lost claim too (someone else delivers from now on)."""
        while not self._stopping:
            try:
                event = await self.store.claim_line(
                    session_id, self.owner, self.clock(), self.claim_ttl
                )
            except Exception:
                log.exception("claiming the webhook line of %s failed", session_id)
                return
            if event is None:
                return
            try:
                if not await self._deliver(event):
                    return  # the head waits for a retry; the line waits with it
            except ClaimLost:
                log.warning(
                    "webhook %s (%s): the claim on its line expired and another dispatcher"
                    " took it; leaving the line to it",
                    event.id,
                    event.event,
                )
                return

    async def _deliver(self, event: OutboxEvent) -> bool:
        """One attempt; True when the event left the line (delivered or dead)."""
        url = event.url or self.default_url
        now = self.clock()
        if not url:
            return await self._wait_for_url(event, now)
        problem = await self._host_problem(url)
        if problem is not None:
            await self._dead(event, None, f"webhook URL {problem}")
            return True
        body = event.body.encode()
        headers = webhook_headers(self.secret, body, int(now), event.id, event.event)
        try:
            response = await self.client.post(
                url, content=body, headers=headers, timeout=self.timeout, follow_redirects=False
            )
        except httpx.TimeoutException:
            return await self._retry(event, None, "timeout", None)
        except httpx.HTTPError as exc:
            return await self._retry(event, None, f"connection error: {type(exc).__name__}", None)
        except Exception as exc:  # a bug must not wedge the line
            log.exception("delivering %s failed", event.id)
            return await self._retry(event, None, f"internal error: {type(exc).__name__}", None)
        status = response.status_code
        if 200 <= status < 300:
            self.delivered += 1
            self._count("delivered")
            await self.store.finish_attempt(
                event.id,
                {
                    "status": "delivered",
                    "delivered_at": self.clock(),
                    "last_status_code": status,
                    "last_error": None,
                },
                owner=self.owner,
            )
            return True
        if status in RETRYABLE or status >= 500:
            return await self._retry(event, status, f"HTTP {status}", _retry_after(response))
        if 300 <= status < 400:
            # Never followed (it could lead anywhere), but not fatal either: an app behind an
            # HTTP-to-HTTPS redirect keeps its events until its URL is fixed.
            target = redact_url(response.headers.get("location", ""))[:300] or "nowhere"
            return await self._retry(
                event, status, f"HTTP {status} redirect to {target}: fix the webhook URL", None
            )
        # Why the receiver refused, for the operator: the start of its answer.
        answer = response.content[:512].decode("utf-8", "replace").strip()
        await self._dead(event, status, f"HTTP {status}: {answer}" if answer else f"HTTP {status}")
        return True

    async def _host_problem(self, url: str) -> str | None:
        """Whether the URL's host now resolves to a link-local or metadata address (cached
        for `host_check_ttl` seconds, so a busy line costs one lookup now and then)."""
        now = time.monotonic()
        cached = self._hosts.get(url)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            problem = await webhook_host_problem(url, self.resolver)
        except Refused as exc:
            problem = exc.reason
        if len(self._hosts) > 10_000:
            self._hosts.clear()
        self._hosts[url] = (now + self.host_check_ttl, problem)
        return problem

    async def _retry(
        self, event: OutboxEvent, status: int | None, error: str, retry_after: float | None
    ) -> bool:
        """Schedule another attempt (False), or give up after the window (True: dead)."""
        delay = self.retry.delay(event.attempts)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry.cap))
        next_at = self.clock() + delay
        if event.give_up_at is not None and next_at > event.give_up_at:
            await self._dead(event, status, f"{error}; gave up after the retry window")
            return True
        log.info("webhook %s (%s) will retry in %.1f s: %s", event.id, event.event, delay, error)
        self._count("retry")
        await self.store.finish_attempt(
            event.id,
            {"next_attempt_at": next_at, "last_status_code": status, "last_error": error},
            owner=self.owner,
        )
        return False

    async def _wait_for_url(self, event: OutboxEvent, now: float) -> bool:
        """Park the head until its horizon (False: the line waits), or, past it, make it
        dead (True). Nothing is sent, so `attempts` stays."""
        horizon = event.give_up_at
        if horizon is None:
            horizon = event.created_at + RETRY_WINDOW
        session = await self.store.get_session(event.session_id)
        if session is None or session.created_at > event.created_at:
            # Its session was deleted (a session of the same id created since is another
            # one): no URL will come for it, and waiting would hold up that other's line.
            await self._dead(
                event, None, f"{NO_WEBHOOK_URL}, and its session was deleted", attempted=False
            )
            return True
        if now >= horizon:
            await self._dead(
                event,
                None,
                f"{NO_WEBHOOK_URL}: set SIDECAR_WEBHOOK_URL or the session's webhook_url;"
                " gave up after the retry window",
                attempted=False,
            )
            return True
        if event.last_error != NO_WEBHOOK_URL:
            log.info("webhook %s (%s) waits for a webhook URL", event.id, event.event)
        await self.store.finish_attempt(
            event.id,
            {"next_attempt_at": horizon, "last_status_code": None, "last_error": NO_WEBHOOK_URL},
            owner=self.owner,
            attempted=False,
        )
        return False

    async def _dead(
        self, event: OutboxEvent, status: int | None, error: str, *, attempted: bool = True
    ) -> None:
        log.warning("webhook %s (%s) is dead: %s", event.id, event.event, error)
        self._count("dead")
        await self.store.finish_attempt(
            event.id,
            {"status": "dead", "last_status_code": status, "last_error": error},
            owner=self.owner,
            attempted=attempted,
        )


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from an ASCII `Retry-After`; anything else (an HTTP date, `²`) falls back to
    the backoff."""
    value = ascii_int(response.headers.get("retry-after", "").strip())
    return float(value) if value is not None else None
