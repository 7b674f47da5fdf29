"""What a campaign's settings mean in time and text: `{{variables}}`, the sending window,
the gap between sends, and the rate the session's pacing lets through. Pure functions: the
runner and the API both use them, and tests call them with explicit times.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service.messaging.pacing import PacingPolicy

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def variables_in(value: Any) -> set[str]:
    """The variable names a text (or every text inside a template's JSON) uses."""
    if isinstance(value, str):
        return set(VARIABLE.findall(value))
    if isinstance(value, dict):
        return set().union(*(variables_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(variables_in(v) for v in value)) if value else set()
    return set()


def render(value: Any, values: dict[str, str]) -> Any:
    """`value` with each `{{name}}` replaced by its value (texts inside lists and objects
    too); a name without a value stays as written (creation refuses those)."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: render(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, values) for v in value]
    return value


def zone(name: str) -> ZoneInfo | None:
    """The IANA time zone, or None when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@dataclass(frozen=True)
class Window:
    """Daily hours in a time zone, `start` to `end` minutes after midnight; a window whose
    end comes before its start spans midnight."""

    start: int
    end: int
    tz: ZoneInfo

    @classmethod
    def parse(cls, start: str, end: str, timezone: str) -> Window:
        tz = zone(timezone)
        if tz is None:
            raise ValueError(f"unknown time zone {timezone!r}")
        return cls(_minutes(start), _minutes(end), tz)

    def wait(self, now: float) -> float:
        """Seconds from `now` (Unix) until the window is open; 0 while it is."""
        local = datetime.fromtimestamp(now, self.tz)
        minute = local.hour * 60 + local.minute
        if self.start < self.end:
            inside = self.start <= minute < self.end
        else:
            inside = minute >= self.start or minute < self.end
        if inside:
            return 0.0
        opening = local.replace(
            hour=self.start // 60, minute=self.start % 60, second=0, microsecond=0
        )
        if opening <= local:
            opening = (opening + timedelta(days=1)).replace(tzinfo=self.tz)
        return max(opening.timestamp() - now, 1.0)


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def gap(per_minute: int, jitter: float, rng: Callable[[], float]) -> float:
    """Seconds to the next send: the mean gap of `per_minute`, moved by up to ±`jitter`
    of itself."""
    mean = 60.0 / per_minute
    return mean * (1.0 + jitter * (2.0 * rng() - 1.0))


def effective_rate(per_minute: int, pacing: PacingPolicy) -> float:
    """Sends per minute at most, on average: the campaign's own rate, or what the pacing
    policy's interval and mean jitter let through when that is slower."""
    if not pacing.enabled:
        return float(per_minute)
    paced_gap = pacing.min_interval + pacing.jitter / 2
    if paced_gap <= 0:
        return float(per_minute)
    return round(min(float(per_minute), 60.0 / paced_gap), 3)
