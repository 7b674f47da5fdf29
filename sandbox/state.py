"""The sandbox's state file: what a restart of the sandbox must keep.

The pages keep their side of a link (device id, keys, token) in their browser profiles; the
network's side lives in memory. With a state file, the network writes that side to disk, so
a page restored after the sandbox restarted is still linked instead of logged out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

VERSION = 1
# The file is rewritten whole on every change; past this size the oldest `/control/sent`
# records are dropped first (the links themselves are a few hundred bytes each).
MAX_BYTES = 8 * 1024 * 1024
# A file this large was not written by the sandbox; refusing it beats reading it in.
MAX_READ_BYTES = 4 * MAX_BYTES


class StateError(Exception):
    """The state file cannot be used: unreadable, not the sandbox's, or not writable."""


class StateFile:
    """One JSON file, read once at start and replaced atomically on every save (mode 0600:
    it holds the tokens of linked devices)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        """The saved state, or `None` when there is no file yet."""
        try:
            with self.path.open("rb") as handle:
                raw = handle.read(MAX_READ_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read the state file {self.path}: {exc.strerror}") from None
        if len(raw) > MAX_READ_BYTES:
            raise self.refuse(f"larger than {MAX_READ_BYTES} bytes")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise self.refuse("not valid JSON") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise self.refuse(f"not a version {VERSION} sandbox state")
        return data

    def save(self, raw: bytes) -> None:
        """Write `raw` (from `encode`) atomically: a temp file in the same directory,
        fsynced, then renamed over the old one."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            # A buffered file writes every byte or raises; os.write may write part of them
            # (a full disk), and the rename would then put a cut file in place.
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except OSError:
            temp.unlink(missing_ok=True)
            raise
        # The rename itself is durable only once the directory is.
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def refuse(self, reason: str) -> StateError:
        """The error for a file that cannot be used, with what to do about it."""
        # Starting empty instead would log every page out: the very thing the file prevents.
        return StateError(
            f"the state file {self.path} is unusable ({reason}); fix it, or move it away"
            " to start with no linked devices"
        )


def encode(data: dict[str, Any]) -> bytes:
    """The file's bytes: compact JSON."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
