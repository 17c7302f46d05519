"""Throw-away PKI for DICOM TLS tests: one CA, a server and a client certificate (trustme).

RSA keys, since the DICOM BCP 195 profiles negotiate ECDHE/DHE-RSA suites over TLS 1.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # CA certificate (PEM) both sides trust
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA nobody's certificate is signed by (for "untrusted" tests)


def make_tls_files(directory: Path) -> TlsFiles:
    """Write CA, server (127.0.0.1/localhost) and client certificate + key files."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(key_type=trustme.KeyType.RSA, organization_name="fw-dicom-connector tests")
    server = ca.issue_cert("127.0.0.1", "localhost", key_type=trustme.KeyType.RSA)
    client = ca.issue_cert("flywheel.test", common_name="flywheel", key_type=trustme.KeyType.RSA)
    other = trustme.CA(key_type=trustme.KeyType.RSA)
    files = TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    server.cert_chain_pems[0].write_to_path(str(files.server_cert))
    server.private_key_pem.write_to_path(str(files.server_key))
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    other.cert_pem.write_to_path(str(files.other_ca))
    return files
