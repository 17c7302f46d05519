"""The Q/R service: index + refresher thread + SCP, started by ``fwagent qr`` or ``run``."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from fwagent.config import AgentConfig

from .index import Index
from .refresh import Refresher
from .retrieve import Fetcher
from .scp import QRServer

log = logging.getLogger(__name__)

REFRESH_SECONDS = 30.0  # background: files changed since the last pass
FULL_REFRESH_SECONDS = 600.0  # background: every file, to drop deleted / no longer visible
FRESH_SECONDS = 2.0  # a request asks for a pass when the last one is older than this...
FRESH_WAIT_SECONDS = 3.0  # ...and waits this long for it, then answers from the index


def index_path(config: AgentConfig) -> Path:
    return Path(config.spool_dir) / "qr-index.sqlite"


class LazyClient:
    """flywheel.Client made on first use: the SDK contacts the site when constructed, and a
    Flywheel outage at start must not keep the Q/R service (or the agent) from starting;
    it answers from the index until the site is back."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self._client: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            if self._client is None:
                os.environ.setdefault("FLYWHEEL_SDK_CONNECT_TIMEOUT", "10")
                import flywheel

                self._client = flywheel.Client(self.api_key)
        return getattr(self._client, name)


class QRService:
    def __init__(self, config: AgentConfig, client: Any = None) -> None:
        self.config = config
        self.client = client if client is not None else LazyClient(config.flywheel.api_key)
        self.index = Index(index_path(config), config.flywheel.api_key)
        work = Path(config.spool_dir) / "qr-work"
        self.refresher = Refresher(self.index, self.client, work)
        self.server = QRServer(config.qr, self.index, Fetcher(self.client, work), self._fresh)
        self._last = 0.0
        self._last_full = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._waiters: list[threading.Event] = []
        self._waiters_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def refresh(self, full: bool = False, wait: bool = True) -> None:
        self._last = time.monotonic()  # also after a failure: do not hammer a Flywheel that is down
        try:
            report = self.refresher.refresh(full=full, wait=wait)
        except Exception as exc:  # noqa: BLE001 - Flywheel down: answer from the index
            log.warning("qr: index refresh failed (answering from the index): %s", exc)
            return
        if report is None:  # another pass is running (the first full one may take long)
            return
        if report.full:
            self._last_full = time.monotonic()
        if report.indexed or report.removed or report.failed:
            log.info(
                "qr: index %s refresh: %d files listed, %d indexed, %d removed, %d failed",
                "full" if report.full else "quick",
                report.listed, report.indexed, report.removed, report.failed,
            )  # fmt: skip

    def _fresh(self) -> None:
        """Before a request: a quick pass by the refresh thread, waited for a bounded time
        (a slow or unreachable Flywheel delays an answer by seconds, never minutes)."""
        if time.monotonic() - self._last <= FRESH_SECONDS:
            return
        if self._thread is None:  # not started (tests, benchmark): refresh here
            self.refresh(wait=False)
            return
        done = threading.Event()
        with self._waiters_lock:
            self._waiters.append(done)
        self._wake.set()
        done.wait(FRESH_WAIT_SECONDS)

    def start(self) -> None:
        """Listen at once; the first (full) refresh runs in the background, requests are
        answered from what is indexed so far."""
        self.server.start()
        self._thread = threading.Thread(target=self._loop, name="qr-refresh", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.server.port

    def _loop(self) -> None:
        """Full pass first, then a quick pass every REFRESH_SECONDS or when a request asks,
        and a full one every FULL_REFRESH_SECONDS."""
        full = True
        while not self._stop.is_set():
            self._wake.clear()
            with self._waiters_lock:
                waiters, self._waiters = self._waiters, []
            self.refresh(full=full)
            for waiter in waiters:
                waiter.set()
            self._wake.wait(REFRESH_SECONDS)
            full = time.monotonic() - self._last_full > FULL_REFRESH_SECONDS

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.server.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.index.close()
