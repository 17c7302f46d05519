"""DICOM TLS: storescp with mutual TLS for each profile, and Orthanc's DICOM TLS."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fwmapping import SentTag

from gears.dicom_send import tls
from gears.dicom_send.config import TlsSettings
from gears.dicom_send.sender import Peer, PeerError, Sender, echo
from gears.dicom_send.tagging import prepare
from tests.integration.dicom_send_helpers import received, run_gear, storescp
from tests.support import peers
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.orthanc import OrthancServer
from tests.support.tls import TlsFiles, make_tls_files

pytestmark = pytest.mark.peers

SERVER_PROFILE = {"BCP195": "+px", "BCP195-ND": "+py", "BCP195-EX": "+pz"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pki"))


def _tls_storescp_args(pki: TlsFiles, profile: str) -> tuple[str, ...]:
    return (
        "+tls", str(pki.server_key), str(pki.server_cert),
        "+cf", str(pki.ca), "-rc", SERVER_PROFILE[profile],
    )  # fmt: skip


@pytest.fixture
def series(tmp_path: Path) -> Iterator[list[Path]]:
    yield write_series(tmp_path / "src", SeriesSpec(count=4))


@pytest.mark.parametrize("profile", ["BCP195", "BCP195-ND", "BCP195-EX"])
def test_mutual_tls_per_profile_and_tls_kept_on_reconnect(
    tmp_path: Path, pki: TlsFiles, series: list[Path], profile: str
) -> None:
    peers.require("storescp")
    settings = TlsSettings(True, profile, True, pki.client_key, pki.client_cert, pki.ca)
    tagged = [prepare(p, p.name, SentTag()) for p in series]
    with storescp(tmp_path / "out", _tls_storescp_args(pki, profile)) as port:
        peer = Peer("127.0.0.1", port, "STORESCP", ssl_context=tls.client_context(settings))
        echo(peer)
        sender = Sender(peer)
        results = [sender.send(item) for item in tagged[:2] if item]
        sender.close()
        results += [sender.send(item) for item in tagged[2:] if item]  # TLS again, never plain
        sender.close()
    assert results == [None] * 4
    assert len(received(tmp_path / "out")) == 4
    negotiated = sender.tls
    assert len(negotiated) == 2 and sender.associations == 2
    versions = {version for version, _ in negotiated}
    ciphers = {cipher for _, cipher in negotiated}
    if profile == "BCP195-EX":
        assert versions == {"TLSv1.2"}
        assert ciphers <= {"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256",
                           "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-AES128-GCM-SHA256"}  # fmt: skip
    else:
        assert versions <= {"TLSv1.2", "TLSv1.3"}


def test_refused_without_client_certificate(tmp_path: Path, pki: TlsFiles) -> None:
    peers.require("storescp")
    no_cert = TlsSettings(True, "BCP195-ND", True, None, None, pki.ca)
    with storescp(tmp_path / "out", _tls_storescp_args(pki, "BCP195-ND")) as port:
        peer = Peer("127.0.0.1", port, "STORESCP", ssl_context=tls.client_context(no_cert))
        with pytest.raises(PeerError, match="CERTIFICATE_REQUIRED"):
            echo(peer)
        plain = Peer("127.0.0.1", port, "STORESCP")
        with pytest.raises(PeerError):
            echo(plain)


def test_untrusted_server_certificate_is_refused(tmp_path: Path, pki: TlsFiles) -> None:
    peers.require("storescp")
    wrong_ca = TlsSettings(True, "BCP195", True, pki.client_key, pki.client_cert, pki.other_ca)
    with storescp(tmp_path / "out", _tls_storescp_args(pki, "BCP195")) as port:
        peer = Peer("127.0.0.1", port, "STORESCP", ssl_context=tls.client_context(wrong_ca))
        with pytest.raises(PeerError, match="CERTIFICATE_VERIFY_FAILED"):
            echo(peer)
    assert list((tmp_path / "out").iterdir()) == []


def test_gear_over_tls_to_storescp(tmp_path: Path, pki: TlsFiles, series: list[Path]) -> None:
    peers.require("storescp")
    files = {
        "file": (series[0], {}),
        "key": (pki.client_key, {}),
        "cert": (pki.client_cert, {}),
        "add_cert_file": (pki.ca, {}),
    }
    with storescp(tmp_path / "out", _tls_storescp_args(pki, "BCP195-ND")) as port:
        code, rows = run_gear(
            tmp_path / "gear",
            port,
            files=files,
            tls_enabled=True,
            tls_security_profile="BCP195-ND",
        )
    assert code == 0 and rows[0]["Status"] == "Complete"
    assert len(received(tmp_path / "out")) == 1


def test_gear_to_orthanc_with_dicom_tls(tmp_path: Path, pki: TlsFiles, series: list[Path]) -> None:
    peers.require("Orthanc")
    orthanc = OrthancServer(
        tmp_path / "orthanc",
        tls={
            "cert": pki.server_cert,
            "key": pki.server_key,
            "ca": pki.ca,
            "require_client_cert": True,
        },
    )
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in series:
            zf.write(path, path.name)
    files = {
        "file": (archive, {}),
        "key": (pki.client_key, {}),
        "cert": (pki.client_cert, {}),
        "add_cert_file": (pki.ca, {}),
    }
    with orthanc.start():
        code, rows = run_gear(
            tmp_path / "gear",
            orthanc.dicom_port,
            files=files,
            called_ae="ORTHANC",
            tls_enabled=True,
        )
        assert code == 0 and rows[0]["Images Sent"] == "4"
        assert orthanc.instance_count() == 4
        plain = Peer("127.0.0.1", orthanc.dicom_port, "ORTHANC")
        with pytest.raises(PeerError):
            echo(plain)
