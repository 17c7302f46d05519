"""fwmapping.dimse.reactor: shorter idle sleeps for the associations that ask, nobody else's.

Real associations on loopback, in one process: a tuned SCP (the agent's handler) and a plain
pynetdicom AE side by side; every sleep pynetdicom.association makes is recorded with the
thread that made it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pynetdicom
import pynetdicom.association
import pytest
from fwmapping import dimse
from fwmapping.dimse import reactor
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from tests.support.polling import wait_until


class Sleeps:
    """Stands in for the real sleep under the scoped ``time``: (thread, seconds) of each."""

    def __init__(self) -> None:
        self.calls: list[tuple[threading.Thread, float]] = []
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.calls.append((threading.current_thread(), seconds))
        time.sleep(seconds)

    def of(self, thread: Any) -> set[float]:
        with self._lock:
            return {seconds for who, seconds in self.calls if who is thread}


def _scp(handlers: list[Any]) -> tuple[AE, int]:
    ae = AE(ae_title="SCP")
    ae.add_supported_context(Verification)
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    assert server is not None
    return ae, int(server.server_address[1])


def _echo(port: int) -> None:
    ae = AE(ae_title="SCU")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="SCP")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


@pytest.fixture
def scps() -> Iterator[dict[str, Any]]:
    seen: dict[str, Any] = {}

    def remember(name: str) -> Any:
        def on_echo(event: evt.Event) -> int:
            seen[name] = event.assoc
            return 0x0000

        return on_echo

    tuned, tuned_port = _scp(
        [(evt.EVT_CONN_OPEN, dimse.on_open_fast), (evt.EVT_C_ECHO, remember("tuned"))]
    )
    plain, plain_port = _scp([(evt.EVT_C_ECHO, remember("plain"))])
    _echo(tuned_port)  # the first tuned association installs the scoped time
    seen.clear()
    yield {"seen": seen, "tuned": tuned_port, "plain": plain_port}
    tuned.shutdown()
    plain.shutdown()


def test_installed_pynetdicom_is_a_verified_version() -> None:
    """Upgrading pynetdicom fails here: re-read its association.py and dul.py sleeps, then
    add the version to reactor.VERIFIED."""
    assert pynetdicom.__version__ in reactor.VERIFIED
    assert reactor.supported()


def test_tuned_for_the_agent_association_only(
    scps: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    scoped = pynetdicom.association.time
    assert isinstance(scoped, reactor._ScopedTime)
    sleeps = Sleeps()
    monkeypatch.setattr(scoped, "real_sleep", sleeps)
    _echo(scps["tuned"])
    _echo(scps["plain"])
    tuned, plain = scps["seen"]["tuned"], scps["seen"]["plain"]
    wait_until(lambda: not tuned.is_alive() and not plain.is_alive(), timeout=10)

    assert reactor.is_tuned(tuned) and not reactor.is_tuned(plain)
    assert tuned.dul._run_loop_delay == reactor.REACTOR_DELAY
    assert plain.dul._run_loop_delay == reactor.REACTOR_IDLE  # pynetdicom's own
    assert reactor.REACTOR_DELAY in sleeps.of(tuned)
    assert reactor.REACTOR_IDLE not in sleeps.of(tuned)
    assert reactor.REACTOR_IDLE in sleeps.of(plain)
    assert reactor.REACTOR_DELAY not in sleeps.of(plain)


def test_abort_grace_period_is_untouched(
    scps: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Aborting a tuned association (ours as requestor here) still sleeps the 0.1 s grace
    period pynetdicom gives the shutdown; the old process-wide shim made it 0.2 ms."""
    ae = AE(ae_title="SCU")
    ae.add_requested_context(Verification)
    handlers = [(evt.EVT_CONN_OPEN, dimse.on_open_fast)]
    assoc = ae.associate("127.0.0.1", scps["plain"], ae_title="SCP", evt_handlers=handlers)
    assert assoc.is_established and reactor.is_tuned(assoc)
    sleeps = Sleeps()
    monkeypatch.setattr(pynetdicom.association.time, "real_sleep", sleeps)
    started = time.monotonic()
    assoc.abort()
    assert time.monotonic() - started >= 0.1
    assert 0.1 in sleeps.of(threading.current_thread())


def test_in_a_tuned_thread_only_the_reactor_idle_sleep_is_shortened(
    scps: dict[str, Any],
) -> None:
    planned: dict[float, float] = {}
    scoped = pynetdicom.association.time
    assert isinstance(scoped, reactor._ScopedTime)

    def probe(event: evt.Event) -> int:  # runs in the tuned association's own thread
        planned.update({s: scoped.planned(s) for s in (0.001, 0.01, 0.1, 0.0001)})
        return 0x0000

    ae, port = _scp([(evt.EVT_CONN_OPEN, dimse.on_open_fast), (evt.EVT_C_ECHO, probe)])
    try:
        _echo(port)
    finally:
        ae.shutdown()
    assert planned == {0.001: reactor.REACTOR_DELAY, 0.01: 0.01, 0.1: 0.1, 0.0001: 0.0001}
    assert scoped.planned(0.001) == 0.001  # this (untuned) thread


def test_unknown_version_runs_untuned(
    scps: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pynetdicom, "__version__", "3.9.0")
    monkeypatch.setattr(reactor, "_warned", False)
    with caplog.at_level(logging.INFO, logger=reactor.__name__):
        _echo(scps["tuned"])
        _echo(scps["tuned"])
    tuned = scps["seen"]["tuned"]
    assert not reactor.is_tuned(tuned)
    assert tuned.dul._run_loop_delay == reactor.REACTOR_IDLE
    lines = [r.getMessage() for r in caplog.records if r.name == reactor.__name__]
    assert len(lines) == 1 and "pynetdicom 3.9.0 is not a version" in lines[0]
