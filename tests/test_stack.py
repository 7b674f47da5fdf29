"""The record ./scripts/run keeps of its stack counts only while that supervisord runs.

The end-to-end path (./scripts/run --sandbox, then doctor in another shell) is in
tests/test_scripts.py; these cover each way the record can be stale.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from service.stack import Stack, running_stack


def write(project: Path, record: str, pid: int | None) -> None:
    (project / "storage").mkdir(exist_ok=True)
    (project / "storage" / "stack.env").write_text(record)
    pidfile = project / "storage" / "supervisord.pid"
    if pid is None:
        pidfile.unlink(missing_ok=True)
    else:
        pidfile.write_text(f"{pid}\n")


def gone_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_running_stack_gives_its_settings(tmp_path: Path) -> None:
    # This test's own process stands in for a live supervisord.
    me = os.getpid()
    sandbox = (
        f"# Written by ./scripts/run\nSUPERVISORD_PID={me}\nSIDECAR_SANDBOX=true\n"
        "WA_WEB_URL=http://127.0.0.1:3100/\n"
    )
    write(tmp_path, sandbox, me)
    assert running_stack(tmp_path) == Stack(
        pid=me, sandbox=True, settings={"WA_WEB_URL": "http://127.0.0.1:3100/"}
    )
    # Without --sandbox the service's WA_WEB_URL is .env's: the record sets nothing.
    write(tmp_path, f"SUPERVISORD_PID={me}\nSIDECAR_SANDBOX=false\n", me)
    assert running_stack(tmp_path) == Stack(pid=me, sandbox=False, settings={})
    # Only the settings scripts/run decides are taken from the record.
    write(tmp_path, f"SUPERVISORD_PID={me}\nSIDECAR_API_SECRET=nope\n", me)
    assert running_stack(tmp_path) == Stack(pid=me, sandbox=False, settings={})


def test_a_stale_record_counts_for_nothing(tmp_path: Path) -> None:
    me = os.getpid()
    record = f"SUPERVISORD_PID={me}\nSIDECAR_SANDBOX=true\nWA_WEB_URL=http://127.0.0.1:3100/\n"
    assert running_stack(tmp_path) is None  # never started here
    # Stopped cleanly: supervisord removed its pid file.
    write(tmp_path, record, None)
    assert running_stack(tmp_path) is None
    # Another supervisord runs there now (started by hand, not by scripts/run).
    write(tmp_path, record, me + 1)
    assert running_stack(tmp_path) is None
    # Killed: both files name a process that is gone.
    dead = gone_pid()
    write(tmp_path, record.replace(str(me), str(dead)), dead)
    assert running_stack(tmp_path) is None
    # Garbage in either file.
    write(tmp_path, "SUPERVISORD_PID=12ab\n", me)
    assert running_stack(tmp_path) is None
    write(tmp_path, record, me)
    (tmp_path / "storage" / "supervisord.pid").write_text("0\n")
    assert running_stack(tmp_path) is None
