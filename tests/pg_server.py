"""A real, throwaway PostgreSQL server for the tests (no mocks): Debian's ``postgresql`` binaries,
one cluster per test session in a temporary folder, listening on a free 127.0.0.1 port, and a fresh
database per test.

PostgreSQL refuses to run as root: as root the cluster belongs to the ``postgres`` user and every
server command runs through ``runuser``. Tests using it skip, saying why, only when the binaries are
absent (``scripts/run_tests.sh`` installs them). Import the fixtures into a test module:
``from pg_server import pg_server, pg_url  # noqa: F401``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from routellm_demo.llm.local import free_port


def pg_bin() -> Path | None:
    """The newest installed server's bin folder (``/usr/lib/postgresql/<major>/bin``), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


class PgServer:
    """One cluster: ``start()``, ``create_database()`` -> URL, ``drop_database(url)``, ``stop()``.
    ``durable=False`` turns fsync off (tests: faster, and nothing must survive a machine crash)."""

    def __init__(self, *, durable: bool = False):
        self.bin = pg_bin()
        if self.bin is None:
            raise FileNotFoundError("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): "
                                    "install Debian's postgresql package (scripts/run_tests.sh does)")
        self.durable = durable
        self.as_root = os.geteuid() == 0
        # as root, under /tmp: a private $TMPDIR (root's own, mode 700) would be closed to the postgres user
        self.folder = Path(tempfile.mkdtemp(prefix="routellm_pg_", dir="/tmp" if self.as_root else None))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = free_port()
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.folder, check=True)

    def start(self) -> "PgServer":
        if self.as_root:
            shutil.chown(self.folder, "postgres", "postgres")
        os.chmod(self.folder, 0o700)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8",
                  "--no-sync")
        settings = [f"port = {self.port}", "listen_addresses = '127.0.0.1'",
                    f"unix_socket_directories = '{self.folder}'", "max_connections = 200", "shared_buffers = 64MB"]
        if not self.durable:
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n".join(settings) + "\n")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        self.started = True
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _admin(self):
        import psycopg

        return psycopg.connect(self.url(), autocommit=True, connect_timeout=10)

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with contextlib.suppress(Exception), self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop", timeout=60)
            self.started = False
        shutil.rmtree(self.folder, ignore_errors=True)

    def tail(self, n: int = 20) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return ""

    def __enter__(self) -> "PgServer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture(scope="session")
def pg_server():
    """The session's PostgreSQL server (started on first use, stopped at the end)."""
    if pg_bin() is None:
        pytest.skip("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): install Debian's "
                    "postgresql package (scripts/run_tests.sh installs it)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: PostgreSQL refuses to run as root")
    started = time.perf_counter()
    with PgServer() as server:
        print(f"\npg_server: PostgreSQL on 127.0.0.1:{server.port} started in {time.perf_counter() - started:.1f} s")
        yield server


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the session's server; dropped after the test."""
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)
