"""A private MariaDB server for tests: never the system service.

`PrivateMariaDB(base_dir).start()` initialises a data directory under `base_dir` with
mariadb-install-db, runs mariadbd as a child process with its own data dir, socket, pid file,
error log and a free port on 127.0.0.1, then creates a database and a user with a password.
`stop()` ends exactly the process it started, by its pid: SIGTERM, a bounded wait, SIGKILL.

The binaries come from Debian's mariadb-server (mariadb-server-core is enough); ./scripts/test
installs it. Both mariadb-install-db and mariadbd get --no-defaults, so nothing in /etc/mysql
(datadir /var/lib/mysql, socket /run/mysqld/mysqld.sock, ...) reaches the private instance.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pymysql

from tests.support.server import free_port

# mariadbd lives in /usr/sbin, which is often not on a non-root user's PATH.
_EXTRA_PATH = ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin")
_SERVER_NAMES = ("mariadbd", "mysqld")
_INSTALL_DB_NAMES = ("mariadb-install-db", "mysql_install_db")
_MISSING = (
    "MariaDB is not installed: no {what} found on PATH or in /usr/sbin. The MariaDB tests run "
    "a private server from Debian's mariadb-server package; ./scripts/test installs it, or run "
    "`apt-get install mariadb-server` as root (the system service is never used)."
)
# Database and user names go into SQL as identifiers, so only these characters are allowed.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_]{1,64}")
# sun_path is 108 bytes on Linux, the terminating NUL included.
_MAX_SOCKET_PATH = 100
_PR_SET_PDEATHSIG = 1


class MariaDBUnavailable(RuntimeError):
    """The MariaDB server binaries are not installed."""


def _which(names: tuple[str, ...]) -> str | None:
    search = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_PATH])
    for name in names:
        found = shutil.which(name, path=search)
        if found:
            return found
    return None


def find_binaries() -> tuple[str, str]:
    """(install-db script, server binary), or MariaDBUnavailable saying how to install them."""
    install_db = _which(_INSTALL_DB_NAMES)
    if install_db is None:
        raise MariaDBUnavailable(_MISSING.format(what=" or ".join(_INSTALL_DB_NAMES)))
    server = _which(_SERVER_NAMES)
    if server is None:
        raise MariaDBUnavailable(_MISSING.format(what=" or ".join(_SERVER_NAMES)))
    return install_db, server


def mariadb_available() -> bool:
    """Whether a private MariaDB server can be started here (the binaries are installed)."""
    try:
        find_binaries()
    except MariaDBUnavailable:
        return False
    return True


def _die_with_parent_hook() -> Any:
    """A preexec_fn that has the kernel SIGTERM the server if this process dies uncleanly.

    Only from the main thread: the death signal follows the thread that forked, not the process.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    return hook


