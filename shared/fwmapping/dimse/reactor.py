"""Shorter idle sleeps for the associations that ask for them, nobody else's.

pynetdicom 3 polls: each association's DUL thread sleeps ``dul._run_loop_delay`` (1 ms)
whenever its socket has nothing to read, and each association's reactor thread sleeps a
fixed ``time.sleep(0.001)`` per loop, one DIMSE message per loop. On loopback that caps a
C-STORE stream near a few hundred instances per second. :func:`tune` shortens both for one
association:

- the DUL delay is an attribute of that association's DUL (set on it alone);
- the reactor's sleep is a module-level ``time.sleep`` in ``pynetdicom.association``. It is
  replaced once by :class:`_ScopedTime`, which caps a sleep only when it is the reactor's
  idle sleep (exactly :data:`REACTOR_IDLE` seconds) AND runs in the thread of an
  association :func:`tune` marked. Every other sleep (abort's 0.1 s grace period, the
  0.01 s waits of a stopping DUL, any sleep of an unmarked association or of the gears'
  associations in the same process) is the real ``time.sleep`` with the real duration.

Both rely on pynetdicom internals, so they are applied only to the versions checked here
(:data:`VERIFIED`); any other version runs untuned, said once in the log.
Measured with durable writes on (bench/bench_push.py prints the figure).
"""

from __future__ import annotations

import logging
import threading
import time
import types
import weakref
from typing import Any

import pynetdicom
import pynetdicom.association as _association

log = logging.getLogger(__name__)

# pynetdicom versions whose association.py sleeps 0.001 s per reactor loop through the
# module's ``time`` and whose DUL reads ``_run_loop_delay`` per loop (checked by reading
# their source, and by tests/unit/test_dimse_reactor.py against the installed one)
VERIFIED = frozenset({"3.0.4"})
REACTOR_IDLE = 0.001  # the reactor's idle sleep in the verified versions
REACTOR_DELAY = 0.0002  # seconds; what tuned associations sleep instead

_lock = threading.Lock()
_tuned: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
_warned = False


class _ScopedTime(types.ModuleType):
    """``time`` for pynetdicom.association: the real module, except that the reactor's idle
    sleep is shortened in the threads of tuned associations."""

    def __init__(self, real: types.ModuleType) -> None:
        super().__init__("time")
        self.__dict__.update(real.__dict__)
        del self.__dict__["sleep"]  # the method below, not the copied function
        self.real_sleep = real.sleep

    def planned(self, seconds: float) -> float:
        """How long ``sleep(seconds)`` sleeps in the calling thread."""
        if seconds == REACTOR_IDLE and threading.current_thread() in _tuned:
            return REACTOR_DELAY
        return seconds

    def sleep(self, seconds: float) -> None:
        self.real_sleep(self.planned(seconds))


def supported() -> bool:
    """True when the installed pynetdicom is one whose internals :func:`tune` was checked
    against; otherwise logs once that associations run untuned."""
    global _warned
    if pynetdicom.__version__ in VERIFIED:
        return True
    if not _warned:
        _warned = True
        log.info(
            "pynetdicom %s is not a version the reactor tuning was checked against (%s):"
            " associations run with pynetdicom's own 1 ms sleeps",
            pynetdicom.__version__, ", ".join(sorted(VERIFIED)),
        )  # fmt: skip
    return False


def _install() -> None:
    with _lock:
        if not isinstance(_association.time, _ScopedTime):
            _association.time = _ScopedTime(time)


def tune(assoc: Any) -> bool:
    """Shorter idle sleeps for this association only (an EVT_CONN_OPEN handler calls it).
    Returns False, changing nothing, on a pynetdicom version not in :data:`VERIFIED`."""
    if not supported():
        return False
    _install()
    assoc.dul._run_loop_delay = REACTOR_DELAY
    _tuned.add(assoc)  # the Association is the thread its reactor runs in
    return True


def is_tuned(assoc: Any) -> bool:
    return assoc in _tuned
