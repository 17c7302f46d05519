"""fwlite download tickets through the real flywheel-sdk and raw HTTP (issue 18 item 8).

A ticket (``get_file_download_url``) stands in for the API key on one GET of its one file,
once, within its lifetime; it never creates, renames, injects faults or opens another file.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flywheel
import pytest

from tests.support.fwlite_server import FwliteServer


def raw(
    fwlite: FwliteServer, method: str, path: str, ticket: str, body: Any = None
) -> tuple[int, bytes]:
    """One request that carries the ticket and no API key."""
    data = json.dumps(body).encode() if body is not None else None
    query = urllib.parse.urlencode({"ticket": ticket})
    request = urllib.request.Request(f"{fwlite.url}{path}?{query}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def ticket_of(url: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["ticket"][0]


@pytest.fixture
def site(fw: Any, tmp_path: Path) -> dict[str, Any]:
    fw.add_group(flywheel.Group(id="psych", label="Psych"))
    project = fw.get_group("psych").add_project(label="study01")
    acquisition = (
        project.add_subject(label="s01").add_session(label="ses1").add_acquisition(label="T1")
    )
    files = (("a.dcm", b"file a"), ("b.dcm", b"secret b"), ("scan 1 é+&.dcm", b"odd name"))
    for name, data in files:
        (tmp_path / name).write_bytes(data)
        acquisition.upload_file(str(tmp_path / name))
    return {"project": project, "acquisition": acquisition}


def test_a_ticket_downloads_its_file_once(fwlite: FwliteServer, site: dict[str, Any]) -> None:
    acquisition = site["acquisition"]
    url = acquisition.get_file_download_url("a.dcm")
    assert fetch(url) == (200, b"file a")
    status, body = fetch(url)
    assert status == 401 and "already used" in json.loads(body)["message"]

    entry = acquisition.reload().get_file("b.dcm")  # FileEntry.url(), as a gear would
    assert fetch(entry.url()) == (200, b"secret b")
    odd = acquisition.get_file_download_url("scan 1 é+&.dcm")
    assert fetch(odd) == (200, b"odd name")
    assert fetch(odd)[0] == 401


def test_a_ticket_opens_no_other_route(fw: Any, fwlite: FwliteServer, site: dict[str, Any]) -> None:
    acquisition, project = site["acquisition"], site["project"]
    files = f"/api/acquisitions/{acquisition.id}/files"

    def ticket() -> str:
        return ticket_of(acquisition.get_file_download_url("a.dcm"))

    probes = [
        ("POST", "/api/groups", {"_id": "evil", "label": "Evil"}),
        ("PUT", f"/api/projects/{project.id}", {"label": "renamed"}),
        ("PUT", "/api/_fwlite/fault", {"status": 503, "count": None, "path_prefix": "/api"}),
        ("GET", f"{files}/b.dcm", None),
        ("GET", f"{files}/a.dcm/info", None),
        ("PUT", f"{files}/a.dcm", {"type": "evil"}),
        ("DELETE", f"{files}/a.dcm", None),
        ("POST", "/api/lookup", {"path": ["psych"]}),
    ]
    for method, path, body in probes:
        status, answer = raw(fwlite, method, path, ticket(), body)
        assert status == 401, (method, path, answer)
        assert json.loads(answer)["message"] == "ticket does not match this file"
        assert b"secret b" not in answer

    # the SDK's own client, sending the ticket and no key, is refused the same way
    with pytest.raises(flywheel.ApiException) as caught:
        fw.api_client.call_api(
            "/groups",
            "POST",
            query_params=[("ticket", ticket())],
            body={"_id": "evil2", "label": "Evil"},
            header_params={"Content-Type": "application/json"},
            response_type="InsertedId",
            auth_settings=[],
            _return_http_data_only=True,
        )
    assert caught.value.status == 401
    assert json.loads(caught.value.body)["message"] == "ticket does not match this file"

    assert sorted(g.id for g in fw.groups()) == ["psych", "unknown"]
    assert fw.get_project(project.id).label == "study01"
    assert fw.get_group("psych").id == "psych"  # no fault was set
    assert [(f.name, f.type) for f in fw.get_acquisition(acquisition.id).files] == [
        ("a.dcm", "dicom"),
        ("b.dcm", "dicom"),
        ("scan 1 é+&.dcm", "dicom"),
    ]
    assert fw.download_file_from_acquisition_as_data(acquisition.id, "a.dcm") == b"file a"


def test_a_spent_or_unknown_ticket_is_refused_even_for_its_file(
    fwlite: FwliteServer, site: dict[str, Any]
) -> None:
    acquisition = site["acquisition"]
    url = acquisition.get_file_download_url("a.dcm")
    path = urllib.parse.urlsplit(url).path
    other = f"/api/acquisitions/{acquisition.id}/files/b.dcm"
    assert raw(fwlite, "GET", other, ticket_of(url))[0] == 401  # spends it
    status, body = fetch(url)
    assert status == 401 and "already used" in json.loads(body)["message"]
    assert raw(fwlite, "GET", path, "made-up-ticket")[0] == 401


@pytest.fixture
def short_lived(tmp_path: Path) -> Iterator[FwliteServer]:
    server = FwliteServer(tmp_path / "short", extra_args=("--ticket-lifetime", "0")).start()
    try:
        yield server
    finally:
        server.stop()


def test_an_expired_ticket_is_refused_and_key_downloads_still_work(
    short_lived: FwliteServer, tmp_path: Path
) -> None:
    fw = short_lived.client()
    fw.add_group(flywheel.Group(id="psych", label="Psych"))
    acquisition = (
        fw.get_group("psych")
        .add_project(label="p")
        .add_subject(label="s")
        .add_session(label="v")
        .add_acquisition(label="a")
    )
    (tmp_path / "x.dcm").write_bytes(b"x bytes")
    acquisition.upload_file(str(tmp_path / "x.dcm"))

    status, body = fetch(acquisition.get_file_download_url("x.dcm"))
    assert status == 401 and "expired" in json.loads(body)["message"]

    # the SDK's normal download paths send the key, not a ticket
    fw.download_file_from_acquisition(acquisition.id, "x.dcm", str(tmp_path / "1"))
    acquisition.download_file("x.dcm", str(tmp_path / "2"))
    fw.get_acquisition(acquisition.id).get_file("x.dcm").download(str(tmp_path / "3"))
    fw.download_file_from_container(acquisition.id, "x.dcm", str(tmp_path / "4"))
    for name in "1234":
        assert (tmp_path / name).read_bytes() == b"x bytes"
    assert acquisition.read_file("x.dcm") == b"x bytes"
    assert fw.download_file_from_acquisition_as_data(acquisition.id, "x.dcm") == b"x bytes"
