"""Requestor-side workarounds for back-to-back C-STOREs (dicom-send), pynetdicom 3.0 only.

Each relies on pynetdicom internals, so each is applied only on a version in
:data:`fwmapping.dimse.reactor.VERIFIED` and is a no-op otherwise (the send still works,
at pynetdicom's own pace and with its race).

- :func:`keep_responses`: ``send_c_store`` pauses the association's reactor thread by
  clearing an event and waiting for a flag, but the reactor can set the flag, pass the
  still-set event and take the C-STORE response off the DIMSE queue itself; it then drops
  it as "unexpected" and the send waits for the DIMSE timeout (seen about once per few
  hundred back-to-back stores; the same race loses C-FIND responses, see
  :mod:`fwmapping.dimse.find`). A response the reactor takes is put back on the queue.
- :class:`Checkpoint` / :func:`parkable`: the reactor checkpoint held closed between
  back-to-back C-STOREs, so the reactor stays parked and the next C-STORE starts at once.
- :func:`set_network_nap`: a shorter idle nap of this association's network (DUL) thread.
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any

from . import reactor


def set_network_nap(assoc: Any, seconds: float) -> None:
    """This association's DUL thread naps ``seconds`` (pynetdicom: 1 ms) when idle."""
    if reactor.supported() and hasattr(assoc.dul, "_run_loop_delay"):
        assoc.dul._run_loop_delay = seconds


def keep_responses(assoc: Any) -> None:
    """Put back a response the reactor took off the DIMSE queue (see the module docstring)."""
    if not reactor.supported() or not hasattr(assoc, "_serve_request"):
        return
    serve = assoc._serve_request
    queue = assoc.dimse.msg_queue

    def serve_or_return(msg: Any, context_id: int) -> None:
        if msg is not None and not msg.is_valid_request:
            queue.put((context_id, msg))  # a response: it belongs to the waiting sender
            return
        serve(msg, context_id)

    assoc._serve_request = serve_or_return


class Checkpoint(threading.Event):
    """pynetdicom's reactor checkpoint, held closed between our back-to-back C-STOREs.

    An association's reactor thread (it watches for peer release/abort) naps 1 ms per loop,
    and every ``send_c_store`` first waits until that thread has parked itself, so each
    C-STORE paid up to a millisecond (more on a busy machine) before anything was sent.
    While ``held``, the ``set()`` that ``send_c_store`` does after its response is skipped,
    so the reactor stays parked and the next C-STORE starts at once. Released (a real
    ``set()``) whenever the sender waits for work and before the association is released,
    so the reactor watches the association whenever we are not sending on it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.held = False
        super().set()

    def set(self) -> None:
        if not self.held:
            super().set()

    def hold(self) -> None:
        self.held = True
        self.clear()

    def let_go(self) -> None:
        self.held = False
        super().set()


def parkable(assoc: Any) -> Checkpoint | None:
    """Install a holdable :class:`Checkpoint` on our association; None when the installed
    pynetdicom is not one this was checked against."""
    if not reactor.supported() or not isinstance(
        getattr(assoc, "_reactor_checkpoint", None), threading.Event
    ):
        return None
    checkpoint = Checkpoint()
    assoc._reactor_checkpoint = checkpoint
    return checkpoint


def tls_info(assoc: Any) -> tuple[str, str] | None:
    """(TLS version, cipher) of the association's socket, or None without TLS."""
    wrapper = assoc.dul.socket
    sock: socket.socket | None = wrapper.socket if wrapper else None
    if isinstance(sock, ssl.SSLSocket):
        cipher = sock.cipher()
        return (sock.version() or "", cipher[0] if cipher else "")
    return None
