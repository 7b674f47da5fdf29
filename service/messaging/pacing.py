"""Send pacing against bans: a minimum interval with jitter per session, and a per-recipient
rate. Accounts that blast messages at machine speed are the ones WhatsApp bans first.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PacingPolicy:
    """Defaults are deliberately cautious; SIDECAR_PACING=off disables all of it."""

    enabled: bool = True
    min_interval: float = 1.0
    jitter: float = 1.5
    per_recipient_per_minute: int = 12

    @classmethod
    def off(cls) -> PacingPolicy:
        return cls(enabled=False)


class Pacer:
    """Decides how long a session waits before its next send to a recipient."""

    def __init__(
        self,
        policy: PacingPolicy,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.rng = rng
        self._last_send: float | None = None
        self._next_gap = 0.0
        self._recent: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}

    def block(self, recipient: str, seconds: float) -> None:
        """Send nothing to `recipient` for `seconds` (a provider asked us to back off)."""
        self._blocked_until[recipient] = self.clock() + seconds

    def delay(self, recipient: str, *, paced: bool = True) -> float:
        """Seconds to wait from now before sending to `recipient` (0 when it may go now).

        `paced=False` skips the anti-ban pacing (a provider that needs none) but still
        honours a block a provider asked for.
        """
        now = self.clock()
        blocked = self._blocked_until.get(recipient, 0.0) - now
        if blocked <= 0:
            self._blocked_until.pop(recipient, None)
        if not (self.policy.enabled and paced):
            return max(blocked, 0.0)
        wait = max(blocked, 0.0)
        if self._last_send is not None:
            wait = max(wait, self._last_send + self._next_gap - now)
        limit = self.policy.per_recipient_per_minute
        recent = self._recent.get(recipient)
        if limit > 0 and recent:
            while recent and recent[0] <= now - 60.0:
                recent.popleft()
            if len(recent) >= limit:
                wait = max(wait, recent[0] + 60.0 - now)
        return max(wait, 0.0)

    def record(self, recipient: str) -> None:
        """Note a send that just happened, and draw the gap before the next one."""
        if not self.policy.enabled:
            return
        now = self.clock()
        self._last_send = now
        self._next_gap = self.policy.min_interval + self.rng() * self.policy.jitter
        recent = self._recent.setdefault(recipient, deque())
        recent.append(now)
        if len(self._recent) > 10_000:
            # Forget recipients not written to for a minute so the map stays bounded.
            self._recent = {k: v for k, v in self._recent.items() if v and v[-1] > now - 60.0}
