"""A real, throw-away PostgreSQL server for tests, started by the tests themselves.

Tests that must pass on both database backends take the ``database_url`` fixture: it is
parametrized over ``sqlite`` and ``postgresql`` and yields a fresh, empty database URL per
test (a file in ``tmp_path``, or a new database on one shared server). ``postgres_url`` is
the shared server's ``bigevy`` database; the server starts on first use, once per session::

    from sqlalchemy import create_engine, text

    from tests.support.postgres import database_url, postgres_url

    FIXTURES = (database_url, postgres_url)  # pytest finds fixtures in the module namespace

    def test_roundtrip(database_url: str) -> None:  # runs as [sqlite] and [postgresql]
        engine = create_engine(database_url)
        ...
        engine.dispose()

Import the fixtures you use: pytest only sees fixtures in the test module's namespace.
Naming them once at module level (``FIXTURES = ...``) keeps ruff quiet; a bare
``# noqa: F401`` import would still trip F811 at every test taking the fixture.
The server needs PostgreSQL's binaries (``initdb``, ``pg_ctl``: Debian's ``postgresql``
package). Without them the fixtures fail, loudly; they never skip. As root, the server
runs as the unprivileged ``postgres`` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import psycopg
import pytest

PG_USER_AS_ROOT = "postgres"
INSTALL_HINT = (
    "PostgreSQL binaries (initdb, pg_ctl) not found in PATH or /usr/lib/postgresql/*/bin: "
    "install `postgresql` (Debian: apt-get install postgresql), as .ci/run does."
)

# Runs beside the test process and stops the server + removes its directory once that
# process is gone for any reason (SIGKILL, pytest-timeout's os._exit, ...): its stdin is a
# pipe whose write end only the test process holds, so EOF means "the owner is gone".
_WATCHDOG = """
import shutil, signal, subprocess, sys, json, os
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.stdin.buffer.read()
stop, tmp = json.loads(sys.argv[1]), sys.argv[2]
if os.path.isdir(tmp):
    subprocess.run(stop, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, cwd="/", timeout=60, check=False)
    shutil.rmtree(tmp, ignore_errors=True)
