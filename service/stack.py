"""The record `./scripts/run` keeps of the stack it started, for commands run in other shells.

`./scripts/run --sandbox` points WA_WEB_URL at the sandbox only in supervisord's environment,
so `python -m service doctor` in another shell would check the URL in `.env` instead of the
one the running service uses. Before it becomes supervisord (`exec` keeps its pid), the
script writes `storage/stack.env`: supervisord's pid, whether the sandbox runs, and the
settings it set. The record counts only while that very supervisord runs (its own pid file
names the same pid), so a stack that was stopped, or killed, leaves nothing that misleads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from service.digits import ascii_int

# Both live where supervisord.conf keeps its state: storage/ next to it, whatever
# SIDECAR_STORAGE_DIR says.
STACK_FILE = Path("storage") / "stack.env"
PID_FILE = Path("storage") / "supervisord.pid"
# The settings scripts/run decides for the service; only these are taken from the record.
STACK_SETTINGS = ("WA_WEB_URL",)


@dataclass(frozen=True)
class Stack:
    """A running stack started by `./scripts/run`: supervisord's pid, whether it runs the
    sandbox, and the settings the script gave the service beyond `.env`."""

    pid: int
    sandbox: bool
    settings: dict[str, str] = field(default_factory=dict)


def running_stack(project: Path) -> Stack | None:
    """The stack `./scripts/run` started in `project`, while its supervisord runs."""
    try:
        record = dotenv_values(project / STACK_FILE) if (project / STACK_FILE).is_file() else {}
        running = ascii_int((project / PID_FILE).read_text().strip(), low=1)
    except OSError:
        return None
    pid = ascii_int(record.get("SUPERVISORD_PID"), low=1)
    if pid is None or pid != running or not _alive(pid):
        return None
    return Stack(
        pid=pid,
        sandbox=record.get("SIDECAR_SANDBOX") == "true",
        settings={name: v for name in STACK_SETTINGS if (v := record.get(name))},
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's (a stack started as root)
        return True
    return True
