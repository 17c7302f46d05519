"""``fwagent run`` and ``fwagent qr`` share one stop-on-signal loop: ready is printed only
once the handlers are in place, and SIGTERM or SIGINT then stops the process cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

SERVE = (
    "from fwagent.commands.common import serve_until_signal\n"
    "serve_until_signal('ready')\n"
    "print('stopped', flush=True)\n"
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_after_ready_stops_cleanly(signum: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert (proc.returncode, out, err) == (0, "stopped\n", "")
