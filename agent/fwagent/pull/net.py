"""DIMSE plumbing shared by the poller and the retriever: one association to the peer,
TCP_NODELAY on our socket (:mod:`fwmapping.dimse`), optional TLS, one-line errors."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fwmapping import dimse
from fwmapping.dimse import AE, Association

from fwagent import pdu
from fwagent.config import PullConfig
from fwagent.tls import client_ssl_context


class PullError(RuntimeError):
    """A poll or retrieval failed; the message is one line, fit for `fwagent status`."""


class RetrieveLater(RuntimeError):
    """Not retrieved now, and not a failure: the uploader is sending an earlier copy of the
    series; the next poll retrieves it (no backoff)."""


def client_tls(pull: PullConfig) -> tuple[ssl.SSLContext, str] | None:
    """The (context, server_hostname) pynetdicom wants, or None when TLS is off.

    The peer's certificate is verified against ``tls.ca`` (the system store when empty);
    ``tls.cert``/``tls.key`` are our client certificate for peers that require one.
    """
    if not pull.tls.enabled:
        return None
    try:
        context = client_ssl_context(pull.tls)
    except (OSError, ssl.SSLError) as exc:
        raise PullError(f"pull.tls: cannot load certificate files: {exc}") from None
    return context, pull.peer.host


def describe_peer(pull: PullConfig) -> str:
    peer = pull.peer
    return f"{peer.ae_title}@{peer.host}:{peer.port}"


@contextmanager
def associate(
    ae: AE,
    pull: PullConfig,
    handlers: list[Any] | None = None,
    ext_neg: list[Any] | None = None,
) -> Iterator[Association]:
    """One association to the configured peer, released (or aborted) on exit."""
    evt_handlers: list[Any] = [
        (dimse.evt.EVT_CONN_OPEN, dimse.on_open_nodelay),
        # no PDU over our maximum (C-GET brings the images back on this association)
        (dimse.evt.EVT_CONN_OPEN, pdu.on_open_guard),
        *(handlers or []),
    ]
    assoc = ae.associate(
        pull.peer.host,
        pull.peer.port,
        ae_title=pull.peer.ae_title,
        tls_args=client_tls(pull),
        evt_handlers=evt_handlers,
        ext_neg=ext_neg,
    )
    if not assoc.is_established:
        if not _reachable(pull):
            why = "is not reachable (is it running, right host and port?)"
        elif assoc.is_rejected:
            why = "rejected the association (is our AE title listed on the peer?)"
        elif assoc.is_aborted:
            why = "aborted the association (is our AE title listed on the peer?)"
        else:
            why = "did not answer the association request (TLS or timeout?)"
        raise PullError(f"peer {describe_peer(pull)} {why}")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        else:
            assoc.abort()


def new_ae(pull: PullConfig, timeout: float = 30.0) -> AE:
    """Our SCU application entity (AE title ``pull.ae_title``)."""
    ae = AE(ae_title=pull.ae_title)
    ae.maximum_pdu_size = pdu.MAX_PDU  # bounded and enforced, as for the receiver
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    return ae


def _reachable(pull: PullConfig) -> bool:
    try:
        with socket.create_connection((pull.peer.host, pull.peer.port), timeout=5):
            return True
    except OSError:
        return False
