"""A bounded receive PDU size, enforced.

We announce :data:`MAX_PDU` as our Maximum Length Received (``AE.maximum_pdu_size``), so a
conforming peer never sends a P-DATA-TF PDU longer than that. pynetdicom itself reads
whatever length a PDU header declares into memory (up to 4 GiB), so one hostile peer could
take the agent's memory with a single PDU. :func:`guard` therefore checks each PDU header as
it is read: a P-DATA-TF longer than the maximum, or any other PDU longer than
:data:`MAX_OTHER_PDU`, gets an A-ABORT and the connection is closed before its body is read.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from typing import Any

from . import metrics

log = logging.getLogger("fwagent.receiver")

# 256 KiB: one PDU per typical 132 KB image slice, a few hundred KB per association
# in flight (50 associations: tens of MB); larger PDUs measured no faster here
MAX_PDU = 256 * 1024
SLACK = 16  # bytes tolerated over the maximum (a peer counting the PDV header differently)
MAX_OTHER_PDU = 1 << 20  # an association request is a few KB; no PDU but P-DATA is larger
P_DATA_TF = 0x04
A_ABORT = 0x07
# A-ABORT: source 2 (service provider), reason 6 (invalid PDU parameter value), PS3.8 9.3.8
ABORT_PDU = struct.pack(">BBIBBBB", A_ABORT, 0, 4, 0, 0, 2, 6)


def on_open_guard(event: Any) -> None:
    """EVT_CONN_OPEN handler: :func:`guard` with the association's AE's maximum."""
    guard(event.assoc, int(event.assoc.ae.maximum_pdu_size or 0))


def guard(assoc: Any, maximum: int = MAX_PDU) -> None:
    """Refuse PDUs over the limits on ``assoc``'s socket (call at EVT_CONN_OPEN).

    pynetdicom's DUL reads a PDU as ``recv(6)`` (type and length) then ``recv(length)``;
    this wraps that socket's ``recv`` and, when a header declares too much, sends A-ABORT
    and answers the body read with nothing, which pynetdicom treats as the connection
    closed (the association ends, nothing of the body is read)."""
    sock = assoc.dul.socket
    if sock is None or getattr(sock, "fwagent_pdu_guard", False):
        return
    recv = sock.recv
    expect_header = [True]
    refused = [False]

    def guarded(nr_bytes: int) -> bytearray:
        if refused[0]:
            return bytearray()
        if not expect_header[0]:
            expect_header[0] = True
            return bytearray(recv(nr_bytes))
        data = bytearray(recv(nr_bytes))
        if nr_bytes != 6 or len(data) != 6:
            return data
        pdu_type, _, length = struct.unpack(">BBI", bytes(data))
        expect_header[0] = False
        limit = maximum + SLACK if pdu_type == P_DATA_TF else max(maximum, MAX_OTHER_PDU)
        if maximum and length > limit:
            refused[0] = True
            peer = getattr(assoc.requestor, "ae_title", "") if assoc.is_acceptor else ""
            address = getattr(getattr(assoc.requestor, "address_info", None), "address", "")
            log.warning(
                "aborted association from %s (AE %r): a PDU of %d bytes, over our maximum"
                " of %d", address or "peer", peer, length, limit,
            )  # fmt: skip
            metrics.REFUSED.labels(reason="pdu_size").inc()
            with contextlib.suppress(Exception):  # the connection closes either way
                sock.send(ABORT_PDU)
        return data

    sock.recv = guarded
    sock.fwagent_pdu_guard = True
