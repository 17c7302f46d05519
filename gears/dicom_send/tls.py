"""TLS client contexts for the DICOM security profiles, as DCMTK's dcmtls defines them.

- ``BCP195``: TLS 1.0 or newer (TLS 1.3 allowed); the four ECDHE/DHE-RSA AES-GCM suites
  first, then TLS_RSA_WITH_AES_128_CBC_SHA for older peers (3DES is gone from OpenSSL 3).
- ``BCP195-ND`` (non-downgrading): TLS 1.2 or newer (TLS 1.3 allowed); only the four
  ECDHE/DHE-RSA AES-GCM suites.
- ``BCP195-EX`` (extended): TLS 1.2 only; those four plus the two ECDHE-ECDSA AES-GCM suites.

Like DCMTK, the peer's certificate chain is verified against the trusted CAs but its host
name is not checked: PACS certificates rarely name the address they are reached at.
"""

from __future__ import annotations

import ssl
import warnings
from dataclasses import dataclass

from .config import ConfigError, TlsSettings

_GCM_RSA = (
    "ECDHE-RSA-AES128-GCM-SHA256",  # TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    "DHE-RSA-AES128-GCM-SHA256",  # TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
    "ECDHE-RSA-AES256-GCM-SHA384",  # TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    "DHE-RSA-AES256-GCM-SHA384",  # TLS_DHE_RSA_WITH_AES_256_GCM_SHA384
)


@dataclass(frozen=True)
class Profile:
    minimum: ssl.TLSVersion
    maximum: ssl.TLSVersion
    ciphers: tuple[str, ...]


PROFILES: dict[str, Profile] = {
    "BCP195": Profile(
        ssl.TLSVersion.TLSv1,
        ssl.TLSVersion.MAXIMUM_SUPPORTED,
        (*_GCM_RSA, "AES128-SHA"),  # + TLS_RSA_WITH_AES_128_CBC_SHA
    ),
    "BCP195-ND": Profile(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED, _GCM_RSA),
    "BCP195-EX": Profile(
        ssl.TLSVersion.TLSv1_2,
        ssl.TLSVersion.TLSv1_2,
        (*_GCM_RSA, "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ),
}


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """An SSLContext for our side of the association, per the chosen profile."""
    profile = PROFILES[settings.profile]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with warnings.catch_warnings():  # TLS 1.0 is deprecated in Python, yet BCP195 allows it
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = profile.minimum
    context.maximum_version = profile.maximum
    try:
        context.set_ciphers(":".join(profile.ciphers))
    except ssl.SSLError as exc:
        raise ConfigError(f"TLS profile {settings.profile} is not available here: {exc}") from None
    context.check_hostname = False
    if settings.require_peer_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if settings.ca is not None:
            try:
                context.load_verify_locations(cafile=str(settings.ca))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"add_cert_file is not a PEM certificate: {exc}") from None
    else:
        context.verify_mode = ssl.CERT_NONE
    if settings.cert is not None and settings.key is not None:
        try:
            context.load_cert_chain(certfile=str(settings.cert), keyfile=str(settings.key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cert and key inputs do not form a PEM key pair: {exc}") from None
    return context
