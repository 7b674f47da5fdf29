"""The private MariaDB server the MySQL store engine's tests will run against (a real one)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pymysql
import pytest

from tests.support import mariadb as mariadb_support
from tests.support.mariadb import MariaDBUnavailable, PrivateMariaDB, mariadb_available


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMariaDB]:
    server = PrivateMariaDB(tmp_path_factory.mktemp("mariadb")).start()
    try:
        yield server
    finally:
        server.stop()


def _connect_url(url: str) -> pymysql.connections.Connection:
    parts = urlsplit(url)
    assert parts.scheme == "mysql+pymysql"
    assert parts.query == "charset=utf8mb4"
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port,
        user=parts.username,
        password=parts.password,
        database=parts.path.lstrip("/"),
        charset="utf8mb4",
    )


def test_the_binaries_are_installed() -> None:
    assert mariadb_available(), "./scripts/test installs mariadb-server; run it once"


def test_missing_binaries_say_how_to_install_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(mariadb_support, "_EXTRA_PATH", ())
    assert not mariadb_available()
    with pytest.raises(MariaDBUnavailable, match="apt-get install mariadb-server"):
        PrivateMariaDB(tmp_path)


def test_a_private_modern_server_with_utf8mb4(mariadb: PrivateMariaDB) -> None:
    assert re.fullmatch(
        r"mysql\+pymysql://wa_sidecar:[0-9a-f]{32}@127\.0\.0\.1:\d+/wa_sidecar\?charset=utf8mb4",
        mariadb.url,
    )
    with _connect_url(mariadb.url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT @@version, @@datadir, @@socket, @@port, @@bind_address,"
            " @@character_set_server, @@collation_server, @@log_bin, @@max_connections"
        )
        version, datadir, sock, port, bind, charset, collation, log_bin, max_conn = cur.fetchone()
    assert "MariaDB" in version
    major, minor = (int(n) for n in version.split(".")[:2])
    assert (major, minor) >= (10, 6), version
    # Its own data dir and socket, not /var/lib/mysql or /run/mysqld.
    assert Path(datadir).resolve() == mariadb.datadir
    assert sock == str(mariadb.socket)
    assert (port, bind) == (mariadb.port, "127.0.0.1")
    assert (charset, collation) == ("utf8mb4", "utf8mb4_unicode_ci")
    assert (log_bin, max_conn) == (0, 300)
    assert psutil.Process(mariadb.pid).ppid() == psutil.Process().pid


def test_an_emoji_round_trips(mariadb: PrivateMariaDB) -> None:
    mariadb.fresh_database("emoji")
    with mariadb.connect("emoji", autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE t (s VARCHAR(16) NOT NULL)"
            " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        cur.execute("INSERT INTO t (s) VALUES (%s)", ("😀",))
        cur.execute("SELECT s, CHAR_LENGTH(s), LENGTH(s) FROM t")
        assert cur.fetchall() == (("😀", 1, 4),)


def test_for_update_skip_locked_skips_a_locked_row(mariadb: PrivateMariaDB) -> None:
    mariadb.fresh_database("skip_locked")
    with mariadb.connect("skip_locked", autocommit=True) as setup, setup.cursor() as cur:
        cur.execute("CREATE TABLE jobs (id INT PRIMARY KEY, state VARCHAR(8)) ENGINE=InnoDB")
        cur.executemany("INSERT INTO jobs VALUES (%s, 'queued')", [(1,), (2,), (3,)])
    holder = mariadb.connect("skip_locked", autocommit=False)
    claimer = mariadb.connect("skip_locked", autocommit=False)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT id FROM jobs WHERE id = 1 FOR UPDATE")
            assert cur.fetchall() == ((1,),)
        with claimer.cursor() as cur:
            # Were SKIP LOCKED ignored, this would wait for the lock: fail in 2 s, not 50.
            cur.execute("SET SESSION innodb_lock_wait_timeout = 2")
            cur.execute("SELECT id FROM jobs ORDER BY id FOR UPDATE SKIP LOCKED")
            assert cur.fetchall() == ((2,), (3,))
            cur.execute("SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED")
            assert cur.fetchall() == ((2,),)
        claimer.rollback()
        holder.rollback()
    finally:
        claimer.close()
        holder.close()


def test_fresh_database_is_empty_even_when_reused(mariadb: PrivateMariaDB) -> None:
    url = mariadb.fresh_database("isolated")
    assert url == mariadb.url.replace("/wa_sidecar?", "/isolated?")
    with _connect_url(url) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        assert cur.fetchall() == ()
        cur.execute("CREATE TABLE leftover (id INT)")
    assert mariadb.fresh_database("isolated") == url
    with _connect_url(url) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        assert cur.fetchall() == ()
        cur.execute("SELECT @@character_set_database, @@collation_database")
        assert cur.fetchone() == ("utf8mb4", "utf8mb4_unicode_ci")
    with pytest.raises(ValueError, match="database"):
        mariadb.fresh_database("no`such; DROP")


def test_stop_leaves_no_process_and_a_restart_keeps_the_data(tmp_path: Path) -> None:
    # A base dir too long for a unix socket path: the socket goes to a short dir of its own.
    server = PrivateMariaDB(tmp_path / ("x" * 80), startup_timeout=60)
    try:
        server.start()
        first_pid = server.pid
        assert first_pid is not None and psutil.pid_exists(first_pid)
        assert len(str(server.socket)) < 100
        socket_dir = server.socket.parent
        with server.connect(autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE kept (id INT)")
            cur.execute("INSERT INTO kept VALUES (7)")
        server.stop()
        assert not psutil.pid_exists(first_pid)
        assert not socket_dir.exists()

        server.start()
        second_pid = server.pid
        assert second_pid is not None and second_pid != first_pid
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM kept")
            assert cur.fetchall() == ((7,),)
    finally:
        server.stop()
    assert server.proc is None
    assert not psutil.pid_exists(second_pid)
    server.stop()  # idempotent
    datadir = f"--datadir={server.datadir}"
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if datadir in (p.info["cmdline"] or [])]
    assert left == []
