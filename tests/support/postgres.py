"""A real PostgreSQL server for tests (Debian's ``postgresql`` package), started in a temp
directory on a free loopback port and stopped at the end.

``initdb`` refuses to run as root (CI runs as root), so as root the cluster belongs to the
``postgres`` system user the package creates and every server program runs through
``runuser -u postgres --``; as anyone else it runs as that user. Without the binaries a test
is skipped locally and fails under ``CI=true`` (see :func:`tests.support.peers.require`).

    with PostgresServer() as pg:
        url = pg.new_database()        # postgresql://fwagent@127.0.0.1:PORT/db_1
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support import peers

USER = "fwagent"


def bindir() -> Path | None:
    """Where initdb/pg_ctl live: ``pg_config --bindir``, else the newest Debian version."""
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def require() -> Path:
    found = bindir()
    if found is None:
        message = "PostgreSQL server binaries not installed (apt-get install postgresql)"
        if peers.IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


class PostgresServer:
    """One throwaway cluster; ``fsync`` off (tests prove logic, not disk durability)."""

    def __init__(self, fsync: bool = False) -> None:
        self.bin = require()
        self.fsync = fsync
        self.port = peers.free_port()
        self.root = Path(tempfile.mkdtemp(prefix="fwagent-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.as_root = os.geteuid() == 0
        self._names = itertools.count(1)

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        return subprocess.run(
            [*prefix, *command], capture_output=True, text=True, check=check, timeout=120
        )

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        self.data.mkdir()
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.data, "postgres", "postgres")
            self.log.touch()
            shutil.chown(self.log, "postgres", "postgres")
        init = self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
            "-E", "UTF8", "--no-sync", check=False,
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr.strip()[-2000:]}")
        options = self._options()
        started = self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "-t", "60", "start", check=False,
        )  # fmt: skip
        if started.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"postgres did not start: {started.stderr.strip()} {log[-2000:]}")
        self._wait()
        return self

    def _wait(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def restart(self) -> None:
        """Stop (fast: connections are cut) and start again on the same port and data."""
        stopped = self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop",
            check=False,
        )  # fmt: skip
        if stopped.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {stopped.stderr.strip()}")
        options = self._options()
        started = self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "-t", "60", "start", check=False,
        )  # fmt: skip
        if started.returncode != 0:
            raise RuntimeError(f"postgres did not restart: {started.stderr.strip()}")
        self._wait()

    def _options(self) -> str:
        return (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories=''"
            f" -c fsync={'on' if self.fsync else 'off'} -c max_connections=200"
        )

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = f"db_{next(self._names)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url_for(name)

    def stop(self) -> None:
        if self.data.exists():
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop",
                check=False,
            )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