"""


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, else the newest
    ``/usr/lib/postgresql/<version>/bin``. None when PostgreSQL is not installed."""
    candidates: list[Path] = []
    if found := shutil.which("initdb"):
        candidates += [Path(found).resolve().parent, Path(found).parent]
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / exe, os.X_OK) for exe in ("initdb", "pg_ctl")):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> pwd.struct_passwd:
    """Who runs PostgreSQL: the current user, or an unprivileged system user under root."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(PG_USER_AS_ROOT)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", PG_USER_AS_ROOT],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(PG_USER_AS_ROOT)


class PostgresServer:
    """``with PostgresServer() as pg: pg.url`` - a private PostgreSQL on 127.0.0.1.

    initdb into a temp dir (trust auth, UTF8, no fsync anywhere), pg_ctl start on a free
    port with the unix socket inside that dir, database ``bigevy`` created. Exit stops the
    server and removes the dir; a watchdog process does the same if this process dies.
    """

    def __init__(self, bindir: Path | None = None) -> None:
        found = bindir or find_pg_bin()
        if found is None:
            raise FileNotFoundError(INSTALL_HINT)
        self.bindir = found
        self.user = _server_user()
        self.host = "127.0.0.1"
        self.port = 0
        self.tmp: Path | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None  # initdb + start + CREATE DATABASE

    # -- public ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.url_for("bigevy")

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user.pw_name}@{self.host}:{self.port}/{database}"

    def admin(self) -> psycopg.Connection:
        """An autocommit connection to the ``postgres`` database (for CREATE/DROP DATABASE)."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user.pw_name,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        )

    def create_database(self, name: str) -> str:
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def start(self) -> PostgresServer:
        started = time.monotonic()
        # Short path: a unix socket path must stay under ~107 bytes. As root, /tmp so that
        # the postgres user can reach it whatever TMPDIR is.
        base = tempfile.gettempdir()
        if os.geteuid() == 0 or len(base) > 60:
            base = "/tmp"
        self.tmp = Path(tempfile.mkdtemp(prefix="bigevy-pg-", dir=base))
        (self.tmp / "sock").mkdir()
        if os.geteuid() == 0:
            for path in (self.tmp, self.tmp / "sock"):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        self._start_watchdog()
        try:
            self._run(
                "initdb",
                "-D",
                self.data,
                "-U",
                self.user.pw_name,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            )
            with open(Path(self.data) / "postgresql.conf", "a") as conf:
                conf.write(
                    "\n# tests/support/postgres.py: private, throw-away, fast\n"
                    f"listen_addresses = '{self.host}'\n"
                    f"unix_socket_directories = '{self.tmp / 'sock'}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                )
            for attempt in range(3):  # the free port can be taken before postgres binds it
                self.port = _free_port()
                try:
                    self._run(
                        "pg_ctl",
                        "start",
                        "-D",
                        self.data,
                        "-l",
                        self.log,
                        "-w",
                        "-t",
                        "60",
                        "-o",
                        f"-p {self.port}",
                    )
                    break
                except RuntimeError:
                    if attempt == 2:
                        raise
            with self.admin() as conn:
                conn.execute("CREATE DATABASE bigevy")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        if self.tmp is None:
            return
        if (Path(self.data) / "postmaster.pid").exists():
            subprocess.run(
                self._cmd("pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w"),
                capture_output=True,
                cwd="/",
                timeout=60,
                check=False,
            )
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None
        if self._watchdog is not None:
            assert self._watchdog.stdin is not None
            self._watchdog.stdin.close()
            self._watchdog.wait(timeout=30)
            self._watchdog = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------

    @property
    def data(self) -> str:
        assert self.tmp is not None
        return str(self.tmp / "data")

    @property
    def log(self) -> str:
        assert self.tmp is not None
        return str(self.tmp / "server.log")

    def _cmd(self, exe: str, *args: str) -> list[str]:
        cmd = [str(self.bindir / exe), *args]
        if os.geteuid() != 0:
            return cmd
        if shutil.which("runuser"):
            return ["runuser", "-u", self.user.pw_name, "--", *cmd]
        return ["su", "-s", "/bin/sh", "-c", shlex.join(cmd), self.user.pw_name]

    def _run(self, exe: str, *args: str) -> None:
        proc = subprocess.run(
            self._cmd(exe, *args),
            capture_output=True,
            text=True,
            cwd=self.tmp,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            log = Path(self.log).read_text(errors="replace") if Path(self.log).exists() else ""
            raise RuntimeError(
                f"{exe} failed ({proc.returncode}): {shlex.join(proc.args)}\n"
                f"{proc.stdout}{proc.stderr}\n--- server log (tail) ---\n{log[-3000:]}"
            )

    def _start_watchdog(self) -> None:
        stop = self._cmd("pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w")
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, json.dumps(stop), str(self.tmp)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C to the test run must not kill it first
        )


# -- pytest fixtures -------------------------------------------------------------------------

_shared: PostgresServer | BaseException | None = None


def _shared_server(config: pytest.Config) -> PostgresServer:
    """One server per test session (per xdist worker), however many test modules import the
    fixtures; stopped at pytest's unconfigure, which also runs after Ctrl-C."""
    global _shared
    if _shared is None:
        try:
            server = PostgresServer().start()
            _shared = server
        except (FileNotFoundError, RuntimeError, OSError, subprocess.SubprocessError) as e:
            _shared = e
        else:

            def stop() -> None:
                global _shared
                server.stop()
                _shared = None

            config.add_cleanup(stop)
    if isinstance(_shared, FileNotFoundError):
        pytest.fail(str(_shared), pytrace=False)
    if isinstance(_shared, BaseException):
        pytest.fail(f"could not start the test PostgreSQL server: {_shared}", pytrace=False)
    return _shared


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The shared test server's ``bigevy`` database (started once per session)."""
    yield _shared_server(request.config).url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test, on each backend: a SQLite file in tmp_path, or a
    new database on the shared PostgreSQL server (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bigevy.db'}"
        return
    server = _shared_server(request.config)
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)


__all__ = ["PostgresServer", "database_url", "find_pg_bin", "postgres_url"]
