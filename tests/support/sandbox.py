"""The sandbox (stand-in for web.whatsapp.com) as a real process, and its phone controls."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.support.server import ROOT, free_port, wait_http

T = TypeVar("T")


class Phone:
    """The control API of docs/sandbox.md: plays the phone and the other party."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=30)

    def scan(self, qr: str, phone: str) -> httpx.Response:
        return self.http.post("/control/scan", json={"qr": qr, "phone": phone})

    def pairing(self, code: str) -> httpx.Response:
        return self.http.post("/control/pairing", json={"code": code})

    def device(self, phone: str, action: str) -> httpx.Response:
        return self.http.post(f"/control/devices/{phone}/{action}")

    def linked(self, phone: str) -> bool:
        """Whether a device of `phone` is linked (listed under its Linked devices)."""
        response = self.http.get("/control/devices")
        response.raise_for_status()
        return any(d.get("phone") == phone and d.get("linked") for d in response.json()["devices"])

    def inbound(self, **body: Any) -> httpx.Response:
        return self.http.post("/control/inbound", json=body)

    def ack(self, message_id: str, ack: int) -> httpx.Response:
        return self.http.post("/control/ack", json={"message_id": message_id, "ack": ack})

    def fail_sends(self, phone: str, count: int = 1, ack: int = -1) -> httpx.Response:
        """The next `count` sends of `phone` fail at the network with this negative ack."""
        return self.http.post(
            f"/control/devices/{phone}/fail-sends", json={"count": count, "ack": ack}
        )

    def lid(self, phone: str) -> str:
        """The phone's linked id, `<digits>@lid`."""
        response = self.http.get("/control/lid", params={"phone": phone})
        response.raise_for_status()
        return str(response.json()["lid"])

    def contact(self, phone: str, **facts: Any) -> None:
        """What WhatsApp says about `phone`: `exists` (default true), `picture`, `about`."""
        response = self.http.post("/control/contacts", json={"phone": phone, **facts})
        response.raise_for_status()

    def blocklist(self, phone: str) -> list[str]:
        """The ids the account `phone` blocked, oldest first."""
        response = self.http.get("/control/blocklist", params={"phone": phone})
        response.raise_for_status()
        return list(response.json()["blocked"])

    # -- groups: the other members (docs/sandbox.md) --

    def create_group(self, creator: str, subject: str, *members: str) -> dict[str, Any]:
        """A group made by `creator` (not a linked session) with `members`; nobody is told."""
        body = {"creator": creator, "subject": subject, "participants": list(members) or None}
        response = self.http.post("/control/groups", json=body)
        response.raise_for_status()
        return dict(response.json())

    def group(self, gid: str) -> dict[str, Any]:
        response = self.http.get(f"/control/groups/{gid}")
        response.raise_for_status()
        return dict(response.json())

    def group_members(self, gid: str, by: str, action: str, *members: str) -> httpx.Response:
        """`by` (an admin) adds, removes, promotes or demotes `members`."""
        body = {"by": by, "action": action, "participants": list(members)}
        return self.http.post(f"/control/groups/{gid}/participants", json=body)

    def group_subject(self, gid: str, by: str, **change: str) -> httpx.Response:
        return self.http.post(f"/control/groups/{gid}/subject", json={"by": by, **change})

    def invite(self, gid: str, by: str) -> str:
        """The group's invite code, as its admin `by` reads it."""
        response = self.http.post(f"/control/groups/{gid}/invite", json={"by": by})
        response.raise_for_status()
        return str(response.json()["code"])

    def join_group(self, phone: str, code: str) -> httpx.Response:
        return self.http.post("/control/groups/join", json={"phone": phone, "code": code})

    def leave_group(self, gid: str, phone: str) -> httpx.Response:
        return self.http.post(f"/control/groups/{gid}/leave", json={"phone": phone})

    def chat_actions(self, phone: str) -> list[dict[str, Any]]:
        """What that account did in its chats (read receipts, archive, chat state)."""
        response = self.http.get("/control/chats", params={"phone": phone})
        response.raise_for_status()
        actions: list[dict[str, Any]] = response.json()["actions"]
        return actions

    def presence(self, phone: str, state: str) -> int:
        """`phone` is `available`, `composing`, `recording` or `unavailable` now; how many
        devices that follow its presence heard it."""
        response = self.http.post("/control/presence", json={"phone": phone, "state": state})
        response.raise_for_status()
        return int(response.json()["devices"])

    def react(self, to: str, sender: str, message_id: str, reaction: str) -> httpx.Response:
        """`sender` reacts to a message the phone `to` sent or received ('' takes it back)."""
        return self.http.post(
            "/control/reaction",
            json={"to": to, "from": sender, "message_id": message_id, "reaction": reaction},
        )

    def reactions(self, phone: str) -> list[dict[str, Any]]:
        """What the devices of `phone` reacted, oldest first."""
        response = self.http.get("/control/reactions", params={"phone": phone})
        response.raise_for_status()
        return list(response.json()["reactions"])

    def edit(self, to: str, sender: str, message_id: str, text: str) -> httpx.Response:
        """`sender` edits a message it sent to the phone `to`."""
        body = {"to": to, "from": sender, "message_id": message_id, "text": text}
        return self.http.post("/control/edit", json=body)

    def revoke(self, to: str, sender: str, message_id: str) -> httpx.Response:
        """`sender` deletes for everyone a message it sent to the phone `to`."""
        body = {"to": to, "from": sender, "message_id": message_id}
        return self.http.post("/control/revoke", json=body)

    def call(self, to: str, caller: str, **flags: Any) -> dict[str, Any]:
        """`caller` calls `to`: it rings on `to`'s devices (`video`, `group`, `lid`)."""
        response = self.http.post("/control/calls", json={"to": to, "from": caller, **flags})
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def calls(self, phone: str) -> list[dict[str, Any]]:
        """The calls offered to `phone`, oldest first, each with its `state`."""
        response = self.http.get("/control/calls", params={"phone": phone})
        response.raise_for_status()
        return list(response.json()["calls"])

    def vote(self, message_id: str, voter: str, options: list[int], **flags: Any) -> None:
        """`voter` votes on the poll `message_id` (option indexes; none withdraws)."""
        body = {"message_id": message_id, "from": voter, "options": options, **flags}
        response = self.http.post("/control/vote", json=body)
        response.raise_for_status()

    def sent(self, phone: str) -> list[dict[str, Any]]:
        response = self.http.get("/control/sent", params={"phone": phone})
        response.raise_for_status()
        data = response.json()
        return list(data["messages"] if isinstance(data, dict) else data)


