"""Who may connect and what is accepted, seen from real clients (issues 16.1, 16.8, 18.10).

- every storage SOP class (standard, retired, vendor-private) in every transfer syntax is
  accepted and stored exactly as received; services we do not provide are refused;
- a host not in ``allowed_hosts`` gets an A-ASSOCIATE-RJ that storescu reports;
- idle TCP connections (no A-ASSOCIATE-RQ) are closed within seconds and never lock out
  other scanners; one host gets at most ``push.max_associations_per_host`` associations.

Linux routes all of 127.0.0.0/8 over lo, so a client socket bound to 127.0.0.2 is a
second host."""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import ssl
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fwagent.agent import Agent
from prometheus_client import REGISTRY
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage  # type: ignore[attr-defined]

from tests.support import peers
from tests.support.agents import in_process_agents
from tests.support.dicomgen import SeriesSpec, make_instance, write_series
from tests.support.fwlite_server import FwliteServer
from tests.support.polling import wait_until
from tests.support.tls import make_tls_files

SECOND_HOST = "127.0.0.2"
SIEMENS_CSA_NON_IMAGE = "1.3.12.2.1107.5.9.1"
GE_PRIVATE = "1.2.840.113619.4.26"
NM_RETIRED = "1.2.840.10008.5.1.4.1.1.5"
HANGING_PROTOCOL = "1.2.840.10008.5.1.4.38.1"
SYNTAXES = {
    "LE": ExplicitVRLittleEndian,
    "BE": ExplicitVRBigEndian,
    "IM": ImplicitVRLittleEndian,
    "DF": DeflatedExplicitVRLittleEndian,
}


@pytest.fixture
def make_agent(tmp_path: Path, fwlite: FwliteServer) -> Iterator[Callable[..., Agent]]:
    with in_process_agents(tmp_path, fwlite, quiet=0.5, failed_retry_seconds=1) as make:
        yield make


def refused(reason: str) -> float:
    return (
        REGISTRY.get_sample_value("fwagent_refused_associations_total", {"reason": reason}) or 0.0
    )


def dataset_bytes(data: bytes) -> bytes:
    """A PS3.10 file's bytes after its File Meta (what travelled in the C-STORE)."""
    fp = io.BytesIO(data)
    read_preamble(fp, False)
    _read_file_meta_info(fp)
    return fp.read()


# ---- 16.1: every storage SOP class, every transfer syntax ---------------------------------


def vendor_file(out: Path, spec: SeriesSpec, sop_class: str, syntax: str, index: int) -> Path:
    """An instance of ``spec``'s series as the vendor's SOP class would come: Siemens CSA
    Non-Image carries its CSA header in a private block and no pixel data."""
    ds = make_instance(spec, index)
    ds.SOPClassUID = sop_class
    if sop_class == SIEMENS_CSA_NON_IMAGE:
        del ds.PixelData
        block = ds.private_block(0x0029, "SIEMENS CSA NON-IMAGE", create=True)
        block.add_new(0x10, "OB", b"SV10\x04\x03\x02\x01" + bytes(range(64)))
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = syntax
    ts = pydicom.uid.UID(syntax)
    path = out / f"{sop_class}-{syntax}.dcm"
    out.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(
        path,
        ds,
        implicit_vr=ts.is_implicit_VR,
        little_endian=ts.is_little_endian,
        enforce_file_format=True,
    )
    return path


