"""fwlite through the real flywheel-sdk: the basics every other part relies on."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import flywheel
import pytest

from tests.support.fwlite_server import FwliteServer


def test_hierarchy_files_info_and_lookup(fw: Any, tmp_path: Path) -> None:
    assert fw.get_config().get("signed_url") is False
    assert fw.get_group("unknown").label == "Unknown"
    fw.add_group(flywheel.Group(id="psych", label="Psych"))
    project = fw.get_group("psych").add_project(label="study01")
    subject = project.add_subject(label="s01", firstname="John", lastname="Doe")
    session = subject.add_session(label="ses1", uid="1.2.3")
    acquisition = session.add_acquisition(label="Series 002", uid="4.5.6")

    assert acquisition.container_type == "acquisition"
    assert acquisition.parents.group == "psych"
    assert acquisition.parents.project == project.id
    assert acquisition.parents.subject == subject.id
    assert acquisition.parents.session == session.id
    assert fw.get(session.id).subject.label == "s01"

    source = tmp_path / "notes.txt"
    source.write_bytes(b"hello fwlite")
    fw.upload_file_to_container(acquisition.id, str(source))
    target = tmp_path / "back.txt"
    fw.download_file_from_acquisition(acquisition.id, "notes.txt", str(target))
    assert target.read_bytes() == b"hello fwlite"

    acquisition.update_info({"a": 1, "b": {"c": 2}})
    acquisition.add_tag("checked")
    fresh = fw.lookup("psych/study01/s01/ses1/Series 002")
    assert fresh.id == acquisition.id
    assert fresh.info == {"a": 1, "b": {"c": 2}}
    assert fresh.tags == ["checked"]
    assert [f.name for f in fresh.files] == ["notes.txt"]
    assert fresh.files[0].size == len(b"hello fwlite")

    url = acquisition.get_file_download_url("notes.txt")
    with urllib.request.urlopen(url, timeout=10) as answer:  # the ticket stands in for the key
        assert answer.read() == b"hello fwlite"
    acquisition.update_file_info("notes.txt", {"header": {"dicom": {"PatientID": "x"}}})
    assert fw.get_acquisition(acquisition.id).get_file("notes.txt").info["header"]["dicom"] == {
        "PatientID": "x"
    }


def test_wrong_key_is_refused_with_401(fwlite: FwliteServer) -> None:
    with pytest.raises(flywheel.ApiException) as caught:
        flywheel.Client(f"127.0.0.1:{fwlite.port}:__force_insecure:wrong-key")
    assert caught.value.status == 401
