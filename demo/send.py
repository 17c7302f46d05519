"""A small C-STORE sender (pynetdicom) for the demo when dcmtk is absent."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path

from pydicom import dcmread
from pynetdicom import AE, StoragePresentationContexts


def send_files(
    paths: Iterable[Path], host: str, port: int, called_ae: str, calling_ae: str = "FWSEND"
) -> tuple[int, int]:
    """C-STORE every file over one association; return (succeeded, failed)."""
    ae = AE(ae_title=calling_ae)
    ae.requested_contexts = StoragePresentationContexts
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    assoc = ae.associate(host, port, ae_title=called_ae)
    if not assoc.is_established:
        raise ConnectionError(f"association with {called_ae}@{host}:{port} was not accepted")
    sock = getattr(assoc.dul.socket, "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ok = failed = 0
    try:
        for path in paths:
            status = assoc.send_c_store(dcmread(path))
            if getattr(status, "Status", None) == 0:
                ok += 1
            else:
                failed += 1
    finally:
        assoc.release()
    return ok, failed
