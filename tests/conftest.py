"""Shared fixtures: settings on a temp dir, a live sidecar on 127.0.0.1, signed clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from service.app import create_app
from service.settings import Settings
from tests.support.server import serve_app
from tests.support.signing import SidecarAuth

if TYPE_CHECKING:
    from tests.support.mariadb import PrivateMariaDB

API_SECRET = "test-api-secret-0123456789abcdef"
WEBHOOK_SECRET = "test-webhook-secret-0123456789abcdef"
ENCRYPTION_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def pytest_collection_finish(session: pytest.Session) -> None:
    # An empty run must never look like a pass (pytest's "no tests" code is easy to miss).
    if not session.items and not session.config.option.collectonly:
        raise pytest.UsageError("no tests were collected")


def base_env(storage: Path, **extra: str) -> dict[str, str]:
    """The environment of a sidecar on `storage`, as the CLI and scripts read it."""
    return {
        "SIDECAR_API_SECRET": API_SECRET,
        "SIDECAR_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SIDECAR_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "SIDECAR_STORAGE_DIR": str(storage),
        **extra,
    }


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**extra: str) -> Settings:
        return Settings.from_mapping(base_env(tmp_path / "storage", **extra))

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def live(settings: Settings) -> Iterator[str]:
    """Base URL of a sidecar built from `settings`, served by uvicorn on 127.0.0.1."""
    with serve_app(create_app(settings, with_browsers=False)) as base:
        yield base


@pytest.fixture
def api(live: str) -> Iterator[httpx.Client]:
    """A client that signs every request with the API secret."""
    with httpx.Client(base_url=live, auth=SidecarAuth(API_SECRET), timeout=30) as client:
        yield client


@pytest.fixture
def raw(live: str) -> Iterator[httpx.Client]:
    """A client that signs nothing, for building requests by hand."""
    with httpx.Client(base_url=live, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMariaDB]:
    """One private MariaDB for the whole run, started on first use; tests isolate themselves
    with `mariadb_server.fresh_database(name)`."""
    from tests.support.mariadb import PrivateMariaDB, mariadb_available

    if not mariadb_available():
        # Not a skip: a store suite that silently ran on one engine would pass for nothing.
        pytest.fail("MariaDB is not installed: ./scripts/test installs mariadb-server")
    server = PrivateMariaDB(tmp_path_factory.mktemp("mariadb")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def engine() -> str:
    """The store engine a test runs on; `@pytest.mark.parametrize("engine", ENGINES)` runs it
    on both."""
    return "sqlite"


ENGINES = ["sqlite", "mariadb"]


@pytest.fixture
def database(engine: str, request: pytest.FixtureRequest) -> Callable[[str], dict[str, str]]:
    """`database(name)`: the settings that put a sidecar's store on `engine`: nothing for
    SQLite (the file under its storage), a fresh MariaDB database `name` otherwise."""

    def settings_for(name: str) -> dict[str, str]:
        if engine == "sqlite":
            return {}
        server = request.getfixturevalue("mariadb_server")
        return {"SIDECAR_DATABASE_URL": server.fresh_database(name)}

    return settings_for


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each engine (the test runs once per engine)."""
    if request.param == "sqlite":
        return str(tmp_path / "db" / "s.sqlite3")
    from tests.support.stores import database_name

    server = request.getfixturevalue("mariadb_server")
    return str(server.fresh_database(database_name(request)))
