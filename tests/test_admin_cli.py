"""The operator commands: `sessions ...`, `doctor` and `demo`, run as real processes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from service import apidocs
from service.doctor import (
    FAIL,
    INFO,
    OK,
    WARN,
    Check,
    check_api_docs,
    check_database,
    check_encryption_key,
    check_outbox,
    check_storage,
    check_wa_js,
    check_wa_web_url,
    check_webhook_url,
)
from service.settings import Settings
from service.store import NewEvent, SessionRecord, open_store
from tests.conftest import API_SECRET, WEBHOOK_SECRET, base_env
from tests.support.receivers import php_receiver, python_receiver
from tests.support.sandbox import Phone, sandbox_process
from tests.support.server import ROOT, free_port, service_process
from tests.support.sidecar import Sidecar, chromium_processes

WA_JS = ROOT / "node_modules" / "@wppconnect" / "wa-js" / "dist" / "wppconnect-wa.js"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any sidecar setting a developer may have exported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIDECAR_", "WA_"))}
    return {**env, **extra}


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def doctor_lines(output: str) -> dict[str, str]:
    """`name -> "status: detail"` for each check line of the doctor's output."""
    lines = {}
    for line in output.splitlines():
        match = re.match(r"^(\S+(?: \S+)?)\s{2,}(ok|warn|FAIL|info): (.*)$", line)
        if match:
            lines[match.group(1)] = f"{match.group(2)}: {match.group(3)}"
    return lines