def storescu_profile(path: Path, classes: list[str]) -> Path:
    """A dcmtk association profile proposing ``classes`` in each syntax, one context
    each, as a site configures storescu for private SOP classes."""
    lines = ["[[TransferSyntaxes]]"]
    names = {
        "LE": "LittleEndianExplicit",
        "BE": "BigEndianExplicit",
        "IM": "LittleEndianImplicit",
        "DF": "DeflatedLittleEndianExplicit",
    }
    for key, name in names.items():
        lines += [f"[{key}]", f"TransferSyntax1 = {name}"]
    lines += ["[[PresentationContexts]]", "[Vendor]"]
    n = 0
    for sop_class in classes:
        for key in names:
            n += 1
            lines.append(f"PresentationContext{n} = {sop_class}\\{key}")
    lines += ["[[Profiles]]", "[Vendor]", "PresentationContexts = Vendor"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_private_retired_and_non_patient_sop_classes_stored_exactly_as_received(
    tmp_path: Path, fwlite: FwliteServer, fw: Any, make_agent: Callable[..., Agent]
) -> None:
    classes = [SIEMENS_CSA_NON_IMAGE, GE_PRIVATE, NM_RETIRED, HANGING_PROTOCOL]
    spec = SeriesSpec(patient_id="fw://unknown/x/vendor")
    files = [
        vendor_file(tmp_path / "files", spec, sop_class, syntax, i)
        for i, (sop_class, syntax) in enumerate((c, s) for c in classes for s in SYNTAXES.values())
    ]
    agent = make_agent()
    profile = storescu_profile(tmp_path / "vendor.cfg", classes)
    result = peers.storescu(
        agent.config.push.port, files, extra=["-v", "-xf", str(profile), "Vendor"]
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("Received Store Response (Success)") == len(files), result.stderr
    assert "Converting transfer syntax: Deflated Explicit VR Little Endian -> Deflated" in (
        result.stderr
    )
    wait_until(lambda: len(agent.state.all_series()) == 1 and agent.state.queue_depth() == 0)
    sent = {pydicom.dcmread(p).SOPInstanceUID: p for p in files}
    (session,) = fw.sessions()
    (acquisition,) = fw.get_session_acquisitions(session.id)
    (entry,) = fw.get_acquisition(acquisition.id).files
    data = fw.download_file_from_acquisition_as_data(acquisition.id, entry.name)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        stored = [zf.read(n) for n in zf.namelist() if not n.endswith("/")]
    assert len(stored) == len(files)
    for member in stored:
        ds = pydicom.dcmread(io.BytesIO(member), stop_before_pixels=True)
        path = sent[ds.SOPInstanceUID]
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.file_meta.TransferSyntaxUID == pydicom.dcmread(path).file_meta.TransferSyntaxUID
        assert dataset_bytes(member) == dataset_bytes(path.read_bytes()), path.name


def test_services_we_do_not_provide_are_refused(
    tmp_path: Path, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent()
    query = tmp_path / "query.dcm"
    ds = pydicom.Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = ""
    ds.save_as(query, implicit_vr=True, little_endian=True)

    def findscu(model: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*peers.require("findscu").values(), "-v", "-aec", "FWAGENT", model, "127.0.0.1",
             str(agent.config.push.port), str(query)],
            env=peers.PEER_ENV, capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    # study and patient root C-FIND, and the modality worklist (which pynetdicom's
    # unrestricted negotiation alone would take for an unknown, i.e. storage, SOP class)
    for model in ("-S", "-P", "-W"):
        result = findscu(model)
        assert result.returncode != 0
        assert "No Acceptable Presentation Contexts" in result.stderr, (model, result.stderr)
    echo = subprocess.run(
        [*peers.require("echoscu").values(), "-aec", "FWAGENT", "127.0.0.1",
         str(agent.config.push.port)],
        env=peers.PEER_ENV, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert echo.returncode == 0, echo.stderr


# ---- 16.8: refusals a scanner can read ------------------------------------------------


def test_disallowed_host_gets_association_rejected(
    tmp_path: Path, make_agent: Callable[..., Agent], caplog: pytest.LogCaptureFixture
) -> None:
    paths = write_series(tmp_path / "a", SeriesSpec(count=1))
    agent = make_agent(allowed_hosts=["10.9.9.9"])
    before = refused("host")
    caplog.set_level(logging.WARNING, logger="fwagent.receiver")
    result = peers.storescu(agent.config.push.port, paths, aet="MR1")
    assert result.returncode != 0
    assert "Association Rejected" in result.stderr, result.stderr
    assert "Result: Rejected Permanent, Source: Service User" in result.stderr
    assert refused("host") == before + 1
    assert "rejected association from 127.0.0.1 (AE 'MR1'): host not in allowed_hosts" in (
        caplog.text
    )
    assert agent.state.queue_depth() == 0
    # a disallowed AE title reads the same to the scanner, and is counted as before
    by_title = make_agent(allowed_calling_aets=["SCANNER1"])
    before = refused("ae_title")
    result = peers.storescu(by_title.config.push.port, paths, aet="INTRUDER")
    assert "Association Rejected" in result.stderr, result.stderr
    assert refused("ae_title") == before + 1
    assert "rejected association from AE 'INTRUDER': calling AE title not in" in caplog.text


# ---- 18.10: idle connections and a per-host cap ----------------------------------------


def test_idle_connections_from_one_host_do_not_lock_out_another(
    tmp_path: Path, fwlite: FwliteServer, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent()  # max_associations_per_host: 10 by default
    port = agent.config.push.port
    idle_before = refused("idle")
    idle: list[socket.socket] = []
    try:
        for _ in range(200):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((SECOND_HOST, 0))
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))
            idle.append(sock)
        paths = write_series(tmp_path / "a", SeriesSpec(count=3))
        started = time.monotonic()
        result = peers.storescu(port, paths)
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        assert elapsed < 3, elapsed  # not held up by the idle connections
        wait_until(lambda: agent.state.queue_depth() == 3 or agent.state.all_series())
        # every idle connection is closed by the agent, the first ones after ~5 s
        deadline = time.monotonic() + 15
        for sock in idle:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ConnectionResetError):  # closed either way
                assert sock.recv(1) == b""
        assert time.monotonic() < deadline
        assert refused("idle") - idle_before == 10  # the other 190 were over the cap
    finally:
        for sock in idle:
            sock.close()


def test_one_host_gets_at_most_max_associations_per_host(
    tmp_path: Path, make_agent: Callable[..., Agent], caplog: pytest.LogCaptureFixture
) -> None:
    agent = make_agent(max_associations_per_host=2)
    port = agent.config.push.port
    caplog.set_level(logging.WARNING, logger="fwagent.receiver")
    ae = AE(ae_title="MR2")
    ae.add_requested_context(MRImageStorage)
    held = [ae.associate("127.0.0.1", port, ae_title="FWAGENT", bind_address=(SECOND_HOST, 0))
            for _ in range(2)]  # fmt: skip
    try:
        assert all(a.is_established for a in held)
        third = ae.associate("127.0.0.1", port, ae_title="FWAGENT", bind_address=(SECOND_HOST, 0))
        assert third.is_rejected
        wait_until(lambda: "2 associations already open from this host" in caplog.text)
        # another host is not affected
        paths = write_series(tmp_path / "a", SeriesSpec(count=1))
        assert peers.storescu(port, paths).returncode == 0
    finally:
        for assoc in held:
            assoc.release()
    # release() returns on our side; the agent's side ends its association threads just after
    assert agent.push is not None and agent.push.ae is not None
    wait_until(lambda: not agent.push.ae.active_associations, timeout=10)
    again = ae.associate("127.0.0.1", port, ae_title="FWAGENT", bind_address=(SECOND_HOST, 0))
    assert again.is_established
    again.release()


def test_limit_refusal_with_empty_allowlist_names_the_real_reason(
    make_agent: Callable[..., Agent], caplog: pytest.LogCaptureFixture
) -> None:
    agent = make_agent()
    assert agent.push is not None and agent.push.ae is not None
    agent.push.ae.maximum_associations = 1  # pynetdicom's own limit, reached quickly
    caplog.set_level(logging.WARNING, logger="fwagent.receiver")
    ae = AE(ae_title="MR3")
    ae.add_requested_context(MRImageStorage)
    first = ae.associate("127.0.0.1", agent.config.push.port, ae_title="FWAGENT")
    try:
        assert first.is_established
        second = ae.associate("127.0.0.1", agent.config.push.port, ae_title="FWAGENT")
        assert second.is_rejected
    finally:
        first.release()
    assert "rejected association from AE 'MR3': too many associations open" in caplog.text
    assert "allowed_calling_aets" not in caplog.text


def partial_requests(port: int, hosts: list[str], each: int) -> list[socket.socket]:
    """``each`` connections from every host in ``hosts`` that send the first two bytes
    of an A-ASSOCIATE-RQ header and then nothing."""
    sockets: list[socket.socket] = []
    for host in hosts:
        for _ in range(each):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"\x01\x00")
            sockets.append(sock)
    return sockets


def assert_closed_by(sockets: list[socket.socket], deadline: float) -> None:
    for sock in sockets:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ConnectionResetError):  # closed either way
            assert sock.recv(1) == b""
    assert time.monotonic() < deadline


