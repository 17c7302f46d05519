"""Q/R service with dcmtk's findscu, movescu (to a storescp) and getscu, against data the
agent itself uploaded to fwlite (storescu -> ``fwagent run`` with push + qr -> fwlite) plus
single DICOM files other toolkits wrote, uploaded through the SDK."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
import yaml
from pydicom.dataset import Dataset

from tests.integration.qr_support import (
    QR_AET,
    Site,
    dataset_bytes,
    findscu,
    generate,
    pynetdicom_find,
    upload_single_files,
    values,
)
from tests.support import agent_process, peers
from tests.support.fwlite_server import FwliteServer
from tests.support.polling import wait_until

pytestmark = pytest.mark.slow
LOCAL = "127.0.0.1"


class Env:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.qr_port = peers.free_port()
        self.store_port = peers.free_port()  # storescp accepting every syntax
        self.plain_port = peers.free_port()  # storescp accepting uncompressed only
        self.site = Site()
        self.config: Path = root / "agent.yaml"
        self.fwlite: FwliteServer
        self.agent: subprocess.Popen[bytes]

    def storescp(self, name: str, accept_all: bool = True) -> tuple[Any, Path]:
        out = self.root / f"received-{name}-{peers.free_port()}"
        port = self.store_port if accept_all else self.plain_port
        # +B: the file holds exactly the bytes that came over the wire
        extra = ["+B", "+xa"] if accept_all else ["+B"]
        return peers.start_storescp(out, port, extra=extra), out


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    peers.require("storescu", "storescp", "findscu", "movescu", "getscu")
    root = tmp_path_factory.mktemp("qr")
    env = Env(root)
    env.fwlite = FwliteServer(root / "fwlite").start()
    qr = {
        "enabled": True,
        "ae_title": QR_AET,
        "host": "127.0.0.1",
        "port": env.qr_port,
        "max_results": 50,
        "peers": [
            {
                "ae_title": "FINDSCU",
                "host": LOCAL,
                "port": 1,
                "find": True,
                "move": False,
                "get": False,
            },
            {
                "ae_title": "MOVESCU",
                "host": LOCAL,
                "port": 1,
                "find": True,
                "move": True,
                "get": False,
            },
            {
                "ae_title": "GETSCU",
                "host": LOCAL,
                "port": 1,
                "find": False,
                "move": False,
                "get": True,
            },
            {
                "ae_title": "STORESCP",
                "host": LOCAL,
                "port": env.store_port,
                "find": False,
                "move": False,
            },
            {
                "ae_title": "PLAINSCP",
                "host": LOCAL,
                "port": env.plain_port,
                "find": False,
                "move": False,
            },
        ],
    }
    path, push_port = agent_process.write_config(root, env.fwlite, quiet=0.5, qr=qr)
    env.config = path
    env.agent = agent_process.start_agent(path, push_port, root / "agent.log")
    try:
        peers.wait_for_port(env.qr_port)
        pushed, samples = generate(root / "data")
        done = peers.storescu(push_port, pushed)
        assert done.returncode == 0, done.stderr
        upload_single_files(env.fwlite.client(), samples)
        for p in [*pushed, *samples]:
            env.site.add(p)
        wait_until(lambda: agent_process.status(path)["series"].get("uploaded") == 4, timeout=60)
        # the index catches up by itself (quick refresh before a request)
        total = len(env.site.studies)
        wait_until(lambda: len(findscu(env.qr_port, "STUDY", {"StudyInstanceUID": ""})[0]) == total)
        yield env
    finally:
        agent_process.stop_agent(env.agent)
        env.fwlite.stop()


# -- C-FIND --------------------------------------------------------------------------------


def test_find_counts_per_level_study_and_patient_root(env: Env) -> None:
    site = env.site
    studies, done, _ = findscu(
        env.qr_port,
        "STUDY",
        {"StudyInstanceUID": "", "ModalitiesInStudy": "", "NumberOfStudyRelatedInstances": ""},
    )
    assert done.returncode == 0, done.stderr
    assert values(studies, "StudyInstanceUID") == sorted(site.studies)  # each study once
    for answer in studies:
        assert int(answer.NumberOfStudyRelatedInstances) == len(
            site.studies[answer.StudyInstanceUID]
        )
        assert answer.RetrieveAETitle == QR_AET

    patients, _, _ = findscu(
        env.qr_port,
        "PATIENT",
        {
            "PatientID": "PAT-A",
            "PatientName": "",
            "NumberOfPatientRelatedStudies": "",
            "NumberOfPatientRelatedInstances": "",
        },
        model="-P",
    )
    assert len(patients) == 1
    assert str(patients[0].PatientName) == "Doe^John"
    assert int(patients[0].NumberOfPatientRelatedStudies) == 2
    assert int(patients[0].NumberOfPatientRelatedInstances) == 9

    brain = next(s for s in studies if len(site.studies[s.StudyInstanceUID]) == 5)
    series, _, _ = findscu(
        env.qr_port, "SERIES",
        {"StudyInstanceUID": brain.StudyInstanceUID, "SeriesInstanceUID": "", "SeriesDescription": "", "NumberOfSeriesRelatedInstances": ""},
    )  # fmt: skip
    assert sorted(
        (str(s.SeriesDescription), int(s.NumberOfSeriesRelatedInstances)) for s in series
    ) == [("T1", 3), ("T2", 2)]

    t1 = next(s for s in series if s.SeriesDescription == "T1")
    images, _, _ = findscu(
        env.qr_port, "IMAGE",
        {"StudyInstanceUID": brain.StudyInstanceUID, "SeriesInstanceUID": t1.SeriesInstanceUID, "SOPInstanceUID": "", "InstanceNumber": ""},
    )  # fmt: skip
    assert values(images, "SOPInstanceUID") == sorted(site.series[t1.SeriesInstanceUID])
    assert values(images, "InstanceNumber") == ["1", "2", "3"]

    # patient root down to IMAGE for patient B: one instance
    images_b, _, _ = findscu(
        env.qr_port, "IMAGE", {"PatientID": "PAT-B", "SOPInstanceUID": ""}, model="-P"
    )
    assert len(images_b) == 1


def test_find_wildcards_ranges_and_lists(env: Env) -> None:
    def study_descriptions(**keys: str) -> list[str]:
        answers, done, _ = findscu(env.qr_port, "STUDY", {"StudyDescription": "", **keys})
        assert done.returncode == 0, done.stderr
        return values(answers, "StudyDescription")

    # PN: case-insensitive wildcard
    assert study_descriptions(PatientName="doe*") == ["Brain MRI", "Knee"]
    assert study_descriptions(PatientName="Sm?th^Anna") == ["Chest [PA]"]
    # LO: case-sensitive wildcards, brackets are literal
    assert study_descriptions(StudyDescription="Br?in*") == ["Brain MRI"]
    assert study_descriptions(StudyDescription="brain*") == []
    assert study_descriptions(StudyDescription="Chest [PA]") == ["Chest [PA]"]
    # DA ranges, open and closed, single date
    assert study_descriptions(StudyDate="20200101-20211231") == ["Brain MRI", "Knee"]
    assert study_descriptions(StudyDate="-20200101", PatientID="PAT-*") == ["Chest [PA]"]
    assert study_descriptions(StudyDate="20210315") == ["Knee"]
    # TM range
    assert study_descriptions(StudyTime="1500-1600") == ["Chest [PA]"]
    # list of UIDs
    uids = sorted(env.site.studies)[:2]
    answers, _, _ = findscu(env.qr_port, "STUDY", {"StudyInstanceUID": "\\".join(uids)})
    assert values(answers, "StudyInstanceUID") == uids
    # wildcard on a UID is not allowed by PS3.4: a literal match, so nothing
    assert findscu(env.qr_port, "STUDY", {"StudyInstanceUID": "1.2*"})[0] == []
    # a series-level modality in the study's list
    assert study_descriptions(ModalitiesInStudy="CT") == ["Knee", "e+1"]  # + CT_small.dcm


def test_unregistered_or_unauthorised_caller(env: Env) -> None:
    answers, done, _ = findscu(env.qr_port, "STUDY", {"StudyInstanceUID": ""}, aet="INTRUDER")
    assert answers == []
    assert "reject" in (done.stdout + done.stderr).lower()
    # GETSCU is registered but may not C-FIND: refused with a status, association kept
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    ((answer,),) = pynetdicom_find(env.qr_port, [query], aet="GETSCU")
    assert answer == (0x0124, None)
    # a registered peer calling the wrong AE title is rejected too
    done = subprocess.run(
        ["findscu", "-S", "-aet", "FINDSCU", "-aec", "NOTFWQR", "-k", "QueryRetrieveLevel=STUDY"]
        + ["127.0.0.1", str(env.qr_port)],
        env=peers.PEER_ENV, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and "called ae title not recognized" in done.stderr.lower()
    # MOVESCU may not C-GET, GETSCU may not C-MOVE: a failure status, nothing sent
    assert _retrieve_status(env, "GETSCU", "move") == 0xC514
    assert _retrieve_status(env, "MOVESCU", "get") == 0xC413
    # a retrieve without the unique key of its level: failure, association kept
    assert _retrieve_status(env, "MOVESCU", "move", level="SERIES") == 0xC514
    assert _retrieve_status(env, "GETSCU", "get", level="SERIES") == 0xC413


def _retrieve_status(env: Env, aet: str, kind: str, level: str = "STUDY") -> int:
    from pynetdicom import AE
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelMove,
    )

    model = (
        StudyRootQueryRetrieveInformationModelMove
        if kind == "move"
        else StudyRootQueryRetrieveInformationModelGet
    )
    ae = AE(ae_title=aet)
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", env.qr_port, ae_title=QR_AET)
    assert assoc.is_established
    request = Dataset()
    request.QueryRetrieveLevel = level
    request.StudyInstanceUID = sorted(env.site.studies)[0]
    try:
        if kind == "move":
            answers = list(assoc.send_c_move(request, "STORESCP", model))
        else:
            answers = list(assoc.send_c_get(request, model))
        assert assoc.is_established
    finally:
        assoc.release()
    return int(answers[-1][0].Status)


def test_malformed_identifiers_get_a_failure_status_on_a_kept_association(env: Env) -> None:
    def request(**keys: str) -> Dataset:
        ds = Dataset()
        for key, value in keys.items():
            setattr(ds, key, value)
        return ds

    no_level = request(StudyInstanceUID="")
    bad_level = request(QueryRetrieveLevel="PATIENT", PatientID="")  # not in Study Root
    bad_date = request(QueryRetrieveLevel="STUDY", StudyDate="2020-13-45x")
    list_on_lo = request(QueryRetrieveLevel="STUDY", StudyDescription="Knee\\Chest")
    good = request(QueryRetrieveLevel="STUDY", PatientID="PAT-B", StudyDescription="")
    results = pynetdicom_find(env.qr_port, [no_level, bad_level, bad_date, list_on_lo, good])
    for answers in results[:4]:
        assert [status for status, _ in answers] == [0xA900]
    assert [s for s, _ in results[4]] == [0xFF00, 0x0000]
    answer = results[4][0][1]
    assert answer is not None and answer.StudyDescription == "Chest [PA]"


# -- C-MOVE --------------------------------------------------------------------------------


def _movescu(
    port: int, dest: str, level: str, keys: dict[str, str], aet: str = "MOVESCU"
) -> subprocess.CompletedProcess[str]:
    command = [
        "movescu",
        "-S",
        "-aet",
        aet,
        "-aec",
        QR_AET,
        "-aem",
        dest,
        "-k",
        f"QueryRetrieveLevel={level}",
    ]
    for key, value in keys.items():
        command += ["-k", f"{key}={value}"]
    command += ["127.0.0.1", str(port)]
    return subprocess.run(command, env=peers.PEER_ENV, capture_output=True, text=True, timeout=120)


def _received(out: Path) -> dict[str, Path]:
    found = {}
    for path in out.iterdir():
        if path.is_file():
            found[pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID] = path
    return found


def test_move_study_to_storescp_arrives_byte_equal(env: Env) -> None:
    study = next(s for s, sops in env.site.studies.items() if len(sops) == 5)
    proc, out = env.storescp("move")
    try:
        done = _movescu(env.qr_port, "STORESCP", "STUDY", {"StudyInstanceUID": study})
        assert done.returncode == 0, done.stderr
        received = wait_until(lambda: (r := _received(out)) and len(r) == 5 and r)
    finally:
        peers.stop(proc)
    assert sorted(received) == sorted(env.site.studies[study])
    for sop, path in received.items():
        assert dataset_bytes(path) == dataset_bytes(env.site.files[sop])


def test_move_to_unknown_destination_is_a801_and_nothing_sent(env: Env) -> None:
    study = sorted(env.site.studies)[0]
    done = _movescu(env.qr_port, "NOBODY", "STUDY", {"StudyInstanceUID": study})
    assert done.returncode != 0
    assert "movedestinationunknown" in (done.stdout + done.stderr).lower()
    log = (env.root / "agent.log").read_text()
    assert log.count("qr: C-MOVE from MOVESCU to unknown destination 'NOBODY' refused") == 1
    assert "Unknown Move Destination" not in log  # pynetdicom's error for the same refusal


def test_move_nothing_matching_opens_no_store_association(env: Env) -> None:
    out = env.root / f"received-empty-{peers.free_port()}"
    proc = peers.start_storescp(out, env.store_port, extra=["-v", "+B"])  # logs associations
    c_study = next(s for s, sops in env.site.studies.items() if len(sops) == 1)
    try:
        done = _movescu(env.qr_port, "STORESCP", "STUDY", {"StudyInstanceUID": "1.2.3.4.5.6.7"})
        assert done.returncode == 0, done.stderr
        # then one that matches, so the log shows what an opened association looks like
        done = _movescu(env.qr_port, "STORESCP", "STUDY", {"StudyInstanceUID": c_study})
        assert done.returncode == 0, done.stderr
    finally:
        peers.stop(proc)
        err = proc.stderr.read().decode() if proc.stderr else ""
    assert len(list(out.iterdir())) == 1
    assert err.count("Association Acknowledged") == 1  # (wait_for_port connects too)


def test_move_compressed_to_uncompressed_only_destination_is_transcoded(env: Env) -> None:
    jpeg = next(sop for sop, path in env.site.files.items() if path.name == "SC_rgb_jpeg_gdcm.dcm")
    original = pydicom.dcmread(env.site.files[jpeg])
    proc, out = env.storescp("plain", accept_all=False)
    try:
        done = _movescu(
            env.qr_port,
            "PLAINSCP",
            "IMAGE",
            {
                "StudyInstanceUID": original.StudyInstanceUID,
                "SeriesInstanceUID": original.SeriesInstanceUID,
                "SOPInstanceUID": jpeg,
            },
        )
        assert done.returncode == 0, done.stderr
        received = wait_until(lambda: _received(out))
    finally:
        peers.stop(proc)
    got = pydicom.dcmread(received[jpeg])
    assert not got.file_meta.TransferSyntaxUID.is_compressed
    assert (got.pixel_array == original.pixel_array).all()  # lossless JPEG: same pixels
    # to a destination that takes JPEG it goes unchanged
    proc, out = env.storescp("jpeg")
    try:
        done = _movescu(
            env.qr_port,
            "STORESCP",
            "IMAGE",
            {
                "StudyInstanceUID": original.StudyInstanceUID,
                "SeriesInstanceUID": original.SeriesInstanceUID,
                "SOPInstanceUID": jpeg,
            },
        )
        received = wait_until(lambda: _received(out))
    finally:
        peers.stop(proc)
    assert dataset_bytes(received[jpeg]) == dataset_bytes(env.site.files[jpeg])


# -- C-GET ---------------------------------------------------------------------------------


def test_get_series_and_samples_byte_equal(env: Env, tmp_path: Path) -> None:
    for sop, path in env.site.files.items():
        if path.parent.name != "samples":
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        out = tmp_path / sop
        out.mkdir()
        command = ["getscu", "+B", "-S", "-aet", "GETSCU", "-aec", QR_AET, "-od", str(out)]
        command += [
            "-k",
            "QueryRetrieveLevel=IMAGE",
            "-k",
            f"StudyInstanceUID={ds.StudyInstanceUID}",
        ]
        command += [
            "-k",
            f"SeriesInstanceUID={ds.SeriesInstanceUID}",
            "-k",
            f"SOPInstanceUID={sop}",
        ]
        command += ["127.0.0.1", str(env.qr_port)]
        done = subprocess.run(
            command, env=peers.PEER_ENV, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        received = _received(out)
        if path.name == "broken_jpeg.dcm":  # cannot be decompressed for getscu: failed
            assert received == {}
            continue
        assert list(received) == [sop]
        got, original = pydicom.dcmread(received[sop]), pydicom.dcmread(path)
        if original.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian:
            assert dataset_bytes(received[sop]) == dataset_bytes(path), path.name
        elif original.file_meta.TransferSyntaxUID.is_compressed:  # getscu offers uncompressed
            assert not got.file_meta.TransferSyntaxUID.is_compressed
            assert (got.pixel_array == original.pixel_array).all()
        else:  # implicit VR stored, explicit VR negotiated: the same elements
            assert got == original


def test_echo_checks_the_qr_service(env: Env) -> None:
    done = agent_process.fwagent("echo", "--config", str(env.config))
    line = next(line for line in done.stdout.splitlines() if "Q/R SCP" in line)
    assert line.startswith("OK"), done.stdout


# -- C-CANCEL ------------------------------------------------------------------------------
# No C-FIND cancel test: pynetdicom drops any C-CANCEL that arrives before it starts a
# request's handler, and the handler then writes every pending response without waiting
# for the peer, so whether a C-FIND cancel lands (Cancel) or not (Success) is timing, not
# protocol. The handler checks the cancel before each response all the same (scp.py).


def test_cancel_during_c_get_stops_between_sub_operations(env: Env) -> None:
    """A C-CANCEL sent when the first instance arrives: the SCP stops before the next one
    and answers Cancel (0xFE00) with the counts so far."""
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        CTImageStorage,
        MRImageStorage,
        StudyRootQueryRetrieveInformationModelGet,
    )

    study = next(s for s, sops in env.site.studies.items() if len(sops) == 5)
    received: list[str] = []
    assoc_box: list[Any] = []

    def on_store(event: evt.Event) -> int:
        received.append(event.dataset.SOPInstanceUID)
        if len(received) == 1:
            assoc = assoc_box[0]
            assoc.send_c_cancel(1, None, query_model=StudyRootQueryRetrieveInformationModelGet)
        return 0x0000

    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(MRImageStorage)
    ae.add_requested_context(CTImageStorage)
    roles: list[Any] = [
        build_role(MRImageStorage, scp_role=True),
        build_role(CTImageStorage, scp_role=True),
    ]
    assoc = ae.associate(
        "127.0.0.1", env.qr_port, ae_title=QR_AET, ext_neg=roles,
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )  # fmt: skip
    assert assoc.is_established
    assoc_box.append(assoc)
    request = Dataset()
    request.QueryRetrieveLevel = "STUDY"
    request.StudyInstanceUID = study
    try:
        responses = [
            status
            for status, _ in assoc.send_c_get(
                request, StudyRootQueryRetrieveInformationModelGet, msg_id=1
            )
        ]
    finally:
        assoc.release()
    statuses = [int(status.Status) for status in responses]
    final = responses[-1]
    # exact: the C-CANCEL goes out on this association before the first C-STORE response,
    # so the SCP has read it when that response arrives, and stops before the second
    assert statuses[-1] == 0xFE00
    assert len(received) == 1
    assert (final.NumberOfCompletedSuboperations, final.NumberOfRemainingSuboperations) == (1, 4)


def test_cancel_during_c_move_stops_with_exact_counts(env: Env) -> None:
    """The move destination (a pynetdicom storage SCP registered as STORESCP) sends the
    C-CANCEL on the C-MOVE association while it holds the first instance's C-STORE
    response: the SCP stops early and its final response is Cancel (0xFE00) with the
    sub-operations it did as completed and the rest as remaining, none failed.

    The two associations are not ordered against each other, so the SCP may have started
    the second sub-operation before it reads the cancel (seen once in a full run)."""
    from pynetdicom import AE, StoragePresentationContexts, evt
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelMove as Move,
    )

    study = next(s for s, sops in env.site.studies.items() if len(sops) == 5)
    received: list[str] = []
    move_assoc: list[Any] = []

    def on_store(event: evt.Event) -> int:
        received.append(str(event.dataset.SOPInstanceUID))
        if len(received) == 1:
            move_assoc[0].send_c_cancel(3, None, query_model=Move)
        return 0x0000

    dest = AE(ae_title="STORESCP")
    dest.supported_contexts = StoragePresentationContexts
    server = dest.start_server(
        (LOCAL, env.store_port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    try:
        ae = AE(ae_title="MOVESCU")
        ae.add_requested_context(Move)
        assoc = ae.associate(LOCAL, env.qr_port, ae_title=QR_AET)
        assert assoc.is_established
        move_assoc.append(assoc)
        request = Dataset()
        request.QueryRetrieveLevel = "STUDY"
        request.StudyInstanceUID = study
        try:
            responses = [st for st, _ in assoc.send_c_move(request, "STORESCP", Move, msg_id=3)]
        finally:
            assoc.release()
    finally:
        server.shutdown()
    final = responses[-1]
    assert int(final.Status) == 0xFE00
    counts = (
        final.NumberOfCompletedSuboperations,
        final.NumberOfRemainingSuboperations,
        final.NumberOfFailedSuboperations,
        final.NumberOfWarningSuboperations,
    )
    # the cancel races the next sub-operation across two associations: the SCP stops after
    # the first or the second instance (seen: both); never all five, never a failure
    completed, remaining, failed, warning = counts
    assert completed in (1, 2) and completed + remaining == 5 and (failed, warning) == (0, 0)
    assert len(received) == completed and set(received) <= set(env.site.studies[study])


# -- Orthanc as the client, and `fwagent qr` alone ------------------------------------------


def test_orthanc_queries_and_retrieves_through_fwagent_qr(env: Env, tmp_path: Path) -> None:
    from tests.support.orthanc import OrthancServer

    qr_port = peers.free_port()
    orthanc = OrthancServer(
        tmp_path / "orthanc", aet="ORTHANC", modalities={"fwqr": ("FWQR", "127.0.0.1", qr_port)}
    ).start()
    config = {
        "flywheel": {"api_key": env.fwlite.api_key},
        "spool_dir": str(tmp_path / "qr-spool"),
        "qr": {
            "enabled": True,
            "ae_title": "FWQR",
            "port": qr_port,
            "peers": [{"ae_title": "ORTHANC", "host": LOCAL, "port": orthanc.dicom_port}],
        },
    }
    path = tmp_path / "qr.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "qr.log"
    proc = agent_process.start_agent(path, qr_port, log, command="qr")
    try:

        def query(level: str, keys: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
            found = orthanc.rest(
                "POST", "/modalities/fwqr/query", json={"Level": level, "Query": keys}
            )
            answers = orthanc.rest("GET", f"/queries/{found['ID']}/answers")
            contents = [
                orthanc.rest("GET", f"/queries/{found['ID']}/answers/{a}/content?simplify")
                for a in answers
            ]
            return found["ID"], contents

        # the new process indexes the site by itself; wildcard + range, exact answers
        def doe_since_2020() -> tuple[str, list[dict[str, Any]]] | None:
            keys = {"PatientName": "DOE*", "StudyDate": "20200101-", "StudyDescription": ""}
            found = query("Study", keys)
            return found if len(found[1]) == 2 else None  # the first indexing pass is done

        query_id, studies = wait_until(doe_since_2020)
        assert sorted(s["StudyDescription"] for s in studies) == ["Brain MRI", "Knee"]
        _, series = query(
            "Series",
            {
                "StudyInstanceUID": studies[0]["StudyInstanceUID"],
                "SeriesInstanceUID": "",
                "NumberOfSeriesRelatedInstances": "",
            },
        )
        expected = sorted(
            len(v)
            for k, v in env.site.series.items()
            if k in {s["SeriesInstanceUID"] for s in series}
        )
        assert sorted(int(s["NumberOfSeriesRelatedInstances"]) for s in series) == expected

        # retrieve both studies (C-MOVE to Orthanc itself), then one series by /move
        orthanc.rest(
            "POST",
            f"/queries/{query_id}/retrieve",
            json={"TargetAet": "ORTHANC", "Synchronous": True},
        )
        wanted = [sop for s in studies for sop in env.site.studies[s["StudyInstanceUID"]]]
        assert orthanc.instance_count() == len(wanted) == 9
        for sop in wanted:
            (instance,) = orthanc.rest(
                "POST", "/tools/find", json={"Level": "Instance", "Query": {"SOPInstanceUID": sop}}
            )
            got = orthanc.rest("GET", f"/instances/{instance}/file")
            held = tmp_path / "held.dcm"
            held.write_bytes(got)
            assert dataset_bytes(held) == dataset_bytes(env.site.files[sop])

        orthanc.delete_all()
        c_study = next(
            s for s, sops in env.site.studies.items() if env.site.files[sops[0]].parent.name == "c"
        )
        c_series = next(k for k, v in env.site.series.items() if v == env.site.studies[c_study])
        orthanc.rest(
            "POST", "/modalities/fwqr/move",
            json={"Level": "Series", "Resources": [{"StudyInstanceUID": c_study, "SeriesInstanceUID": c_series}], "TargetAet": "ORTHANC", "Synchronous": True},
        )  # fmt: skip
        assert orthanc.series_instance_count(c_series) == 1
    finally:
        agent_process.stop_agent(proc)
        orthanc.stop()


def test_undecodable_instance_for_uncompressed_only_destination_counts_as_failed(
    env: Env,
) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelMove,
    )

    broken = next(p for p in env.site.files.values() if p.name == "broken_jpeg.dcm")
    header = pydicom.dcmread(broken, stop_before_pixels=True)
    proc, out = env.storescp("broken", accept_all=False)
    ae = AE(ae_title="MOVESCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate("127.0.0.1", env.qr_port, ae_title=QR_AET)
    assert assoc.is_established
    request = Dataset()
    request.QueryRetrieveLevel = "STUDY"
    request.StudyInstanceUID = header.StudyInstanceUID
    try:
        answers = list(
            assoc.send_c_move(request, "PLAINSCP", StudyRootQueryRetrieveInformationModelMove)
        )
    finally:
        assoc.release()
        peers.stop(proc)
    final, identifier = answers[-1]
    assert final.Status == 0xA702  # every sub-operation failed
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (0, 1)
    assert identifier is not None and identifier.FailedSOPInstanceUIDList == header.SOPInstanceUID
    assert list(out.iterdir()) == []


# -- the connection gate (issues 15, 18.10) ------------------------------------------------


def test_idle_and_half_sent_connections_lock_no_peer_out(env: Env) -> None:
    """25 connections from one host that send one byte (part of a request) and stop: they
    never reach pynetdicom's 20 associations, the first 10 (the per-host limit) are closed
    after the 5 s deadline, the rest at once; a registered peer's C-ECHO gets in meanwhile."""
    held: list[socket.socket] = []
    started = time.monotonic()
    try:
        for _ in range(25):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.2", 0))
            sock.settimeout(10)
            sock.connect((LOCAL, env.qr_port))
            sock.sendall(b"\x01")
            held.append(sock)
        echo = subprocess.run(
            [*peers.require("echoscu").values(), "-aet", "FINDSCU", "-aec", QR_AET, LOCAL,
             str(env.qr_port)],
            env=peers.PEER_ENV, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert echo.returncode == 0, echo.stderr
        deadline = started + 5 + 3
        for sock in held:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ConnectionResetError):  # closed either way
                assert sock.recv(1) == b""
        assert time.monotonic() < deadline
    finally:
        for sock in held:
            sock.close()


def test_one_host_gets_at_most_ten_qr_associations(env: Env) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title="FINDSCU")
    ae.add_requested_context(Verification)

    def associate(host: str) -> Any:
        return ae.associate(LOCAL, env.qr_port, ae_title=QR_AET, bind_address=(host, 0))

    held = [associate("127.0.0.3") for _ in range(10)]
    try:
        assert all(a.is_established for a in held)
        extra = associate("127.0.0.3")
        assert extra.is_rejected
        other = associate(LOCAL)  # another host is not affected
        assert other.is_established
        other.release()
    finally:
        for assoc in held:
            assoc.release()
    log = (env.root / "agent.log").read_text()
    assert "qr: rejected association from 127.0.0.3 (AE 'FINDSCU'): 10 associations" in log
