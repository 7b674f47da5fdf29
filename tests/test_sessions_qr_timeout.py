"""The wait for a scan: idle QRs are refreshed, SIDECAR_QR_TIMEOUT ends the wait for good, and
the CLI's waiting commands (`wait-ready`, `sessions qr --wait`, `sessions wait`) that the
README tour runs, against a real service on the sandbox."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from service.qr import qr_terminal
from tests.support.sandbox import Phone, sandbox_process
from tests.support.server import ROOT
from tests.support.sidecar import Sidecar, chromium_processes

pytestmark = pytest.mark.browser

PHONE = "5511999990001"
# The sandbox's QR goes idle after 2 refs a second apart, so a 15 s wait sees several idles.
ROTATIONS = 2
QR_TIMEOUT = 15


@pytest.fixture(scope="module")
def phone() -> Iterator[Phone]:
    with sandbox_process(qr_interval=1, qr_max_rotations=ROTATIONS) as p:
        yield p


@pytest.fixture(scope="module")
def car(tmp_path_factory: pytest.TempPathFactory, phone: Phone) -> Iterator[Sidecar]:
    storage = tmp_path_factory.mktemp("qr-timeout") / "storage"
    sidecar = Sidecar(
        storage,
        WA_WEB_URL=phone.base + "/",
        SIDECAR_QR_TIMEOUT=str(QR_TIMEOUT),
        PYTHONIOENCODING="utf-8",
    ).start()
    try:
        yield sidecar
    finally:
        sidecar.close()


def cli(car: Sidecar, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m service ARGS` as an operator runs it next to the service."""
    result = subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=ROOT,
        env=car.env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=180,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def drawing(code: str) -> str:
    out = io.StringIO()
    qr_terminal(code, out)
    return out.getvalue()


def test_an_unscanned_session_refreshes_its_qr_then_stops_with_qr_timeout(
    car: Sidecar, phone: Phone
) -> None:
    ready = cli(car, "wait-ready", "--timeout", "60")
    assert ready.returncode == 0, ready.stderr
    assert ready.stdout == f"ready: {car.base}\n"

    created = car.api.post("/api/sessions", json={"workspace_id": "acme", "session_id": "q1"})
    assert created.status_code == 201, created.text

    shown = cli(car, "sessions", "qr", "q1", "--wait", "--timeout", "90")
    assert shown.returncode == 0, shown.stderr
    codes = [e["data"]["qr"] for e in car.events("q1", "qr_code_generated")]
    # What it drew is one of the session's QRs, as the terminal shows it.
    assert any(drawing(code) in shown.stdout for code in codes)

    stopped = cli(car, "sessions", "wait", "q1", "--status", "stopped", "--timeout", "120")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == "q1: stopped (desired_state: stopped)\n"

    record = car.session("q1")
    assert record["desired_state"] == "stopped" and record["qr_expires_at"] is None
    last = car.events("q1", "session_status_changed")[-1]["data"]
    assert last == {"status": "stopped", "previous": "qr_required", "reason": "qr_timeout"}
    # The sandbox shows only ROTATIONS refs before its page goes idle: more QRs than that
    # means the sidecar refreshed the idle page itself.
    assert len(car.events("q1", "qr_code_generated")) > ROTATIONS
    assert chromium_processes(car.storage) == []

    # Nothing more comes, and the waiting commands say why in one line.
    no_qr = cli(car, "sessions", "qr", "q1", "--wait", "--timeout", "30")
    assert no_qr.returncode == 1 and no_qr.stdout == ""
    assert no_qr.stderr == (
        "session q1 is stopped (desired_state: stopped); start it with "
        "`python -m service sessions start q1`\n"
    )
    not_connected = cli(car, "sessions", "wait", "q1", "--status", "connected")
    assert not_connected.returncode == 1
    assert not_connected.stderr.startswith("session q1 is stopped (desired_state: stopped)")
    answer = car.api.get("/api/sessions/q1/qr")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "no_qr"


def test_start_begins_a_new_wait_that_a_scan_ends(car: Sidecar, phone: Phone) -> None:
    if car.session("q1")["desired_state"] != "stopped":
        pytest.skip("needs the session the previous test timed out")
    before = len(car.events("q1", "qr_code_generated"))
    assert car.api.post("/api/sessions/q1/start").status_code == 202

    shown = cli(car, "sessions", "qr", "q1", "--wait", "--timeout", "90")
    assert shown.returncode == 0, shown.stderr
    assert len(car.events("q1", "qr_code_generated")) > before

    text = cli(car, "sessions", "qr", "q1", "--text")
    assert text.returncode == 0, text.stderr
    assert text.stdout.count(",") >= 3 and text.stdout.endswith("\n")
    # The QR rotates every second here: a busy machine may scan one just replaced, which
    # the sandbox's phone refuses as qr_expired, so scan the freshest until one is current.
    for _ in range(10):
        qr = car.api.get("/api/sessions/q1/qr").json()["qr"]
        scanned = phone.scan(qr, PHONE)
        if scanned.status_code != 409 or scanned.json()["error"]["code"] != "qr_expired":
            break
    assert scanned.status_code == 200, scanned.text

    connected = cli(car, "sessions", "wait", "q1", "--status", "connected", "--timeout", "90")
    assert connected.returncode == 0, connected.stderr
    assert connected.stdout == "q1: connected (desired_state: running)\n"

    needless = cli(car, "sessions", "qr", "q1", "--wait")
    assert needless.returncode == 1
    assert needless.stderr == "session q1 is connected: it needs no QR\n"

    # The tour's last step: send from the CLI, which waits until the message has left.
    sent = cli(car, "sessions", "send", "q1", "--to", "+5511988880002", "--text", "tour hi")
    assert sent.returncode == 0, sent.stderr
    assert re.fullmatch(r"msg_[0-9a-f]+: (sent|delivered|read) \(webjs\)\n", sent.stdout)
    assert "tour hi" in [m["text"] for m in phone.sent(PHONE)]
    refused = cli(car, "sessions", "send", "q1", "--to", "+55", "--text", "x")
    assert refused.returncode == 1 and refused.stderr.startswith("error 422 validation_failed: to:")
