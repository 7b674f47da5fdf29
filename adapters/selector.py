"""The provider selector: which provider sends a session's next message, with failover.

Per session, `provider_mode` decides: `webjs` or `meta` use only that provider; `auto`
prefers WhatsApp Web while it is connected and healthy, and sends through the Cloud API when
it is not (if the session has Meta credentials). Each (session, provider) pair has a circuit
breaker: repeated provider-level failures open it, and after a cooldown one message probes
it again. A change of provider writes a `provider_failover` event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from adapters.base import Engine, ErrorKind, ProviderError, SendResult
from service.models.events import ProviderFailover
from service.store import MessageRecord, SessionRecord, Store

log = logging.getLogger("adapters.selector")


@dataclass
class Circuit:
    """Closed (sending), open (skipped until `opened_at + cooldown`), then half-open."""

    failures: int = 0
    opened_at: float | None = None

    def allows(self, now: float, cooldown: float) -> bool:
        return self.opened_at is None or now >= self.opened_at + cooldown

    @property
    def open(self) -> bool:
        return self.opened_at is not None


class ProviderSelector:
    """Chooses providers per session and sends with failover between them."""

    def __init__(
        self,
        store: Store,
        webjs: Engine,
        meta: Engine,
        *,
        failure_threshold: int = 3,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.providers = {webjs.name: webjs, meta.name: meta}
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.clock = clock
        self._circuits: dict[tuple[str, str], Circuit] = {}
        # The provider that last delivered for a session, to notice a change of provider.
        self._current: dict[str, str] = {}

    def plan(self, session: SessionRecord, message: MessageRecord | None = None) -> list[Engine]:
        """The providers to try, in order, for this session's next message (maybe none)."""
        names = self._names(session)
        if message is not None and len(names) > 1 and message.type == "template":
            names = ["meta"]  # only the Cloud API sends templates
        if message is not None and len(names) > 1:
            # A chat only one engine can address waits for that one rather than failing.
            names = [n for n in names if self.providers[n].reaches(message.chat_id)]
        now = self.clock()
        return [
            self.providers[name]
            for name in names
            if self.providers[name].status(session).available
            and self._circuit(session.session_id, name).allows(now, self.cooldown)
        ]

    def reaches(self, session: SessionRecord, chat_id: str) -> bool:
        """Whether some engine the session may use can address `chat_id`."""
        return any(self.providers[n].reaches(chat_id) for n in self._names(session))

    def engine(self, session: SessionRecord) -> Engine:
        """The engine that runs the session: its browser, or the Cloud API alone."""
        return self.providers["meta" if session.provider_mode == "meta" else "webjs"]

    def can_accept(self, session: SessionRecord) -> bool:
        """Whether a message accepted now has a provider that could deliver it."""
        return any(self.providers[n].status(session).available for n in self._names(session))

    def _names(self, session: SessionRecord) -> list[str]:
        """The engines the session's provider_mode lets it use, in order of preference."""
        if session.provider_mode in self.providers:
            return [session.provider_mode]
        return list(self.providers)  # auto: WhatsApp Web first, then the Cloud API

    async def send(
        self, session: SessionRecord, message: MessageRecord, plan: list[Engine]
    ) -> tuple[str, SendResult]:
        """Send through the first provider of `plan` that takes it.

        Raises the last ProviderError when none did; only TRANSIENT and PROVIDER_DOWN
        errors move on to the next provider.
        """
        last: ProviderError | None = None
        for provider in plan:
            try:
                result = await provider.send(session, message)
            except ProviderError as exc:
                if not exc.fails_over:
                    raise
                self._failure(session.session_id, provider.name, exc)
                last = exc
                continue
            self._success(session.session_id, provider.name)
            await self._note_provider(session, provider.name, last)
            return provider.name, result
        if last is None:
            raise ProviderError(ErrorKind.PROVIDER_DOWN, "no provider can deliver for this session")
        raise last

    def circuits(self, session_id: str) -> dict[str, tuple[bool, int]]:
        """Each provider's circuit for the session as this process sees it: (open, recent
        failures); a provider that never failed here is closed with none."""
        now = self.clock()
        return {
            name: (
                not (c := self._circuits.get((session_id, name), Circuit())).allows(
                    now, self.cooldown
                ),
                c.failures,
            )
            for name in self.providers
        }

    def current(self, session_id: str) -> str | None:
        """The provider that last delivered for the session in this process, if any."""
        return self._current.get(session_id)

    def forget(self, session_id: str) -> None:
        self._current.pop(session_id, None)
        for key in [k for k in self._circuits if k[0] == session_id]:
            del self._circuits[key]

    def _circuit(self, session_id: str, provider: str) -> Circuit:
        return self._circuits.setdefault((session_id, provider), Circuit())

    def _failure(self, session_id: str, provider: str, exc: ProviderError) -> None:
        circuit = self._circuit(session_id, provider)
        circuit.failures += 1
        opens = exc.kind is ErrorKind.PROVIDER_DOWN or circuit.failures >= self.failure_threshold
        if opens:
            if not circuit.open:
                log.warning(
                    "session %s: %s circuit opens (%s)", session_id, provider, exc.describe()
                )
            circuit.opened_at = self.clock()

    def _success(self, session_id: str, provider: str) -> None:
        circuit = self._circuit(session_id, provider)
        circuit.failures = 0
        circuit.opened_at = None

    async def _note_provider(
        self, session: SessionRecord, provider: str, cause: ProviderError | None
    ) -> None:
        previous = self._current.get(session.session_id, "webjs")
        self._current[session.session_id] = provider
        if previous == provider or session.provider_mode != "auto":
            return
        if cause is not None:
            reason = f"{previous} failed: {cause.describe()}"
        elif provider == "webjs":
            reason = "webjs recovered"
        else:
            reason = f"{previous} unavailable: {self.providers[previous].status(session).reason}"
        event = ProviderFailover.model_validate(
            {"from": previous, "to": provider, "reason": reason}
        ).new_event()
        await self.store.update_session(session.session_id, {}, [event])
