"""The state file: a sandbox process restarted on it still knows its linked devices."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox import network as network_module
from sandbox.network import Network
from sandbox.state import StateFile
from tests.support.sandbox import Phone, SandboxProcess
from tests.support.server import ROOT, free_port

PHONE = "5511999990042"
PEER = "5511988887777"


def link(phone: Phone) -> dict[str, str]:
    """Link a new device as the page does (hello, QR, scan); its id, token and keys."""
    keys = {"staticKeyPair": "s" * 44, "identityKeyPair": "i" * 44, "secretKey": "k" * 44}
    device_id = phone.http.post("/net/hello", json={"keys": keys}).json()["device_id"]
    ref = phone.http.post("/net/qr", json={"device_id": device_id}).json()["ref"]
    assert phone.scan(ref, PHONE).status_code == 200
    # The token reaches the page only through its event stream.
    with phone.http.stream("GET", "/net/events", params={"device": device_id}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                frame = json.loads(line[len("data: ") :])
                if frame["kind"] == "linked":
                    token = str(frame["data"]["token"])
                    break
    return {"device_id": device_id, "token": token, **keys}


def hello(phone: Phone, device: dict[str, str]) -> dict[str, Any]:
    body = {"device_id": device["device_id"], "token": device["token"]}
    answer: dict[str, Any] = phone.http.post("/net/hello", json=body).json()
    return answer


def test_a_restarted_sandbox_still_knows_the_linked_device(tmp_path: Path) -> None:
    state = tmp_path / "storage" / "sandbox" / "state.json"
    sandbox = SandboxProcess(state=state)
    phone = sandbox.start()
    try:
        device = link(phone)
        lid = phone.lid(PHONE)
        # The link is on disk at once: not even a kill -9 right after it loses it.
        sandbox.kill9()
        phone = sandbox.start()
        answer = hello(phone, device)
        assert answer["status"] == "authenticated"
        assert (answer["phone"], answer["lid"]) == (PHONE, lid)

        sent = phone.http.post(
            "/net/send",
            json={**device, "to": f"{PEER}@c.us", "type": "text", "text": "before the restart"},
        )
        assert sent.status_code == 200, sent.text
        inbound = phone.inbound(to=PHONE, **{"from": PEER}, text="hello")
        assert inbound.status_code == 200, inbound.text
        assert sandbox.terminate() == 0

        phone = sandbox.start()
        assert hello(phone, device)["status"] == "authenticated"
        assert phone.lid(PHONE) == lid
        listed = phone.http.get("/control/devices").json()["devices"]
        assert [(d["device_id"], d["phone"], d["linked"]) for d in listed] == [
            (device["device_id"], PHONE, True)
        ]
        assert [m["text"] for m in phone.sent(PHONE)] == ["before the restart"]
        # What the device sent and received can still be quoted and receipted.
        assert phone.ack(sent.json()["message_id"], 3).status_code == 200
        received = phone.http.post(
            "/net/message", json={**device, "id": inbound.json()["message_id"]}
        )
        assert received.status_code == 200 and received.json()["from_me"] is False
        # A token the network never gave out is still refused.
        assert hello(phone, {**device, "token": "forged"})["status"] == "logged_out"
        assert sandbox.terminate() == 0

        # That logout was written too: the real token no longer works either.
        phone = sandbox.start()
        assert hello(phone, device)["status"] == "logged_out"
        assert stat.S_IMODE(state.stat().st_mode) == 0o600
    finally:
        sandbox.close()


def test_a_missing_state_file_starts_empty_and_a_corrupt_one_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "new" / "state.json"
    sandbox = SandboxProcess(state=state)
    phone = sandbox.start()
    try:
        assert phone.http.get("/control/devices").json() == {"devices": []}
        assert state.exists()
    finally:
        sandbox.close()

    for content in (b"{not json", b'{"version": 1, "devices": [{"device_id": "x"}]}', b"[]"):
        state.write_bytes(content)
        run = subprocess.run(
            [sys.executable, "-m", "sandbox", "--port", str(free_port()), "--state", str(state)],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
        )
        assert run.returncode != 0
        lines = run.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and str(state) in lines[0] and "unusable" in lines[0], lines
        # Refused, not replaced: whatever it held is still there to fix by hand.
        assert state.read_bytes() == content


def test_the_state_file_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network_module, "MAX_BYTES", 64 * 1024)
    path = tmp_path / "state.json"

    async def fill() -> tuple[Network, str, str]:
        network = Network(state=StateFile(path))
        network.load_state()
        device_id = network.hello(None, None, None)["device_id"]
        network.scan(network.issue_ref(device_id)["ref"], PHONE)
        token = network.devices[device_id].token
        for n in range(40):
            text = f"{n:04d}" + "x" * 4000
            await network.send(
                device_id, token, {"to": f"{PEER}@c.us", "type": "text", "text": text}
            )
        network.close()
        assert token is not None
        return network, device_id, token

    _, device_id, token = asyncio.run(fill())
    assert path.stat().st_size <= 64 * 1024
    restored = Network(state=StateFile(path))
    restored.load_state()
    assert restored.hello(device_id, token, None)["status"] == "authenticated"
    kept = [m.text[:4] for m in restored.sent(PHONE) if m.text]
    # The oldest records went, the newest stayed.
    assert kept and kept[-1] == "0039" and "0000" not in kept


def test_without_a_state_file_a_restart_forgets_every_link() -> None:
    sandbox = SandboxProcess()
    phone = sandbox.start()
    try:
        device = link(phone)
        assert sandbox.terminate() == 0
        phone = sandbox.start()
        assert hello(phone, device)["status"] == "logged_out"
    finally:
        sandbox.close()