def refuses_connections(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# --- sessions -------------------------------------------------------------------------------


@pytest.fixture
def phone() -> Iterator[Phone]:
    with sandbox_process() as p:
        yield p


@pytest.fixture
def car(tmp_path: Path, phone: Phone) -> Iterator[Sidecar]:
    sidecar = Sidecar(tmp_path / "storage", WA_WEB_URL=phone.base + "/").start()
    try:
        yield sidecar
    finally:
        sidecar.close()


@pytest.mark.browser
def test_sessions_list_show_start_stop_logout(car: Sidecar, tmp_path: Path) -> None:
    for workspace, session_id in (("acme", "sales-1"), ("acme", "support"), ("other", "x-1")):
        response = car.api.post(
            "/api/sessions",
            json={"workspace_id": workspace, "session_id": session_id, "start": False},
        )
        assert response.status_code == 201, response.text

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        result = run_cli("sessions", *args, env=car.env, cwd=tmp_path)
        assert API_SECRET not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        return result

    listing = cli("list")
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split() == [
        "session_id",
        "workspace_id",
        "status",
        "desired_state",
        "phone_number",
        "provider_mode",
        "updated_at",
    ]
    assert sorted(row.split()[0] for row in rows) == ["sales-1", "support", "x-1"]
    # Aligned: every column starts where its heading does.
    status_at = header.index("status ")
    assert all(row[status_at:].startswith("stopped") for row in rows)
    assert all(row.split()[4] == "-" for row in rows)  # no phone number yet

    scripted = cli("list", "--workspace", "acme", "--json")
    assert scripted.returncode == 0
    records = json.loads(scripted.stdout)
    assert sorted(r["session_id"] for r in records) == ["sales-1", "support"]

    shown = cli("show", "sales-1")
    assert shown.returncode == 0
    record = json.loads(shown.stdout)
    assert record["session_id"] == "sales-1" and record["workspace_id"] == "acme"
    assert shown.stdout.startswith("{\n  ")  # indented for reading

    # Actions wait until the session settles, then print where it is.
    started = cli("start", "sales-1")
    assert started.returncode == 0, started.stderr
    assert started.stdout == "sales-1: qr_required (desired_state: running)\n"
    qr_required = json.loads(cli("list", "--status", "qr_required", "--json").stdout)
    assert [r["session_id"] for r in qr_required] == ["sales-1"]

    restarted = cli("restart", "sales-1")
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout == "sales-1: qr_required (desired_state: running)\n"

    stopped = cli("stop", "sales-1")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == "sales-1: stopped (desired_state: stopped)\n"
    assert chromium_processes(car.storage) == []

    requested = cli("start", "support", "--no-wait")
    assert requested.returncode == 0, requested.stderr
    assert requested.stdout.startswith("start requested; support: ")
    assert "(desired_state: running)" in requested.stdout
    car.wait_status("support", "qr_required")

    logged_out = cli("logout", "sales-1")
    assert logged_out.returncode == 0, logged_out.stderr
    assert logged_out.stdout.startswith("sales-1: stopped")

    missing = cli("show", "nope")
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr.strip() == "error 404 session_not_found: no session with id 'nope'"

    invalid = cli("list", "--status", "sleeping")
    assert invalid.returncode == 1
    assert invalid.stderr.startswith("error 422 validation_failed: status")


def test_sessions_against_a_closed_port_prints_one_line(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(**base_env(tmp_path / "storage"), SIDECAR_PORT=str(port))
    result = run_cli("sessions", "list", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"cannot reach the sidecar at http://127.0.0.1:{port}: is it running? "
        "(supervisorctl status)"
    ]


def test_wait_ready_gives_up_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    result = run_cli(
        "wait-ready", "--timeout", "1", env=clean_env(SIDECAR_PORT=str(port)), cwd=tmp_path
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"the sidecar at http://127.0.0.1:{port}/ready is not ready after 1 s: "
        "nothing answers there yet\n"
    )


def test_sessions_without_a_secret_says_so(tmp_path: Path) -> None:
    result = run_cli("sessions", "list", env=clean_env(), cwd=tmp_path)
    assert result.returncode == 2
    assert "SIDECAR_API_SECRET is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_sessions_public_url_wins_and_hides_credentials(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(
        **base_env(tmp_path / "storage"),
        SIDECAR_PUBLIC_URL=f"http://operator:hunter2@127.0.0.1:{port}/",
    )
    result = run_cli("sessions", "show", "x", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert f"cannot reach the sidecar at http://127.0.0.1:{port}:" in result.stderr
    assert "hunter2" not in result.stderr


# --- doctor ---------------------------------------------------------------------------------


@pytest.mark.browser
def test_doctor_all_ok_in_this_environment(tmp_path: Path, phone: Phone) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    env = base_env(storage, WA_JS_PATH=str(WA_JS), WA_WEB_URL=phone.base + "/")
    port = free_port()
    with php_receiver(tmp_path, WEBHOOK_SECRET) as receiver, service_process(env, port):
        result = run_cli(
            "doctor",
            env=clean_env(**env, SIDECAR_WEBHOOK_URL=receiver.url, SIDECAR_PORT=str(port)),
            cwd=tmp_path,
        )
        # The webhook check was one signed test event, verified as every event is.
        (received,) = receiver.received()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = doctor_lines(result.stdout)
    for name in (
        "chromium",
        "chromium launch",
        "wa-js",
        "api secret",
        "webhook secret",
        "encryption key",
        "storage",
        "database",
        "whatsapp web",
        "webhook url",
    ):
        assert lines[name].startswith("ok: "), (name, result.stdout)
    assert received["hmac_ok"] and received["signature_ok"]
    assert received["event_header"] == received["payload"]["event"] == "ping"
    assert set(received["payload"]) == {
        "id",
        "event",
        "timestamp",
        "workspace_id",
        "session_id",
        "metadata",
        "data",
    }
    assert received["payload"]["session_id"] is None
    assert lines["whatsapp web"] == f"ok: {phone.base}/ answers (HTTP 200)"
    assert "(the pinned version)" in lines["wa-js"]
    assert "GiB free" in lines["storage"]
    assert lines["service"] == f"info: answers at http://127.0.0.1:{port} (version 0.1.0)"
    assert result.stdout.rstrip().endswith("all checks ok")
    for secret in (API_SECRET, WEBHOOK_SECRET, env["SIDECAR_ENCRYPTION_KEY"]):
        assert secret not in result.stdout
    # The launch check leaves no browser and no temp profile behind.
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if "wa-sidecar-doctor-" in " ".join(p.info["cmdline"] or [])
    ]


def test_doctor_failures_say_what_to_do(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    closed, no_whatsapp = free_port(), free_port()
    env = clean_env(
        CHROMIUM_PATH="/nonexistent/chromium",
        WA_JS_PATH=str(tmp_path / "missing.js"),
        WA_WEB_URL=f"http://127.0.0.1:{no_whatsapp}/",
        SIDECAR_API_SECRET="too-short-secret",
        SIDECAR_STORAGE_DIR=str(not_a_dir / "storage"),
        SIDECAR_WEBHOOK_URL=f"http://127.0.0.1:{closed}/webhooks/whatsapp",
        SIDECAR_PORT=str(free_port()),
    )
    result = run_cli("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == ""
    assert "Traceback" not in result.stdout
    assert "too-short-secret" not in result.stdout
    lines = doctor_lines(result.stdout)
    assert lines["chromium"] == (
        "FAIL: no executable at /nonexistent/chromium: install it (apt-get install chromium) "
        "or set CHROMIUM_PATH to Chromium's path"
    )
    assert lines["chromium launch"].startswith("FAIL: skipped")
    assert lines["wa-js"].startswith("FAIL: no file at ") and "npm ci" in lines["wa-js"]
    assert lines["api secret"].startswith("warn: ") and "keygen" in lines["api secret"]
    assert lines["webhook secret"].startswith("FAIL: SIDECAR_WEBHOOK_SECRET is not set")
    assert lines["encryption key"].startswith("warn: ")
    assert lines["storage"].startswith("FAIL: ") and "mkdir -p" in lines["storage"]
    assert lines["whatsapp web"] == (
        f"FAIL: cannot connect to http://127.0.0.1:{no_whatsapp}/ (connection refused): "
        "sessions load WhatsApp Web from there: check this host's internet access, DNS, proxy "
        "and firewall, or fix WA_WEB_URL"
    )
    assert lines["webhook url"] == (
        f"FAIL: cannot connect to 127.0.0.1:{closed} (connection refused): start Laravel's "
        "web server there, or fix SIDECAR_WEBHOOK_URL"
    )
    assert lines["service"].startswith("info: nothing answers")
    assert result.stdout.rstrip().endswith("7 checks failed")


def test_doctor_reports_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    result = run_cli("doctor", env=clean_env(SIDECAR_PORT="lots"), cwd=tmp_path)
    assert result.returncode == 1
    assert "settings         FAIL: SIDECAR_PORT must be a whole number" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_doctor_counts_the_events_waiting_for_a_webhook_url(tmp_path: Path) -> None:
    settings = Settings.from_mapping({"SIDECAR_STORAGE_DIR": str(tmp_path / "storage")})
    check = check_outbox(settings)
    assert (check.status, check.detail) == (
        WARN,
        "without SIDECAR_WEBHOOK_URL, events of sessions without their own webhook_url wait "
        "in the outbox (none yet) until one is set; after 24 h they are dead",
    )

    async def write() -> None:
        store = open_store(settings.store_url)
        await store.open()
        try:
            await store.create_session(SessionRecord(session_id="s1", workspace_id="w"))
            events = [NewEvent("session_status_changed", {"n": i}) for i in range(3)]
            await store.update_session("s1", {}, events)
            dead = (await store.list_events())[0]
            await store.finish_attempt(dead.id, {"status": "dead"})
        finally:
            await store.close()

    asyncio.run(write())
    assert check_outbox(settings).detail.startswith(
        "without SIDECAR_WEBHOOK_URL, events of sessions without their own webhook_url wait "
        "in the outbox (2 waiting now)"
    )
    with_url = dataclasses.replace(settings, webhook_url="https://app.example/hook")
    assert check_outbox(with_url) == Check(
        "webhook outbox",
        WARN,
        "2 pending, 1 dead: replay them with `python -m service webhooks replay`",
    )


def test_doctor_checks_one_by_one(tmp_path: Path) -> None:
    def settings(**env: str) -> Settings:
        return Settings.from_mapping({"SIDECAR_STORAGE_DIR": str(tmp_path / "storage"), **env})

    # wa-js: a version other than package.json's pin.
    package = tmp_path / "node_modules" / "@wppconnect" / "wa-js"
    (package / "dist").mkdir(parents=True)
    (package / "dist" / "wppconnect-wa.js").write_text("/* wa-js */")
    (package / "package.json").write_text('{"name": "@wppconnect/wa-js", "version": "4.5.9"}')
    (tmp_path / "package.json").write_text('{"dependencies": {"@wppconnect/wa-js": "4.6.0"}}')
    bundle = str(package / "dist" / "wppconnect-wa.js")
    mismatch = check_wa_js(settings(WA_JS_PATH=bundle), project_root=tmp_path)
    assert mismatch.status == FAIL
    assert mismatch.detail.endswith(
        "but package.json pins 4.6.0: run `npm ci` in the project directory"
    )
    (package / "package.json").write_text('{"name": "@wppconnect/wa-js", "version": "4.6.0"}')
    assert check_wa_js(settings(WA_JS_PATH=bundle), project_root=tmp_path).status == OK

    # The encryption key: optional, but a malformed one stops the service.
    assert check_encryption_key(settings()).status == WARN
    bad = check_encryption_key(settings(SIDECAR_ENCRYPTION_KEY="not-a-key"))
    assert bad.status == FAIL and "not-a-key" not in bad.detail

    # Storage: missing but creatable is fine; a file in the way is not.
    assert check_storage(settings()).status == OK
    (tmp_path / "storage").mkdir()
    ok = check_storage(settings())
    assert ok.status == OK and "writable" in ok.detail
    assert list((tmp_path / "storage").iterdir()) == []  # the probe file is gone
    (tmp_path / "blocker").write_text("")
    blocked = check_storage(settings(SIDECAR_STORAGE_DIR=str(tmp_path / "blocker")))
    assert blocked.status == FAIL and "not a directory" in blocked.detail

    # The database: absent is fine (created at start); garbage is not.
    assert check_database(settings()).status == OK
    (tmp_path / "storage" / "sidecar.sqlite3").write_bytes(b"this is not a database" * 20)
    broken = check_database(settings())
    assert broken.status == FAIL and "not a database" in broken.detail


def test_doctor_reaches_whatsapp_web_or_says_why_not(tmp_path: Path, phone: Phone) -> None:
    def check(url: str) -> Check:
        return check_wa_web_url(Settings.from_mapping({"WA_WEB_URL": url}))

    # The sandbox's page stands in for web.whatsapp.com: a live server that answers 200.
    assert check(phone.base + "/") == Check("whatsapp web", OK, f"{phone.base}/ answers (HTTP 200)")
    closed = free_port()
    refused = check(f"http://127.0.0.1:{closed}/")
    assert refused.status == FAIL
    assert refused.detail.startswith(
        f"cannot connect to http://127.0.0.1:{closed}/ (connection refused): sessions load "
        "WhatsApp Web from there"
    )
    # Something answers, but not with the page: no session could load it.
    with python_receiver() as receiver:
        wrong = check(receiver.url)
    assert wrong.status == FAIL
    assert wrong.detail.startswith(f"{receiver.url} answers HTTP 405: sessions cannot load")


def test_doctor_counts_only_a_2xx_from_the_webhook_url(tmp_path: Path) -> None:
    def check(url: str, secret: str = WEBHOOK_SECRET) -> Check:
        return check_webhook_url(
            Settings.from_mapping({"SIDECAR_WEBHOOK_URL": url, "SIDECAR_WEBHOOK_SECRET": secret})
        )

    # A PHP endpoint that verifies signatures as Laravel's middleware does.
    with php_receiver(tmp_path, WEBHOOK_SECRET) as receiver:
        where = receiver.url.split("//")[1].split("/")[0]
        assert check(receiver.url) == Check(
            "webhook url", OK, f"{where} answered HTTP 200 to a signed test event"
        )
        receiver.answer(500)
        failed = check(receiver.url)
        assert failed.status == FAIL
        assert failed.detail.startswith(
            f"{where} answered HTTP 500: the app failed on the test event; see Laravel's log"
        )
        receiver.answer(200)
        # Signed with a secret Laravel does not have: refused with 401.
        mismatch = check(receiver.url, secret="another-secret-" + "x" * 32)
        assert mismatch.status == FAIL
        assert mismatch.detail == (
            f"{where} answered HTTP 401: the signed test event was refused, a secret mismatch: "
            "SIDECAR_WEBHOOK_SECRET here and in Laravel's .env must be the same (refused "
            "events go to dead)"
        )
        assert "another-secret" not in mismatch.detail
        pings = [r["payload"] for r in receiver.received()]
    assert len(pings) == 3 and len({p["id"] for p in pings}) == 3  # each ping is new

    # Other refusals, each with what to do about it.
    with python_receiver() as hook:
        where = hook.url.split("//")[1].split("/")[0]
        for status, says in (
            (419, " (CSRF token mismatch): leave the webhook path out of Laravel's CSRF check"),
            (404, ": no POST route there; check the path in SIDECAR_WEBHOOK_URL"),
            (302, ", a redirect to nowhere: webhooks never follow one"),
            (422, ": only a 2xx counts as delivered, and events answered 422 go to dead"),
            (429, ": only a 2xx counts as delivered; events answered 429 are retried"),
        ):
            hook.status = status
            answer = check(hook.url)
            assert answer.status == FAIL
            assert answer.detail.startswith(f"{where} answered HTTP {status}{says}"), answer
    # Link-local and metadata addresses never get a webhook, so doctor does not post there.
    metadata = check("http://169.254.169.254/latest")
    assert metadata.status == FAIL and metadata.detail.startswith("no webhook is ever sent there")


# --- demo -----------------------------------------------------------------------------------


@pytest.mark.browser
def test_demo_completes_and_leaves_nothing_behind(tmp_path: Path) -> None:
    # An empty directory with no .env: the demo needs nothing but the checkout's setup.
    env = clean_env(TMPDIR=str(tmp_path))
    result = run_cli("demo", "--timeout", "60", env=env, cwd=tmp_path, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in out + result.stderr

    # The QR is drawn in the terminal with block characters.
    assert sum(line.count("█") for line in out.splitlines()) > 200
    assert "QR printed (2@" in out
    assert "status connected as 5511999990001" in out
    assert "message delivered: the sandbox saw +5511999990001 send" in out
    assert "message_received webhook: from 5511988880002@c.us" in out
    table = out[out.index("event ") :].splitlines()
    events = {line.split()[0]: line.split()[1] for line in table[1:] if line.startswith("    ")}
    for event in (
        "session_status_changed",
        "qr_code_generated",
        "message_status_updated",
        "message_received",
    ):
        assert events.get(event) == "yes", table
    assert "NO" not in events.values()
    assert "all verified" in out

    # Everything it started is gone: the temp dir, both servers and every Chromium.
    workdir = Path(re.search(r"working in (\S+);", out).group(1))  # type: ignore[union-attr]
    assert workdir.parent == tmp_path
    assert not workdir.exists()
    assert chromium_processes(tmp_path) == []
    for port in re.findall(r"(?:sandbox|sidecar) at http://127\.0\.0\.1:(\d+)", out):
        assert refuses_connections(int(port))


def test_demo_fails_with_a_clear_line(tmp_path: Path) -> None:
    env = clean_env(TMPDIR=str(tmp_path), CHROMIUM_PATH="/nonexistent/chromium")
    result = run_cli("demo", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "FAIL: no Chromium at /nonexistent/chromium" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []  # its temp dir is gone


def test_doctor_says_whether_docs_can_serve_its_viewer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_mapping(base_env(tmp_path))
    ok = check_api_docs(settings)
    assert ok.status == OK and ok.detail.startswith("/docs serves swagger-ui-dist ")
    off = check_api_docs(Settings.from_mapping(base_env(tmp_path, SIDECAR_API_DOCS="false")))
    assert off.status == INFO
    monkeypatch.setitem(apidocs.ASSETS, "swagger-ui.css", (tmp_path, "text/css"))
    missing = check_api_docs(settings)
    assert missing.status == WARN
    assert "swagger-ui.css missing" in missing.detail and "npm ci" in missing.detail
