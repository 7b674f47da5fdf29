"""Numbers from outside (headers, query strings, settings, provider answers): ASCII only.

`str.isdigit()` accepts `²` and `①`, which `int()` then refuses, and `int()` itself accepts
other scripts' digits (`١٢`) and surrounding spaces. Every number that crosses the edge
goes through here instead.
"""

from __future__ import annotations

import re

_INT = re.compile(r"[0-9]{1,18}")


def ascii_int(text: str | None, *, low: int | None = None, high: int | None = None) -> int | None:
    """`text` as a non-negative integer of ASCII digits within [low, high]; None otherwise."""
    if text is None or not _INT.fullmatch(text):
        return None
    value = int(text)
    if (low is not None and value < low) or (high is not None and value > high):
        return None
    return value
