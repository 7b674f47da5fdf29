"""Sessions for real: Chromium on the sandbox, from QR to connected, across restarts and kills."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ENGINES
from tests.support.sandbox import Phone, eventually, sandbox_process
from tests.support.sidecar import Sidecar, chromium_processes, profile_browser_pid, stored

pytestmark = pytest.mark.browser

PHONE = "5511999990001"


@pytest.fixture
def phone() -> Iterator[Phone]:
    with sandbox_process(qr_interval=20, qr_max_rotations=5) as p:
        yield p


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def sidecar(storage: Path, phone: Phone) -> Iterator[Sidecar]:
    car = Sidecar(storage, WA_WEB_URL=phone.base + "/", MAX_SESSIONS="3").start()
    try:
        yield car
    finally:
        car.close()


def create(car: Sidecar, session_id: str, workspace: str = "acme") -> dict[str, object]:
    response = car.api.post(
        "/api/sessions", json={"workspace_id": workspace, "session_id": session_id}
    )
    assert response.status_code == 201, response.text
    data: dict[str, object] = response.json()
    return data


def connect(car: Sidecar, phone: Phone, session_id: str, number: str = PHONE) -> dict[str, object]:
    car.wait_status(session_id, "qr_required")
    qr = car.api.get(f"/api/sessions/{session_id}/qr").json()["qr"]
    scanned = phone.scan(qr, number)
    assert scanned.status_code == 200, scanned.text
    return car.wait_status(session_id, "connected")


def test_lifecycle_qr_connect_stop_start_restart_logout(
    sidecar: Sidecar, phone: Phone, storage: Path
) -> None:
    assert create(sidecar, "s1")["status"] == "initializing"
    record = sidecar.wait_status("s1", "qr_required")
    assert record["qr_expires_at"] is not None

    qr = sidecar.api.get("/api/sessions/s1/qr")
    assert qr.status_code == 200
    body = qr.json()
    assert set(body) == {"qr", "expires_at", "image_url"}
    assert body["qr"].count(",") >= 3  # ref,staticKey,identityKey,secret as wa-js builds it
    png = sidecar.api.get("/api/sessions/s1/qr", headers={"Accept": "image/png"})
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    image = httpx.get(body["image_url"])  # unsigned: the token is the credential
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    forged = httpx.get(body["image_url"].replace("/qr/", "/qr/x"))
    assert forged.status_code == 404

    assert phone.scan(body["qr"], PHONE).status_code == 200
    connected = sidecar.wait_status("s1", "connected")
    assert connected["phone_number"] == PHONE
    assert sidecar.api.get("/api/sessions/s1/qr").status_code == 409
    statuses = [e["data"]["status"] for e in sidecar.events("s1", "session_status_changed")]
    assert statuses[-1] == "connected" and "qr_required" in statuses
    qr_events = len(sidecar.events("s1", "qr_code_generated"))
    assert qr_events >= 1

    # stop + start: the profile keeps the login, no new QR.
    assert sidecar.api.post("/api/sessions/s1/stop").status_code == 202
    sidecar.wait_status("s1", "stopped")
    assert chromium_processes(storage) == []
    assert sidecar.api.post("/api/sessions/s1/start").status_code == 202
    assert sidecar.wait_status("s1", "connected")["phone_number"] == PHONE
    assert len(sidecar.events("s1", "qr_code_generated")) == qr_events

    # A whole new service process restores the session by itself.
    assert sidecar.terminate() == 0
    assert chromium_processes(storage) == []
    sidecar.start()
    assert sidecar.wait_status("s1", "connected")["phone_number"] == PHONE
    assert len(sidecar.events("s1", "qr_code_generated")) == qr_events

    # Logout unlinks the device and wipes the profile: the next login needs a QR.
    assert sidecar.api.post("/api/sessions/s1/logout").status_code == 202
    record = sidecar.wait_status("s1", "qr_required")
    assert record["phone_number"] is None
    assert len(sidecar.events("s1", "qr_code_generated")) > qr_events
    devices = phone.http.get("/control/devices").json()
    devices = devices["devices"] if isinstance(devices, dict) else devices
    assert not any(d.get("phone") == PHONE and d.get("linked") for d in devices)


def test_kill_9_of_chromium_is_noticed_and_recovered(
    sidecar: Sidecar, phone: Phone, storage: Path
) -> None:
    create(sidecar, "k1")
    connect(sidecar, phone, "k1")
    pid = profile_browser_pid(storage, "acme", "k1")
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        events = sidecar.events("k1", "session_status_changed")
        return any(e["data"].get("reason") == "browser_restart" for e in events)

    eventually(restarted, 60, "the crash to be noticed")
    sidecar.wait_status("k1", "connected")
    assert profile_browser_pid(storage, "acme", "k1") != pid


@pytest.mark.parametrize("engine", ENGINES)
def test_kill_9_of_the_service_then_restart(
    phone: Phone, storage: Path, database: Callable[[str], dict[str, str]]
) -> None:
    """Restore on boot: the session comes back connected, on either store."""
    sidecar = Sidecar(
        storage, WA_WEB_URL=phone.base + "/", MAX_SESSIONS="3", **database("restore_on_boot")
    ).start()
    try:
        create(sidecar, "r1")
        connect(sidecar, phone, "r1")
        sidecar.kill9()
        # Playwright's driver sees its pipe close and ends the browsers it launched.
        eventually(lambda: chromium_processes(storage) == [], 30, "no Chromium after kill -9")
        sidecar.start()
        assert sidecar.wait_status("r1", "connected")["phone_number"] == PHONE
        sidecar.terminate()
        assert chromium_processes(storage) == []
    finally:
        sidecar.close()


def test_stale_singleton_lock_does_not_block_start(sidecar: Sidecar, storage: Path) -> None:
    profile = storage / "sessions" / "acme" / "locked" / "profile"
    profile.mkdir(parents=True)
    # What a Chromium killed on another host (or a renamed container) leaves behind.
    os.symlink("some-other-host-424242", profile / "SingletonLock")
    os.symlink("/tmp/nonexistent-socket-dir/SingletonSocket", profile / "SingletonSocket")
    create(sidecar, "locked")
    sidecar.wait_status("locked", "qr_required")


def test_pairing_code_links_without_a_camera(sidecar: Sidecar, phone: Phone) -> None:
    create(sidecar, "p1")
    sidecar.wait_status("p1", "qr_required")
    bad = sidecar.api.post("/api/sessions/p1/pairing-code", json={"phone": "12ab"})
    assert bad.status_code == 422
    response = sidecar.api.post(
        "/api/sessions/p1/pairing-code", json={"phone": "+55 11 99999-0002"}
    )
    assert response.status_code == 200, response.text
    code = response.json()["code"]
    assert len(code) >= 8
    assert [e["data"]["code"] for e in sidecar.events("p1", "pairing_code_generated")] == [code]
    assert phone.pairing(code).status_code == 200
    assert sidecar.wait_status("p1", "connected")["phone_number"] == "5511999990002"


def test_capacity_delete_and_sigterm_leave_nothing(sidecar: Sidecar, storage: Path) -> None:
    for sid in ("c1", "c2", "c3"):
        create(sidecar, sid)
    full = sidecar.api.post("/api/sessions", json={"workspace_id": "acme", "session_id": "c4"})
    assert full.status_code == 503
    assert full.json()["error"]["code"] == "at_capacity"
    for sid in ("c1", "c2", "c3"):
        sidecar.wait_status(sid, "qr_required")

    assert sidecar.api.delete("/api/sessions/c3").status_code == 204
    assert not (storage / "sessions" / "acme" / "c3").exists()
    assert sidecar.api.get("/api/sessions/c3").status_code == 404
    eventually(
        lambda: (
            len(chromium_processes(storage)) > 0
            and all("/c3/" not in " ".join(p.cmdline()) for p in chromium_processes(storage))
        ),
        30,
        "c3's browser to be gone",
    )

    assert sidecar.terminate() == 0
    assert chromium_processes(storage) == []


def test_remote_unlink_and_disconnect_are_reported(sidecar: Sidecar, phone: Phone) -> None:
    create(sidecar, "u1")
    connect(sidecar, phone, "u1")
    assert phone.device(PHONE, "disconnect").status_code == 200
    sidecar.wait_status("u1", "disconnected")
    assert phone.device(PHONE, "reconnect").status_code == 200
    sidecar.wait_status("u1", "connected")
    assert phone.device(PHONE, "logout").status_code == 200
    record = sidecar.wait_status("u1", "qr_required")
    assert record["phone_number"] is None
    reasons = [e["data"].get("reason") for e in sidecar.events("u1", "session_status_changed")]
    assert "logged_out" in reasons


def test_delete_during_launch_leaves_no_browser(sidecar: Sidecar, storage: Path) -> None:
    for i in range(3):
        create(sidecar, f"d{i}")
        # Deleted while its Chromium is still starting, then re-created under the same id.
        assert sidecar.api.delete(f"/api/sessions/d{i}").status_code == 204
        assert not (storage / "sessions" / "acme" / f"d{i}").exists()
    eventually(lambda: chromium_processes(storage) == [], 30, "no browser left")
    # The id is free again (a body of its own: the first create's bytes would be a replay).
    again = sidecar.api.post(
        "/api/sessions", json={"workspace_id": "acme", "session_id": "d0", "start": True}
    )
    assert again.status_code == 201, again.text
    sidecar.wait_status("d0", "qr_required")


def test_group_sigterm_is_a_stop_and_group_sigkill_leaves_no_chromium(
    sidecar: Sidecar, phone: Phone, storage: Path
) -> None:
    """supervisord's stopasgroup (or systemd's control-group kill) signals the service and
    the Playwright driver together: still a clean stop, and a kill -9 of the whole group
    strands no Chromium."""
    create(sidecar, "g1")
    connect(sidecar, phone, "g1")
    assert sidecar.proc is not None
    pid = sidecar.proc.pid
    os.killpg(pid, signal.SIGTERM)  # the service leads its own group (start_new_session)
    assert sidecar.proc.wait(timeout=90) == 0
    sidecar.proc = None
    record, events = stored(storage, "g1")
    assert record is not None and record.desired_state == "running"
    assert record.status == "connected"
    changes = [e for e in events if e["event"] == "session_status_changed"]
    assert not [e for e in changes if e["data"].get("reason") == "browser_restart"]
    assert changes and changes[-1]["data"]["status"] == "connected", changes[-1:]
    assert chromium_processes(storage) == []

    sidecar.start()
    sidecar.wait_status("g1", "connected")
    assert sidecar.proc is not None
    os.killpg(sidecar.proc.pid, signal.SIGKILL)
    sidecar.proc.wait(timeout=30)
    sidecar.proc = None
    eventually(lambda: chromium_processes(storage) == [], 30, "no Chromium after kill -9")


def test_delete_unlinks_the_device_unless_keep_device(sidecar: Sidecar, phone: Phone) -> None:
    create(sidecar, "x1")
    connect(sidecar, phone, "x1", "5511999990011")
    create(sidecar, "x2")
    connect(sidecar, phone, "x2", "5511999990012")

    # Strict booleans: a value that is not exactly true or false is refused, nothing deleted.
    for bad in ("1", "yes", "True", ""):
        refused = sidecar.api.delete("/api/sessions/x1", params={"keep_device": bad})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"]["field"] == "keep_device"
    assert sidecar.session("x1")["status"] == "connected"

    assert sidecar.api.delete("/api/sessions/x1").status_code == 204
    assert not phone.linked("5511999990011")
    # The unlink is part of the delete: Laravel hears "stopped, deleted", not a logout.
    changes = [e["data"] for e in sidecar.events("x1", "session_status_changed")]
    assert (changes[-1]["status"], changes[-1]["reason"]) == ("stopped", "deleted")
    assert "logged_out" not in [c.get("reason") for c in changes]

    kept = sidecar.api.delete("/api/sessions/x2", params={"keep_device": "true"})
    assert kept.status_code == 204, kept.text
    assert sidecar.api.get("/api/sessions/x2").status_code == 404
    assert phone.linked("5511999990012")
