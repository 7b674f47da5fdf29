"""SIDECAR_ENCRYPTION_KEY's formats, and sealing with the key whatever form it was given in."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.errors import ConfigError
from service.secretbox import SecretBox, parse_key
from service.settings import Settings
from tests.conftest import API_SECRET, base_env
from tests.support.server import serve_app
from tests.support.signing import SidecarAuth

KEY = bytes(range(32))


def laravel_key(cipher: str) -> str:
    """A key as Laravel's `php artisan key:generate --show` makes it, by Laravel's own code."""
    php = shutil.which("php")
    assert php is not None, "php-cli is required (scripts/test installs it)"
    script = (
        'require "Illuminate/autoload.php"; echo "base64:" . '
        f'base64_encode(Illuminate\\Encryption\\Encrypter::generateKey("{cipher}"));'
    )
    result = subprocess.run(
        [php, "-r", script], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip()


@pytest.mark.parametrize(
    "raw",
    [
        base64.b64encode(KEY).decode(),  # what `keygen` prints
        "base64:" + base64.b64encode(KEY).decode(),  # Laravel's APP_KEY format
        KEY.hex(),
        KEY.hex().upper(),
        "  base64:" + base64.b64encode(KEY).decode() + "\n",
    ],
)
def test_every_form_of_a_key_is_the_same_key(raw: str) -> None:
    assert parse_key(raw) == KEY


@pytest.mark.php
def test_a_key_laravel_generated_is_accepted_and_seals() -> None:
    raw = laravel_key("aes-256-cbc")
    assert raw.startswith("base64:")
    key = parse_key(raw)
    assert len(key) == 32
    # The plain base64 after the prefix is the same key: what one sealed, the other opens.
    sealed = SecretBox(key).seal({"access_token": "t0k3n"}, "session-1")
    plain = parse_key(raw.removeprefix("base64:"))
    assert SecretBox(plain).open(sealed, "session-1") == {"access_token": "t0k3n"}


def test_the_service_takes_a_laravel_key_from_env(tmp_path: Path) -> None:
    env = base_env(tmp_path / "storage")
    env.pop("SIDECAR_ENCRYPTION_KEY")
    env_file = tmp_path / ".env"
    env_file.write_text(f"SIDECAR_ENCRYPTION_KEY=base64:{base64.b64encode(KEY).decode()}\n")
    settings = Settings.from_env(env, env_file=env_file)
    with (
        serve_app(create_app(settings, with_browsers=False)) as base,
        httpx.Client(base_url=base, auth=SidecarAuth(API_SECRET)) as client,
    ):
        # Meta credentials are accepted only with a usable key: they are sealed with it.
        response = client.post(
            "/api/sessions",
            json={
                "workspace_id": "w",
                "provider_mode": "meta",
                "start": False,
                "meta": {"phone_number_id": "1098765", "access_token": "t0k3n"},
            },
        )
    assert response.status_code == 201, response.text
    assert response.json()["meta"] == {"configured": True, "phone_number_id": "1098765"}


@pytest.mark.php
def test_a_laravel_key_of_the_wrong_length_is_refused() -> None:
    # AES-128 is Laravel's other cipher: its 16-byte key is no AES-256 key.
    with pytest.raises(ConfigError, match="must be 32 bytes"):
        parse_key(laravel_key("aes-128-cbc"))


REFUSED = (
    "SIDECAR_ENCRYPTION_KEY must be 32 bytes in base64 (as `keygen` prints it, or Laravel's "
    "`base64:...`) or 64 hex characters"
)


@pytest.mark.parametrize(
    "raw",
    [
        base64.b64encode(bytes(16)).decode(),
        "base64:" + base64.b64encode(bytes(16)).decode(),
        "base64:" + base64.b64encode(bytes(33)).decode(),
        "base64:",
        "base64:" + KEY.hex(),  # after the prefix it is base64, never hex: 48 bytes
    ],
)
def test_wrong_lengths_are_refused_alike(raw: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_key(raw)
    assert str(refused.value) == REFUSED


@pytest.mark.parametrize(
    "raw",
    ["not-a-key", "base64:not base64!", "g" * 64, "base64:" + KEY.hex()[:63]],
)
def test_what_does_not_decode_is_refused_alike(raw: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_key(raw)
    assert str(refused.value) == REFUSED
