"""TLS contexts for DICOM over TLS: our storage SCPs (server) and our associations to peers
and to our own SCPs (client), so ``fwagent echo`` checks a peer exactly as the pull does."""

from __future__ import annotations

import ssl

from .config import TlsConfig


def server_ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """TLS 1.2+ server context; with require_client_cert the peer must present a cert
    signed by ``tls.ca`` (mutual TLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile=tls.cert, keyfile=tls.key)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"TLS cert {tls.cert} / key {tls.key} unusable: {exc}") from None
    if tls.ca:
        try:
            ctx.load_verify_locations(cafile=tls.ca)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"TLS ca {tls.ca} unusable: {exc}") from None
    ctx.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_NONE
    return ctx


def client_ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """TLS 1.2+ client context. The peer's certificate is verified against ``tls.ca`` (the
    system store when empty), not its host name: DICOM peers are named by AE title and IP.
    ``tls.cert``/``tls.key`` are our client certificate for peers that require one.
    Raises OSError or ssl.SSLError when the files cannot be used."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    if tls.cert:
        context.load_cert_chain(tls.cert, tls.key or None)
    return context
