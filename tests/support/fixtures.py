"""pytest fixtures: ``fwlite`` (a started FwliteServer) and ``fw`` (a flywheel.Client on it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("FLYWHEEL_SDK_TOTAL_RETRIES", "0")

from tests.support.fwlite_server import FwliteServer  # noqa: E402


@pytest.fixture
def fwlite(tmp_path: Path) -> Iterator[FwliteServer]:
    server = FwliteServer(tmp_path / "fwlite").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fw(fwlite: FwliteServer) -> Any:
    return fwlite.client()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One real PostgreSQL server for the whole session (tests/support/postgres.py)."""
    from tests.support.postgres import PostgresServer

    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres: Any) -> str:
    """A fresh, empty PostgreSQL database on the session's server."""
    return str(postgres.new_database())
