"""`python -m service db migrate | status | copy`: the store's schema and moving it.

`copy` moves a single host's store (its SQLite file, by default) onto MySQL/MariaDB with every
session, message and outbox event: stop the service, copy, point SIDECAR_DATABASE_URL at the
new store, start it. Sessions keep their browser profiles on disk, so they come back
connected without a new QR.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from typing import Any

from service.digits import ascii_int
from service.errors import ConfigError
from service.settings import Settings
from service.store.sql import TABLE_NAMES, SqlStore, open_store


def _say(line: str) -> None:
    print(line, flush=True)


def _fail(message: str) -> int:
    print(f"wa-sidecar db: {message}", file=sys.stderr)
    return 2


def _store(url: str | None, settings: Settings) -> SqlStore:
    return open_store(url or settings.store_url, settings.db_prefix)


async def inspect_store(store: SqlStore) -> dict[str, Any]:
    """What `db status` and the doctor report, read without migrating: `current` and `head`
    revisions, the server info, and `sessions` (counted only at head: a legacy file has
    other tables)."""
    await store.open(migrate=False)
    try:
        current, head = await store.schema_status()
        info = await store.server_info()
        sessions = await store.count_sessions() if current == head else 0
        return {"current": current, "head": head, "sessions": sessions, **info}
    finally:
        await store.close()


def cmd_status(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        store = _store(args.url, settings)
        if store.path is not None and not store.path.exists():
            # Looking must not create the file.
            _say(f"{store.path} does not exist yet: the service (or `db migrate`) creates it")
            return 1
        status = asyncio.run(inspect_store(store))
    except ConfigError as exc:
        return _fail(str(exc))
    _say(f"store      {status['engine']} {status['server_version']} at {store.display_url}")
    _say(f"prefix     {status['prefix']!r}")
    _say(f"schema     {status['current'] or 'empty'} (head {status['head']})")
    if status["engine"] != "sqlite":
        _say(f"charset    {status['charset']} / {status['collation']}")
        _say(f"sql_mode   {status['sql_mode']}")
        _say(f"skip lock  {'yes' if status['skip_locked'] else 'no'}")
    if status["current"] != status["head"]:
        _say("run `python -m service db migrate` (the service also migrates when it starts)")
        return 1
    return 0


async def _migrate(store: SqlStore) -> tuple[str | None, str | None]:
    await store.open(migrate=False)
    try:
        before, _ = await store.schema_status()
        await store.migrate()
        after, _ = await store.schema_status()
        return before, after
    finally:
        await store.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        store = _store(args.url, settings)
        before, after = asyncio.run(_migrate(store))
    except ConfigError as exc:
        return _fail(str(exc))
    if before == after:
        _say(f"{store.display_url}: already at {after}")
    else:
        _say(f"{store.display_url}: {before or 'empty'} -> {after}")
    return 0


async def _counts(store: SqlStore) -> dict[str, int]:
    counts = {}
    for table in TABLE_NAMES:
        counts[table] = 0
        async for rows in store.iter_rows(table):
            counts[table] += len(rows)
    return counts


async def _digest(store: SqlStore) -> str:
    """A hash of every row: equal before and after the copy only if nothing changed."""
    digest = hashlib.sha256()
    for table in TABLE_NAMES:
        digest.update(table.encode())
        async for rows in store.iter_rows(table):
            digest.update(json.dumps(rows, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class SourceChanged(Exception):
    """The source store was written while it was copied."""


async def _copy(source: SqlStore, target: SqlStore, batch: int) -> dict[str, int]:
    await source.open(migrate=True)
    try:
        await target.open(migrate=True)
        try:
            already = await _counts(target)
            if any(already.values()):
                raise ConfigError(
                    f"{target.display_url} already holds rows ({_describe(already)}): copy into "
                    "an empty store, or use another SIDECAR_DB_PREFIX"
                )
            before = await _digest(source)
            copied = await source.copy_to(target, batch)
            if await _digest(source) != before:
                raise SourceChanged
            return copied
        finally:
            await target.close()
    finally:
        await source.close()


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {table}" for table, n in counts.items())


def cmd_copy(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        source = _store(args.source, settings)
        target = open_store(args.target, args.prefix or settings.db_prefix)
        copied = asyncio.run(_copy(source, target, args.batch))
    except ConfigError as exc:
        return _fail(str(exc))
    except SourceChanged:
        return _fail(
            "the source changed while it was copied (is the service still running?): stop "
            "it, empty the target (or use another --prefix) and copy again"
        )
    _say(f"copied {_describe(copied)}")
    _say(f"from {source.display_url}")
    _say(f"to   {target.display_url}")
    _say("now set SIDECAR_DATABASE_URL to the new store and start the service")
    return 0


def _batch(text: str) -> int:
    value = ascii_int(text, low=1, high=100_000)
    if value is None:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 100000")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `db` on the CLI's subparsers."""
    db = sub.add_parser("db", help="the store: schema status, migrations, copy to MySQL")
    actions = db.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="engine, server and schema version")
    status.add_argument("--url", help="a store other than SIDECAR_DATABASE_URL")
    status.set_defaults(func=cmd_status)
    migrate = actions.add_parser("migrate", help="bring the schema to the current version")
    migrate.add_argument("--url", help="a store other than SIDECAR_DATABASE_URL")
    migrate.set_defaults(func=cmd_migrate)
    copy = actions.add_parser("copy", help="copy every row into an empty store")
    copy.add_argument(
        "--from", dest="source", help="the store to read (default SIDECAR_DATABASE_URL)"
    )
    copy.add_argument("--to", dest="target", required=True, help="the empty store to fill")
    copy.add_argument("--prefix", help="table prefix in the target (default SIDECAR_DB_PREFIX)")
    copy.add_argument("--batch", type=_batch, default=500, help="rows per transaction")
    copy.set_defaults(func=cmd_copy)
