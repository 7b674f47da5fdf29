"""Chromium's process tree: find it by profile, measure it, kill all of it."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import psutil


def profile_processes(profile: Path) -> list[psutil.Process]:
    """Every live process started with `--user-data-dir=<profile>` (browser and children)."""
    marker = f"--user-data-dir={profile.resolve()}"
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        # Values were read once by process_iter: a process exiting mid-scan cannot raise.
        cmdline = proc.info["cmdline"] or []
        if marker in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def browser_pid(profile: Path) -> int | None:
    """The main browser process of a profile: the one without a `--type=` switch."""
    for proc in profile_processes(profile):
        try:
            if not any(a.startswith("--type=") for a in proc.cmdline()):
                return proc.pid
        except psutil.NoSuchProcess:
            continue
    return None


def leftovers(profile: Path, own_pid: int | None) -> list[psutil.Process]:
    """The processes on `profile` that a browser closing (main process `own_pid`) may
    end: its own, and orphans of it, never another live browser's tree on the same profile
    (in a cluster the session's next worker may already run one there)."""
    procs = profile_processes(profile)
    keep: set[int] = set()
    for proc in procs:
        try:
            if proc.pid == own_pid or any(a.startswith("--type=") for a in proc.cmdline()):
                continue
            keep |= {proc.pid, *(child.pid for child in proc.children(recursive=True))}
        except psutil.NoSuchProcess:
            continue
    return [proc for proc in procs if proc.pid not in keep]


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_pss(pid: int) -> int:
    """Proportional set size of a process and its descendants, in bytes."""
    total = 0
    for proc in tree(pid):
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def kill_processes(procs: list[psutil.Process], grace: float = 0.0) -> None:
    """End each process: SIGTERM first when `grace` > 0 (Chromium then writes its profile
    to disk), SIGKILL for whatever is still alive after that. Gone processes are fine."""
    if grace > 0:
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        _, procs = psutil.wait_procs(procs, timeout=grace)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=5)
