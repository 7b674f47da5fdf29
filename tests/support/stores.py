"""Opening stores in tests: a database name per test, and stores closed at the end."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from service.store import SqlStore

# `await opener(prefix="wa_", **options)`: another open SqlStore on the test's database.
Opener = Callable[..., Awaitable[SqlStore]]


def database_name(request: pytest.FixtureRequest) -> str:
    """A MariaDB database name of this test's own (test ids are too long and too free)."""
    return "t_" + hashlib.blake2b(request.node.nodeid.encode(), digest_size=10).hexdigest()


async def opened_stores(url: str) -> AsyncIterator[Opener]:
    """Yield an opener of stores on `url`, as separate processes would have them; every
    store it opened is closed afterwards."""
    opened: list[SqlStore] = []

    async def open_(prefix: str = "wa_", **options: Any) -> SqlStore:
        store = SqlStore(url, prefix, **options)
        await store.open()
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()
