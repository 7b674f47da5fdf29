"""Chromium's Singleton* files: a lock left by a dead browser must not block the next start.

Chromium refuses a profile whose SingletonLock names another host (a container renamed
after a restart), so a lock is cleared whenever no live process uses the profile.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from service.browser.process import profile_processes

log = logging.getLogger("service.browser")

SINGLETON_FILES = ("SingletonLock", "SingletonCookie", "SingletonSocket")


def clear_stale_locks(profile: Path) -> bool:
    """Remove the Singleton* files when no live process owns `profile`; True if removed."""
    present = [
        profile / name
        for name in SINGLETON_FILES
        if (profile / name).is_symlink() or (profile / name).exists()
    ]
    if not present:
        return False
    if profile_processes(profile):
        return False
    for path in present:
        path.unlink(missing_ok=True)
    log.info("cleared stale Chromium profile lock", extra={"profile": str(profile)})
    return True


def lock_host(profile: Path) -> str | None:
    """The host named in the profile's SingletonLock (Chromium writes `<host>-<pid>`), or
    None when there is no lock."""
    try:
        target = os.readlink(profile / "SingletonLock")
    except OSError:
        return None
    host, _, pid = target.rpartition("-")
    return host if host and pid.isascii() and pid.isdigit() else None
