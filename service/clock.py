"""Time as the API shows it."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC (`2026-11-22T01:37:46Z`), what Carbon::parse reads."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