def test_half_sent_association_requests_are_closed_and_lock_nobody_out(
    tmp_path: Path, make_agent: Callable[..., Agent], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 18.10: 10 connections from each of 6 hosts (within the per-host cap) that
    send part of an A-ASSOCIATE-RQ never reach pynetdicom (which would wait for the rest
    for ever, 50 of them filling its association limit): a scanner still gets in at once,
    and every one is closed within the 5 s deadline."""
    agent = make_agent()
    port = agent.config.push.port
    caplog.set_level(logging.WARNING, logger="fwagent.receiver")
    idle_before = refused("idle")
    started = time.monotonic()
    partial = partial_requests(port, [f"127.0.0.{n}" for n in range(2, 8)], 10)
    try:
        paths = write_series(tmp_path / "a", SeriesSpec(count=2))
        result = peers.storescu(port, paths)
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", result.stderr  # no rejection, no warning
        assert_closed_by(partial, started + 5 + 3)
        wait_until(lambda: refused("idle") - idle_before == 60)
        # a late scanner, once they are gone, is not affected either
        assert peers.storescu(port, paths).returncode == 0
    finally:
        for sock in partial:
            sock.close()
    assert "no complete association request within 5 s" in caplog.text


def test_request_sent_in_pieces_within_the_deadline_is_accepted(
    make_agent: Callable[..., Agent],
) -> None:
    """The gate reads the whole request before pynetdicom sees it, and hands it on
    intact: one sent a few bytes at a time (header, then the body 1 s later) associates."""
    agent = make_agent()
    rq = captured_request()
    sock = socket.create_connection(("127.0.0.1", agent.config.push.port), timeout=10)
    try:
        sock.sendall(rq[:3])
        time.sleep(0.5)  # the point of the test: the request arrives in pieces
        sock.sendall(rq[3:40])
        time.sleep(0.5)
        sock.sendall(rq[40:])
        answer = sock.recv(1)
        assert answer == b"\x02"  # A-ASSOCIATE-AC
    finally:
        sock.close()


def captured_request() -> bytes:
    """The A-ASSOCIATE-RQ pynetdicom sends (read by a plain listening socket)."""
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def accept() -> None:
        conn, _ = listener.accept()
        conn.settimeout(5)
        header = conn.recv(6, socket.MSG_WAITALL)
        got.append(header + conn.recv(int.from_bytes(header[2:], "big"), socket.MSG_WAITALL))
        conn.close()

    thread = threading.Thread(target=accept)
    thread.start()
    ae = AE(ae_title="PIECES")
    ae.acse_timeout = 2
    ae.add_requested_context(MRImageStorage)
    ae.associate("127.0.0.1", listener.getsockname()[1], ae_title="FWAGENT")
    thread.join(10)
    listener.close()
    (rq,) = got
    assert rq[0] == 0x01
    return rq


@pytest.mark.parametrize(
    "first_bytes",
    [
        b"\x04\x00\x00\x00\x00\x06" + bytes(6),  # a P-DATA-TF before any association
        b"\x01\x00\x00\x01\x00\x01",  # an A-ASSOCIATE-RQ announcing 64 KiB + 1 bytes
        b"GET / HTTP/1.1\r\n\r\n",  # not DICOM at all
    ],
)
def test_first_pdu_that_is_no_association_request_is_dropped_at_once(
    make_agent: Callable[..., Agent], first_bytes: bytes
) -> None:
    agent = make_agent()
    before = refused("protocol")
    sock = socket.create_connection(("127.0.0.1", agent.config.push.port), timeout=10)
    try:
        started = time.monotonic()
        sock.sendall(first_bytes)
        with contextlib.suppress(ConnectionResetError):  # closed either way
            assert sock.recv(1) == b""
        assert time.monotonic() - started < 2  # not left to the 5 s deadline
    finally:
        sock.close()
    assert refused("protocol") == before + 1


def test_tls_handshake_and_request_share_one_deadline(
    tmp_path: Path, make_agent: Callable[..., Agent]
) -> None:
    """With TLS: a handshake that stops half-way, and a finished handshake followed by half
    a request, are both closed within the 5 s deadline; a TLS scanner meanwhile sends, its
    request read by the gate and handed on to pynetdicom intact."""
    files = make_tls_files(tmp_path / "pki")
    tls = {
        "enabled": True,
        "cert": str(files.server_cert),
        "key": str(files.server_key),
        "ca": str(files.ca),
        "require_client_cert": False,
    }
    agent = make_agent(tls=tls)
    port = agent.config.push.port
    tls_before, idle_before = refused("tls"), refused("idle")
    started = time.monotonic()
    half_hello = socket.create_connection(("127.0.0.1", port), timeout=10)
    half_hello.sendall(b"\x16\x03\x01")  # the start of a TLS record header
    client = ssl.create_default_context(cafile=str(files.ca))
    half_request = client.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1"
    )
    half_request.sendall(b"\x01\x00")
    try:
        paths = write_series(tmp_path / "a", SeriesSpec(count=2))
        sent = peers.storescu(port, paths, extra=["+tla", "+cf", str(files.ca)])
        assert sent.returncode == 0, sent.stderr
        for sock in (half_hello, half_request):
            sock.settimeout(max(0.1, started + 5 + 3 - time.monotonic()))
            with contextlib.suppress(ConnectionResetError, ssl.SSLError):  # closed either way
                assert sock.recv(1) == b""
        assert time.monotonic() < started + 5 + 3
    finally:
        half_hello.close()
        half_request.close()
    assert (refused("tls") - tls_before, refused("idle") - idle_before) == (1, 1)
