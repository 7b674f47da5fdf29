"""A whole sidecar process for end-to-end tests: start, SIGTERM, kill -9, start again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil

from service.store import SessionRecord, open_store
from tests.conftest import API_SECRET, base_env
from tests.support.sandbox import eventually
from tests.support.server import ROOT, free_port, wait_http
from tests.support.signing import SidecarAuth


class Sidecar:
    """`python -m service serve` on a storage dir that outlives restarts of the process."""

    def __init__(self, storage: Path, **env: str) -> None:
        self.storage = storage
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **base_env(storage),
            "SIDECAR_PORT": str(self.port),
            "SIDECAR_HOST": "127.0.0.1",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = httpx.Client(base_url=self.base, auth=SidecarAuth(API_SECRET), timeout=60)
        self.log = storage.parent / f"sidecar-{self.port}.log"

    def start(self) -> Sidecar:
        self.storage.mkdir(parents=True, exist_ok=True)
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service", "serve"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_http(f"{self.base}/health", proc=self.proc, timeout=60)
        return self

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=90)
        self.proc = None
        return code

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()
        self.api.close()
        # Whatever a failed test left behind must not leak into the next one.
        for proc in chromium_processes(self.storage):
            proc.kill()

    def session(self, session_id: str) -> dict[str, Any]:
        response = self.api.get(f"/api/sessions/{session_id}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def wait_status(self, session_id: str, status: str, timeout: float = 60.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            record = self.session(session_id)
            return record if record["status"] == status else None

        return eventually(check, timeout, f"{session_id} to be {status} (log: {self.log})")

    def events(self, session_id: str, event: str | None = None) -> list[dict[str, Any]]:
        """Webhook events of a session, oldest first, as the service lists them (whatever
        its store is)."""
        response = self.api.get(
            "/api/webhooks/deliveries", params={"session_id": session_id, "limit": "1000"}
        )
        response.raise_for_status()
        bodies = [d["payload"] for d in response.json()["data"]]
        return [b for b in bodies if event is None or b["event"] == event]


def chromium_processes(storage: Path) -> list[psutil.Process]:
    """Live Chromium processes whose profile lies under `storage`."""
    marker = str(storage.resolve())
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if f"--user-data-dir={marker}" in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def profile_browser_pid(storage: Path, workspace: str, session: str) -> int:
    profile = (storage / "sessions" / workspace / session / "profile").resolve()
    for proc in chromium_processes(storage):
        cmdline = proc.cmdline()
        if f"--user-data-dir={profile}" in cmdline and not any(
            a.startswith("--type=") for a in cmdline
        ):
            return proc.pid
    raise AssertionError(f"no browser process for {profile}")


def stored(storage: Path, session_id: str) -> tuple[SessionRecord | None, list[dict[str, Any]]]:
    """A session's row and its outbox bodies, read from the SQLite store file under
    `storage` (with the service down: what it left behind)."""

    async def read() -> tuple[SessionRecord | None, list[dict[str, Any]]]:
        store = open_store(storage / "sidecar.sqlite3")
        await store.open()
        try:
            events = await store.list_events(session_id, limit=1000)
            return await store.get_session(session_id), [json.loads(e.body) for e in events]
        finally:
            await store.close()

    return asyncio.run(read())