class SandboxProcess:
    """`python -m sandbox` on a port (and state file) that outlive restarts of the process."""

    def __init__(
        self,
        qr_interval: float = 20.0,
        qr_max_rotations: int = 5,
        state: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.args = [
            sys.executable,
            "-m",
            "sandbox",
            "--port",
            str(self.port),
            "--qr-interval",
            str(qr_interval),
            "--qr-max-rotations",
            str(qr_max_rotations),
            "--log-level",
            "warning",
        ]
        if state is not None:
            self.args += ["--state", str(state)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Phone:
        """Start the process; the phone controls it once it answers."""
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, env=dict(os.environ), start_new_session=True
        )
        wait_http(f"{self.base}/control/devices", proc=self.proc)
        return Phone(self.base)

    def terminate(self) -> int:
        """SIGTERM, as supervisord stops it; the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self.proc = None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()


@contextmanager
def sandbox_process(
    qr_interval: float = 20.0,
    qr_max_rotations: int = 5,
    state: Path | None = None,
    port: int | None = None,
) -> Iterator[Phone]:
    """A sandbox process for the duration of the block."""
    sandbox = SandboxProcess(qr_interval, qr_max_rotations, state, port)
    try:
        phone = sandbox.start()
        yield phone
        phone.http.close()
    finally:
        sandbox.close()


def eventually(check: Callable[[], T | None], timeout: float = 60.0, what: str = "") -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what or check} (last: {last!r})"
    )
