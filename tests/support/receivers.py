"""Webhook receivers on 127.0.0.1: PHP's built-in server (the Laravel side) and a Python one
whose answers a test controls."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.server import free_port, serve_app, wait_http

PHP_RECEIVER = Path(__file__).resolve().parents[1] / "php" / "webhook_receiver.php"


class PhpReceiver:
    def __init__(self, base: str, log: Path, status_file: Path) -> None:
        self.url = f"{base}/webhooks/whatsapp"
        self.log = log
        self.status_file = status_file

    def answer(self, status: int) -> None:
        self.status_file.write_text(str(status))

    def received(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


@contextmanager
def php_receiver(tmp: Path, secret: str) -> Iterator[PhpReceiver]:
    php = shutil.which("php")
    assert php is not None, "php-cli is required (scripts/test installs it)"
    port = free_port()
    log, status_file = tmp / "php-received.jsonl", tmp / "php-status"
    env = {
        **os.environ,
        "WEBHOOK_SECRET": secret,
        "RECEIVER_LOG": str(log),
        "RECEIVER_STATUS_FILE": str(status_file),
    }
    proc = subprocess.Popen(
        [php, "-S", f"127.0.0.1:{port}", str(PHP_RECEIVER)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc=proc)
        log.unlink(missing_ok=True)  # the readiness probe itself is not a webhook
        yield PhpReceiver(f"http://127.0.0.1:{port}", log, status_file)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Receiver:
    """Records every request; answers `status` (a test flips it), with `answer` when set, after
    `delay` seconds."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.answer: dict[str, Any] | None = None  # the JSON answered, when a test sets one
        self.delay = 0.0
        self.url = ""
        self.active = 0
        self.max_active = 0
        self.holding: list[str] = []  # ids of the events whose answer is being held

    def app(self) -> Starlette:
        import asyncio

        async def hook(request: Request) -> Response:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            try:
                return await record(request)
            finally:
                self.active -= 1

        async def record(request: Request) -> Response:
            body = await request.body()
            seen = {
                "headers": dict(request.headers),
                "body": body,
                "json": json.loads(body or b"{}"),
                "query": dict(request.query_params),
                "path": request.url.path,
            }
            self.requests.append(seen)
            if self.delay:
                held = str(seen["json"].get("id"))
                self.holding.append(held)
                try:
                    await asyncio.sleep(self.delay)
                finally:
                    self.holding.remove(held)
            answer = self.answer if self.answer is not None else {"ok": self.status < 300}
            return JSONResponse(answer, status_code=self.status)

        return Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])])

    def events(self) -> list[dict[str, Any]]:
        return [r["json"] for r in self.requests]


@contextmanager
def python_receiver(port: int | None = None) -> Iterator[Receiver]:
    receiver = Receiver()
    with serve_app(receiver.app(), port=port) as base:
        receiver.url = f"{base}/hook"
        yield receiver
