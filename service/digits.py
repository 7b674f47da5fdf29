"""Numbers from outside (headers, query strings, settings, provider answers): ASCII only.

`str.isdigit()` accepts `²` and `①`, which `int()` then refuses, and `int()` itself accepts
other scripts' digits (`١٢`) and surrounding spaces. Every number that crosses the edge
goes through here instead.
"""

from __future__ import annotations

import argparse
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


_SECONDS = re.compile(r"[0-9]{1,5}(\.[0-9]{1,3})?")


def seconds_arg(text: str) -> float:
    """An argparse `type` for a command's seconds: ASCII digits with an optional fraction
    (`90`, `0.5`) from 0 to 86400; `1e3`, `inf`, `nan` and other scripts' digits, which
    `float()` takes, are refused."""
    if not _SECONDS.fullmatch(text) or float(text) > 86_400:
        raise argparse.ArgumentTypeError("must be a number of seconds from 0 to 86400")
    return float(text)


def port_arg(text: str) -> int:
    """An argparse `type` for a TCP port: ASCII digits, 1 to 65535."""
    port = ascii_int(text, low=1, high=65535)
    if port is None:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a port (1-65535)")
    return port