def _check_identifier(name: str, what: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{what} {name!r}: use 1 to 64 of A-Z, a-z, 0-9 and _")
    return name


class PrivateMariaDB:
    """One mariadbd child process with all its state under `base_dir`."""

    def __init__(
        self,
        base_dir: Path,
        *,
        database: str = "wa_sidecar",
        user: str = "wa_sidecar",
        password: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.install_db, self.server_binary = find_binaries()
        self.base_dir = Path(base_dir).resolve()
        self.datadir = self.base_dir / "data"
        self.tmpdir = self.base_dir / "tmp"
        self.pid_file = self.base_dir / "mariadbd.pid"
        self.log_error = self.base_dir / "mariadbd.err"
        self.stdout_log = self.base_dir / "mariadbd.out"
        self.socket = self.base_dir / "mariadbd.sock"
        # pytest's tmp_path can be longer than a unix socket path may be: then a short
        # directory of our own in /tmp holds the socket (made by start, removed by stop).
        self._short_socket = len(os.fsencode(self.socket)) > _MAX_SOCKET_PATH
        self._socket_dir: Path | None = None
        self.database = _check_identifier(database, "database")
        self.user = _check_identifier(user, "user")
        self.password = password or secrets.token_hex(16)
        self.startup_timeout = startup_timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.timings: dict[str, float] = {}
        self._as_root = os.geteuid() == 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> PrivateMariaDB:
        """Initialise the data dir (first time only), start mariadbd, create database and user."""
        if self.proc is not None:
            raise RuntimeError("this PrivateMariaDB is already started")
        for directory in (self.base_dir, self.tmpdir):
            directory.mkdir(parents=True, exist_ok=True)
        if self._short_socket and self._socket_dir is None:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="wa-mariadb-", dir="/tmp"))
            self.socket = self._socket_dir / "mariadbd.sock"
        started = time.monotonic()
        if not (self.datadir / "mysql").is_dir():
            self._install()
        self.timings["install_db"] = time.monotonic() - started
        try:
            launched = time.monotonic()
            self._launch_and_wait()
            self.timings["start"] = time.monotonic() - launched
            prepared = time.monotonic()
            self._create_database_and_user()
            self.timings["setup"] = time.monotonic() - prepared
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - started
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the mariadbd this object started (by pid), wait, then SIGKILL. Idempotent.

        The data dir stays, so start() again serves the same databases (on a new port).
        """
        self._terminate(timeout)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def _terminate(self, timeout: float = 30.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def __enter__(self) -> PrivateMariaDB:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests use ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """mysql+pymysql://user:pass@127.0.0.1:PORT/dbname?charset=utf8mb4 for the main database."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        _check_identifier(database, "database")
        return (
            f"mysql+pymysql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"
            "?charset=utf8mb4"
        )

    def fresh_database(self, name: str) -> str:
        """An empty database `name` (dropped first if it exists) the test user owns; its url."""
        self._create_database(name, drop_first=True)
        return self.url_for(name)

    def _create_database(self, name: str, *, drop_first: bool) -> None:
        _check_identifier(name, "database")
        with self.admin() as conn, conn.cursor() as cur:
            if drop_first:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(
                f"CREATE DATABASE IF NOT EXISTS `{name}` "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
            cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@'%%'", (self.user,))

    def drop_database(self, name: str) -> None:
        _check_identifier(name, "database")
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def connect(self, database: str | None = None, **kwargs: Any) -> pymysql.connections.Connection:
        """A connection as the test user over TCP, the way the service connects."""
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": database or self.database,
            "charset": "utf8mb4",
            "connect_timeout": 10,
            **kwargs,
        }
        return pymysql.connect(**options)

    def admin(self, **kwargs: Any) -> pymysql.connections.Connection:
        """A root connection over the private socket (root has no password in this instance)."""
        options: dict[str, Any] = {
            "unix_socket": str(self.socket),
            "user": "root",
            "charset": "utf8mb4",
            "autocommit": True,
            "connect_timeout": 5,
            **kwargs,
        }
        return pymysql.connect(**options)

    def error_log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_error.read_text(errors="replace")
        except OSError:
            return "(no error log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- internals -----------------------------------------------------------------------

    def _user_args(self) -> list[str]:
        # mariadbd refuses to run as root unless told to, and would otherwise setuid to mysql.
        return ["--user=root"] if self._as_root else []

    def _common_args(self) -> list[str]:
        """Options the data dir is created with and the server runs with (they must agree)."""
        return [
            f"--datadir={self.datadir}",
            f"--tmpdir={self.tmpdir}",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            # io_uring/libaio may be refused by a container's seccomp or a low `ulimit -l`.
            "--innodb-use-native-aio=0",
            "--skip-name-resolve",
        ]

    def _install(self) -> None:
        command = [
            self.install_db,
            "--no-defaults",  # must come first
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *self._user_args(),
            *self._common_args(),
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=180, check=False, cwd=self.base_dir
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(self.install_db).name} failed with {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )

    def _server_command(self) -> list[str]:
        return [
            self.server_binary,
            "--no-defaults",  # must come first
            *self._user_args(),
            *self._common_args(),
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.log_error}",
            "--innodb-flush-log-at-trx-commit=2",
            "--skip-log-bin",
            "--max-connections=300",
        ]

    def _launch_and_wait(self) -> None:
        """Start mariadbd; a port taken between choosing and binding it gets another try."""
        for attempt in range(3):
            self.port = free_port()
            with contextlib.suppress(FileNotFoundError):
                self.log_error.unlink()
            with open(self.stdout_log, "ab") as out:
                self.proc = subprocess.Popen(
                    self._server_command(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.base_dir,
                    start_new_session=True,
                    preexec_fn=_die_with_parent_hook(),
                )
            self.pid = self.proc.pid
            try:
                self._wait_ready()
                return
            except _PortTaken:
                self._terminate()
                if attempt == 2:
                    raise RuntimeError(
                        "mariadbd could not bind a free port three times:\n" + self.error_log_tail()
                    ) from None

    def _wait_ready(self) -> None:
        """Poll the socket until root can log in, bounded by startup_timeout."""
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.error_log_tail()
                if "Address already in use" in tail or "Bind on TCP/IP port" in tail:
                    raise _PortTaken
                raise RuntimeError(
                    f"mariadbd (pid {self.proc.pid}) exited with {self.proc.returncode} "
                    f"before accepting connections; {self.log_error}:\n{tail}"
                )
            if self.socket.exists():
                try:
                    self.admin(connect_timeout=2).close()
                    return
                except pymysql.err.OperationalError as exc:
                    last_error = exc
            time.sleep(0.02)
        raise TimeoutError(
            f"mariadbd (pid {self.proc.pid}) did not accept connections within "
            f"{self.startup_timeout} s (last error: {last_error}); {self.log_error}:\n"
            + self.error_log_tail()
        )

    def _create_database_and_user(self) -> None:
        with self.admin() as conn, conn.cursor() as cur:
            # install-db also makes root@<hostname>, which --skip-name-resolve only warns about.
            cur.execute("SELECT Host FROM mysql.global_priv WHERE User = 'root'")
            for (host,) in cur.fetchall():
                if host not in ("localhost", "127.0.0.1", "::1"):
                    cur.execute("DROP USER %s@%s", ("root", host))
            cur.execute("DROP USER IF EXISTS ''@'localhost'")
            cur.execute(
                "CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (self.user, self.password)
            )
            cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (self.user, self.password))
        self._create_database(self.database, drop_first=False)


class _PortTaken(Exception):
    """mariadbd lost the race for the port it was given."""
