"""The Q/R index against fwlite through the real SDK: incremental passes download only what
changed, a full pass drops what the key can no longer see, a new file version replaces."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fwagent.config import config_from_dict
from fwagent.qr.service import QRService

from tests.support import peers
from tests.support.dicomgen import SeriesSpec
from tests.support.fwlite_server import FwliteServer
from tests.support.seed import seed_series


def downloads(fwlite: FwliteServer) -> int:
    return sum(1 for r in fwlite.requests() if "/files/" in r["path"] and r["method"] == "GET")


def test_incremental_and_full_refresh(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> None:
    first = SeriesSpec(count=3, patient_id="P1")
    seed_series(fw, tmp_path, first)
    seed_series(fw, tmp_path, SeriesSpec(count=2, patient_id="P1", study_uid=first.study_uid))
    config = config_from_dict(
        {
            "flywheel": {"api_key": fwlite.api_key},
            "spool_dir": str(tmp_path / "spool"),
            "qr": {
                "enabled": True,
                "port": 11999,
                "peers": [{"ae_title": "PACS", "host": "127.0.0.1", "port": 104}],
            },
        }
    )
    service = QRService(config, fw)
    try:
        report = service.refresher.refresh(full=True)
        assert report is not None and (report.listed, report.indexed) == (2, 2)
        counts = service.index.counts()
        assert (counts["studies"], counts["series"], counts["instances"]) == (1, 2, 5)

        # nothing changed: one listing, no download
        before = downloads(fwlite)
        report = service.refresher.refresh()
        assert report is not None and report.indexed == 0 and not report.full
        assert downloads(fwlite) == before

        # a new series and a replaced zip (same name, 4 instances now): only those two
        second = SeriesSpec(count=1, patient_id="P2")
        seed_series(fw, tmp_path, second)
        seed_series(fw, tmp_path, SeriesSpec(**{**first.__dict__, "count": 4}))
        report = service.refresher.refresh()
        assert report is not None and report.indexed == 2
        counts = service.index.counts()
        assert (counts["studies"], counts["series"], counts["instances"]) == (2, 3, 7)

        # deleted on the site: a quick pass cannot know, the full pass drops it
        session = fw.sessions.find_first(f"uid={second.study_uid}")
        fw.delete_session(session.id)
        service.refresher.refresh()
        assert service.index.counts()["studies"] == 2
        report = service.refresher.refresh(full=True)
        assert report is not None and report.removed == 1
        assert service.index.counts()["studies"] == 1
    finally:
        service.index.close()


def test_mutual_tls_findscu_and_echo(tmp_path: Path, fwlite: FwliteServer, fw: Any) -> None:
    import subprocess

    import yaml

    from tests.support import agent_process, peers
    from tests.support.tls import make_tls_files

    peers.require("findscu")
    spec = SeriesSpec(count=2, patient_id="TLS-1")
    seed_series(fw, tmp_path, spec)
    files = make_tls_files(tmp_path / "pki")
    port, scp_port = peers.free_port(), peers.free_port()
    raw: dict[str, Any] = {
        "flywheel": {"api_key": fwlite.api_key},
        "spool_dir": str(tmp_path / "spool"),
        "push": {"enabled": False},
        "qr": {
            "enabled": True,
            "port": port,
            "tls": {
                "enabled": True,
                "cert": str(files.server_cert),
                "key": str(files.server_key),
                "ca": str(files.ca),
            },
            "peers": [
                {"ae_title": "FINDSCU", "host": "127.0.0.1", "port": 104},
                {"ae_title": "STORESCP", "host": "127.0.0.1", "port": scp_port},
            ],
        },
    }
    service = QRService(config_from_dict(raw), fw)
    service.start()
    try:
        base = [
            "findscu",
            "-S",
            "-aet",
            "FINDSCU",
            "-aec",
            "FWQR",
            "-k",
            "QueryRetrieveLevel=STUDY",
        ]
        base += ["-k", "PatientID=TLS-1", "-k", "StudyInstanceUID", "+sr"]
        tls = ["+tls", str(files.client_key), str(files.client_cert), "+cf", str(files.ca)]

        def find(extra: list[str]) -> subprocess.CompletedProcess[str]:
            command = [*base, *extra, "127.0.0.1", str(port)]
            return subprocess.run(
                command, env=peers.PEER_ENV, capture_output=True, text=True, timeout=60
            )

        def answered() -> bool:
            done = find(tls)
            return done.returncode == 0 and spec.study_uid in done.stdout + done.stderr

        from tests.support.polling import wait_until

        wait_until(answered)
        assert find([]).returncode != 0  # plain DICOM to a TLS port: no association

        # C-MOVE over TLS, and the store association to the destination over TLS too
        out = tmp_path / "received"
        server_tls = ["+tls", str(files.server_key), str(files.server_cert), "+cf", str(files.ca)]
        scp = peers.start_storescp(out, scp_port, extra=server_tls)
        try:
            # (this dcmtk's movescu has no TLS: the request goes from pynetdicom)
            assert _move_over_tls(port, spec.study_uid, files) == 0x0000
            wait_until(lambda: len(list(out.iterdir())) == 2)
        finally:
            peers.stop(scp)
        # and `fwagent echo` checks it over TLS with the qr.tls files
        raw["qr"]["tls"].update(cert=str(files.client_cert), key=str(files.client_key))
        path = tmp_path / "echo.yaml"
        path.write_text(yaml.safe_dump(raw))
        done = agent_process.fwagent("echo", "--config", str(path))
        line = next(x for x in done.stdout.splitlines() if "Q/R SCP" in x)
        assert line.startswith("OK"), done.stdout
    finally:
        service.stop()


def _move_over_tls(port: int, study_uid: str, files: Any) -> int:
    from fwagent.config import TlsConfig
    from fwagent.tls import client_ssl_context
    from pydicom.dataset import Dataset
    from pynetdicom import AE
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelMove as Move,
    )

    tls = TlsConfig(
        enabled=True, cert=str(files.client_cert), key=str(files.client_key), ca=str(files.ca)
    )
    ae = AE(ae_title="FINDSCU")
    ae.add_requested_context(Move)
    tls_args = (client_ssl_context(tls), "127.0.0.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="FWQR", tls_args=tls_args)
    assert assoc.is_established
    request = Dataset()
    request.QueryRetrieveLevel = "STUDY"
    request.StudyInstanceUID = study_uid
    try:
        answers = list(assoc.send_c_move(request, "STORESCP", Move))
    finally:
        assoc.release()
    return int(answers[-1][0].Status)


def test_unresponsive_flywheel_delays_an_answer_by_seconds_only(
    tmp_path: Path, fwlite: FwliteServer, fw: Any
) -> None:
    """Flywheel accepts the connection and never answers: a C-FIND waits for the refresh it
    asked for at most FRESH_WAIT_SECONDS, then answers from the index."""
    import socket
    import time

    import flywheel
    from fwagent.qr import service as service_module

    from tests.integration.qr_support import pynetdicom_find
    from tests.support import peers
    from tests.support.polling import wait_until

    spec = SeriesSpec(count=2, patient_id="SLOW-1")
    seed_series(fw, tmp_path, spec)
    port = peers.free_port()
    config = config_from_dict(
        {
            "flywheel": {"api_key": fwlite.api_key},
            "spool_dir": str(tmp_path / "spool"),
            "qr": {
                "enabled": True,
                "ae_title": "FWQR",
                "port": port,
                "peers": [{"ae_title": "FINDSCU", "host": "127.0.0.1", "port": 104}],
            },
        }
    )
    service = QRService(config, flywheel.Client(fwlite.api_key))
    service.start()
    blackhole = socket.socket()
    try:
        wait_until(lambda: service.index.counts()["studies"] == 1)
        fwlite.stop()
        blackhole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blackhole.bind(("127.0.0.1", fwlite.port))
        blackhole.listen(16)  # connections complete in the backlog; nothing ever answers
        time.sleep(service_module.FRESH_SECONDS + 0.1)  # the index is now "stale"
        from pydicom.dataset import Dataset

        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.PatientID = "SLOW-1"
        query.StudyInstanceUID = ""
        start = time.monotonic()
        (answers,) = pynetdicom_find(port, [query])
        elapsed = time.monotonic() - start
        assert [status for status, _ in answers] == [0xFF00, 0x0000]
        assert elapsed < service_module.FRESH_WAIT_SECONDS + 2
    finally:
        blackhole.close()  # the stuck request fails, the refresh thread can stop
        service.stop()


def test_fwagent_qr_starts_and_answers_while_flywheel_is_down(tmp_path: Path) -> None:

    import yaml

    from tests.support import agent_process, peers

    port = peers.free_port()
    raw = {
        "flywheel": {"api_key": f"127.0.0.1:{peers.free_port()}:__force_insecure:KEY"},
        "spool_dir": str(tmp_path / "spool"),
        "qr": {
            "enabled": True,
            "port": port,
            "peers": [{"ae_title": "PACS", "host": "127.0.0.1", "port": 104}],
        },
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(raw))
    log = tmp_path / "qr.log"
    proc = agent_process.start_agent(path, port, log, command="qr")
    try:
        done = agent_process.fwagent("echo", "--config", str(path))
        (qr_line,) = [x for x in done.stdout.splitlines() if "Q/R SCP" in x]
        (fw_line,) = [x for x in done.stdout.splitlines() if " Flywheel: " in x]
        assert qr_line.startswith("OK") and fw_line.startswith("FAIL"), done.stdout
    finally:
        assert agent_process.stop_agent(proc) == 0, log.read_text()[-2000:]


def test_a_key_that_sees_one_group_answers_only_that_groups_studies(tmp_path: Path) -> None:
    """Queries only return what the API key can see: fwlite's restricted key reads group
    ``alpha`` only; the Q/R service on that key lists, indexes and answers alpha's study,
    never beta's, whose files it may not even download."""
    import flywheel

    from tests.integration.qr_support import QR_AET, findscu

    site = FwliteServer(tmp_path / "fwlite", extra_args=("--restricted-key", "alpha-only:alpha"))
    site.start()
    try:
        fw = site.client()
        for group in ("alpha", "beta"):
            fw.add_group({"_id": group, "label": group})
            fw.add_project({"group": group, "label": "proj"})
        alpha = SeriesSpec(count=2, patient_id="fw://alpha/proj/s1")
        beta = SeriesSpec(count=3, patient_id="fw://beta/proj/s2")
        seed_series(fw, tmp_path, alpha)
        seed_series(fw, tmp_path, beta)
        restricted_key = f"127.0.0.1:{site.port}:__force_insecure:alpha-only"
        port = peers.free_port()
        config = config_from_dict(
            {
                "flywheel": {"api_key": restricted_key},
                "spool_dir": str(tmp_path / "spool"),
                "qr": {
                    "enabled": True,
                    "ae_title": QR_AET,
                    "port": port,
                    "peers": [{"ae_title": "FINDSCU", "host": "127.0.0.1", "port": 104}],
                },
            }
        )
        service = QRService(config, flywheel.Client(restricted_key))
        try:
            report = service.refresher.refresh(full=True)
            assert report is not None and (report.listed, report.indexed) == (1, 1)
            service.server.start()
            found, done, _ = findscu(port, "STUDY", {"StudyInstanceUID": "", "PatientID": ""})
            assert done.returncode == 0, done.stderr
            assert [(d.StudyInstanceUID, d.PatientID) for d in found] == [
                (alpha.study_uid, alpha.patient_id)
            ]
        finally:
            service.stop()
        # and over HTTP: beta's file is refused to that key, alpha's served, nothing written
        session = fw.sessions.find_first(f"uid={beta.study_uid}")
        (acquisition,) = fw.get_session_acquisitions(session.id)
        (entry,) = fw.get_acquisition(acquisition.id).files
        url = f"{site.url}/api/acquisitions/{acquisition.id}/files/{quote(entry.name)}"
        assert http(url, "alpha-only") == (403, "group 'alpha' only")
        assert http(f"{site.url}/api/sessions/{session.id}", "alpha-only", "PUT")[0] == 403
        assert http(f"{site.url}/api/files", "wrong-key")[0] == 401
    finally:
        site.stop()


def http(url: str, key: str, method: str = "GET") -> tuple[int, str]:
    """(status, the part of fwlite's refusal message that names the group, or "")."""
    import json
    import urllib.error
    import urllib.request

    body = b"{}" if method == "PUT" else None
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Authorization", f"scitran-user {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        message = json.loads(exc.read() or b"{}").get("message", "")
        return exc.code, "group 'alpha' only" if "group 'alpha' only" in message else message
