"""fwlite answers the real flywheel-sdk: finders, resolve, moves, uploads by metadata, errors."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import flywheel
import pytest
from flywheel import FileSpec

from tests.support.fwlite_server import FwliteServer


def upload(fw: Any, metadata: dict[str, Any], files: dict[str, bytes], kind: str = "uid") -> Any:
    specs = [
        FileSpec(name, contents=data, content_type="application/zip")
        for name, data in files.items()
    ]
    method = getattr(fw, f"upload_by_{kind}")
    return method(files=specs, metadata=json.dumps(metadata))


def meta(session_uid: str, acq_uid: str, name: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "group": {"_id": "psych"},
        "project": {"label": "study01"},
        "session": {
            "uid": session_uid,
            "label": "My Study",
            "subject": {"label": "s01", "firstname": "John", "lastname": "Doe"},
            "info": {"fwagent": {"routing": {"placement": "routed"}}},
        },
        "acquisition": {
            "uid": acq_uid,
            "label": f"Series {acq_uid}",
            "files": [{"name": name, "type": "dicom"}],
        },
    }
    body.update(over)
    return body


@pytest.fixture
def psych(fw: Any) -> Any:
    fw.add_group(flywheel.Group(id="psych", label="Psych"))
    return fw.get_group("psych")


def status_of(call: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(flywheel.ApiException) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body)


def test_finders_page_past_250_with_filter_and_after_id(
    fw: Any, fwlite: FwliteServer, psych: Any
) -> None:
    project = psych.add_project(label="study01")
    subject = project.add_subject(label="s01")
    for index in range(260):
        fw.add_session(
            {"project": project.id, "subject": {"_id": subject.id}, "label": f"ses{index:03d}"}
        )
    before = len(fwlite.requests())

    found = fw.sessions.find(f"project={project.id}")
    assert len(found) == 260
    assert len({s.id for s in found}) == 260
    pages = [r for r in fwlite.requests()[before:] if r["path"] == "/api/sessions"]
    assert len(pages) == 3  # 250 + 10 + the empty page that ends the finder
    assert "after_id" in pages[1]["query"]

    assert len(project.sessions()) == 260
    assert len(list(project.sessions.iter())) == 260
    assert [s.label for s in fw.sessions.find("label=~^ses25")] == [f"ses25{i}" for i in range(10)]
    assert fw.sessions.find_first("label=ses007").label == "ses007"
    assert len(fw.sessions.find("label=ses007", limit=5)) == 1
    assert len(fw.get_all_sessions(limit=7)) == 7
    assert fw.projects.find_one("label=study01").id == project.id
    assert fw.acquisitions.find("label=nothing") == []
    newest = fw.sessions.find(f"project={project.id}", sort="label:desc", limit=3)
    assert [s.label for s in newest] == ["ses259", "ses258", "ses257"]
    paged = list(fw.sessions.iter_find("label=~^ses0", sort="label:asc", limit=40))
    assert [s.label for s in paged] == [f"ses{i:03d}" for i in range(100)]


def test_resolve_and_lookup_paths(fw: Any, psych: Any, tmp_path: Path) -> None:
    project = psych.add_project(label="study01")
    subject = project.add_subject(label="s01")
    session = subject.add_session(label="ses1")
    acquisition = session.add_acquisition(label="T1")
    (tmp_path / "a.dcm").write_bytes(b"x" * 10)
    acquisition.upload_file(str(tmp_path / "a.dcm"))

    result = fw.resolve("psych/study01")
    assert [n.container_type for n in result.path] == ["group", "project"]
    assert [c.label for c in result.children] == ["s01"]
    top = fw.resolve("")
    assert sorted(c.id for c in top.children) == ["psych", "unknown"]
    found = fw.resolve("psych/study01/s01/ses1/T1/files/a.dcm")
    assert found.path[-1].container_type == "file"
    assert found.path[-1].name == "a.dcm"
    assert fw.lookup(f"psych/study01/s01/<id:{session.id}>").label == "ses1"
    status, body = status_of(lambda: fw.lookup("psych/nope"))
    assert status == 404 and "nope" in body["message"]


def test_updates_and_moves(fw: Any, psych: Any) -> None:
    study = psych.add_project(label="study01")
    other = psych.add_project(label="study02")
    subject = study.add_subject(label="s01", firstname="John")
    session = subject.add_session(label="ses1")
    acquisition = session.add_acquisition(label="T1")

    session.update(project=other.id)  # the subject follows by label, created in study02
    moved = fw.get_session(session.id)
    assert moved.project == other.id
    assert moved.subject.label == "s01" and moved.subject.id != subject.id
    assert moved.subject.firstname == "John"
    assert fw.get_acquisition(acquisition.id).parents.project == other.id

    second = study.add_subject(label="s02")
    session.update(subject=second.id)
    assert fw.get_session(session.id).subject.id == second.id
    assert fw.get_session(session.id).project == study.id

    fw.modify_subject(second.id, {"project": other.id})
    assert fw.get_session(session.id).parents.project == other.id
    assert fw.get_acquisition(acquisition.id).parents.subject == second.id

    session.update(label="renamed", operator="OP")
    assert fw.get_session(session.id).label == "renamed"

    session.replace_info({"a": 1, "b": 2})
    session.update_info({"c": 3})
    session.delete_info("a")
    assert fw.get_session(session.id).info == {"b": 2, "c": 3}
    session.add_tag("x")
    session.add_tag("y")
    session.delete_tag("x")
    assert fw.get_session(session.id).tags == ["y"]


def test_uid_upload_places_replaces_and_follows_moves(fw: Any, psych: Any) -> None:
    upload(fw, meta("1.2.3", "4.5.6", "a.dicom.zip"), {"a.dicom.zip": b"first"})
    session = fw.lookup("psych/study01/s01/My Study")
    assert session.uid == "1.2.3"
    assert session.info["fwagent"]["routing"]["placement"] == "routed"
    assert session.subject.firstname == "John"
    acquisition = fw.get_session_acquisitions(session.id)[0]
    assert acquisition.uid == "4.5.6" and acquisition.files[0].type == "dicom"

    upload(fw, meta("1.2.3", "4.5.6", "a.dicom.zip"), {"a.dicom.zip": b"second!"})
    acquisition = fw.get_acquisition(acquisition.id)
    assert [(f.name, f.size, f.version) for f in acquisition.files] == [("a.dicom.zip", 7, 2)]
    assert fw.download_file_from_acquisition_as_data(acquisition.id, "a.dicom.zip") == b"second!"

    elsewhere = psych.add_project(label="triaged")
    session.update(project=elsewhere.id)
    upload(fw, meta("1.2.3", "7.8.9", "b.dicom.zip"), {"b.dicom.zip": b"b"}, kind="reaper")
    assert len(fw.sessions.find("uid=1.2.3")) == 1
    assert sorted(a.uid for a in fw.get_session_acquisitions(session.id)) == ["4.5.6", "7.8.9"]
    assert fw.get_session(session.id).project == elsewhere.id

    new_project = meta("9.9.9", "9.9.10", "c.zip", project={"label": "brand-new"})
    upload(fw, new_project, {"c.zip": b"c"})
    assert fw.lookup("psych/brand-new/s01/My Study/Series 9.9.10").files[0].name == "c.zip"


def test_label_upload_matches_by_label(fw: Any, psych: Any) -> None:
    body = {
        "group": {"_id": "psych"},
        "project": {"label": "study01"},
        "session": {"label": "visit1", "subject": {"label": "s09"}},
        "acquisition": {"label": "scan", "files": [{"name": "x.csv"}]},
    }
    upload(fw, body, {"x.csv": b"1,2"}, kind="label")
    upload(fw, body, {"x.csv": b"1,2,3"}, kind="label")
    acquisition = fw.lookup("psych/study01/s09/visit1/scan")
    assert [(f.name, f.size) for f in acquisition.files] == [("x.csv", 5)]
    assert len(fw.acquisitions.find("label=scan")) == 1


def test_bad_input_answers_4xx_json(fw: Any, fwlite: FwliteServer, psych: Any) -> None:
    good = meta("1.1", "2.2", "a.zip")
    specs = [FileSpec("a.zip", contents=b"a")]
    status, body = status_of(lambda: fw.upload_by_uid(files=specs, metadata="{not json"))
    assert status == 400 and "JSON" in body["message"]
    status, body = status_of(
        lambda: upload(fw, {**good, "group": {"_id": "nogroup"}}, {"a.zip": b"a"})
    )
    assert status == 404 and "nogroup" in body["message"]
    status, body = status_of(lambda: upload(fw, {**good, "project": {}}, {"a.zip": b"a"}))
    assert status == 400 and "project.label" in body["message"]
    status, body = status_of(lambda: upload(fw, good, {"a.zip": b"a", "other.zip": b"o"}))
    assert status == 400 and "other.zip" in body["message"]
    status, body = status_of(lambda: fw.get_session("0123456789abcdef01234567"))
    assert status == 404
    status, body = status_of(lambda: fw.add_project({"group": "psych"}))
    assert status == 400
    status, body = status_of(lambda: fw.sessions.find("label"))
    assert status == 400 and "filter" in body["message"]
    assert all(r["status"] < 500 for r in fwlite.requests())
    assert fw.sessions.find("uid=1.1") == []  # nothing half-written


def test_concurrent_uploads_into_one_new_session(fw: Any, fwlite: FwliteServer, psych: Any) -> None:
    errors: list[BaseException] = []

    def send(index: int) -> None:
        try:
            client = fwlite.client()
            upload(
                client, meta("5.5.5", f"6.{index}", f"s{index}.zip"), {f"s{index}.zip": b"z" * 1000}
            )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    sessions = fw.sessions.find("uid=5.5.5")
    assert len(sessions) == 1
    assert len(fw.subjects.find("label=s01")) == 1
    assert len(fw.get_session_acquisitions(sessions[0].id)) == 8


def test_restart_and_kill_keep_everything(fwlite: FwliteServer, psych: Any) -> None:
    fw = fwlite.client()
    upload(fw, meta("3.3.3", "4.4.4", "k.zip"), {"k.zip": b"kept"})
    fwlite.restart()
    fw = fwlite.client()
    acquisition = fw.lookup("psych/study01/s01/My Study/Series 4.4.4")
    assert fw.download_file_from_acquisition_as_data(acquisition.id, "k.zip") == b"kept"
    acquisition.update_info({"after": "restart"})
    fwlite.kill()
    fwlite.start()
    fw = fwlite.client()
    assert fw.get_acquisition(acquisition.id).info == {"after": "restart"}
    assert fw.get_group("unknown").label == "Unknown"
    assert len(fw.groups()) == 2


def test_fault_injection_and_request_log(fw: Any, fwlite: FwliteServer, psych: Any) -> None:
    fwlite.set_fault(status=503, count=2, path_prefix="/api/upload")
    body = meta("8.8.8", "8.8.9", "f.zip")
    for _ in range(2):
        status, answer = status_of(lambda: upload(fw, body, {"f.zip": b"f"}))
        assert status == 503 and "fault" in answer["message"]
    assert fw.get_group("psych").id == "psych"  # other paths unaffected
    upload(fw, body, {"f.zip": b"f"})
    assert len(fw.sessions.find("uid=8.8.8")) == 1

    fwlite.set_fault(status=500)  # no count: until cleared
    status, _ = status_of(lambda: fw.get_group("psych"))
    assert status == 500
    fwlite.clear_fault()
    assert fw.get_group("psych").id == "psych"
    uploads = [r["status"] for r in fwlite.requests() if r["path"] == "/api/upload/uid"]
    assert uploads == [503, 503, 200]


def test_malformed_bodies_and_parameters_answer_400_json(fwlite: FwliteServer) -> None:
    def call(method: str, path: str, body: bytes | None) -> tuple[int, str]:
        request = urllib.request.Request(fwlite.url + path, data=body, method=method)
        request.add_header("Authorization", f"scitran-user {fwlite.key}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, ""
        except urllib.error.HTTPError as refused:
            answer = json.loads(refused.read())
            assert answer["status_code"] == refused.code
            return refused.code, answer["message"]

    assert call("GET", "/api/sessions?limit=abc", None)[0] == 400
    assert "'limit'" in call("GET", "/api/groups/unknown/projects?limit=x", None)[1]
    assert call("GET", "/api/sessions?limit=&skip=", None) == (200, "")
    status, message = call("GET", "/api/files?limit=abc", None)  # the finders' paging model
    assert status == 400 and "'limit'" in message
    assert call("GET", "/api/files?limit=&after_id=", None) == (200, "")
    assert call("POST", "/api/groups", b"{not json") == (400, "request body is not valid JSON")
    assert call("POST", "/api/groups", b"[1]")[0] == 400
    assert call("POST", "/api/groups", b'{"_id": "ab", "info": null}')[0] == 400
    assert call("POST", "/api/groups", b'{"_id": "ab", "tags": "x"}')[0] == 400
    status, message = call("PATCH", "/api/groups/unknown/info", b"{}")
    assert status == 400 and "'set', 'replace' or 'delete'" in message
    assert call("PATCH", "/api/groups/unknown/info", b'{"set": 3}')[0] == 400
    assert call("POST", "/api/groups/unknown/tags", b'""')[0] == 400
    assert call("PATCH", "/api/groups/unknown/tags", b'{"value": "t"}')[0] == 400
    assert call("PUT", "/api/_fwlite/fault", b'{"status": "503"}')[0] == 400
    assert call("POST", "/api/lookup", b'{"path": "psych"}')[0] == 400
    assert call("POST", "/api/groups", b'{"_id": "ab"}') == (200, "")
    assert call("POST", "/api/groups", b'{"_id": "ab"}')[0] == 409
    assert call("GET", "/api/widgets", None)[0] == 404
    assert all(r["status"] < 500 for r in fwlite.requests())
