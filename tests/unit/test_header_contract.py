"""One list of header fields: what the agent keeps in file info is what the audit reads back.

A field added to ``fwmapping.fields.HEADER_FIELDS`` must reach the agent's upload
body and the audit's view of the same file, whether the audit reads the file info or the
file itself; and the audit's expectation must then equal the agent's own mapping.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fwagent.upload import upload_metadata
from fwmapping import MappingConfig, fields, header_info, map_dataset
from pydicom.dataset import Dataset

from gears.common.hierarchy import Acquisition, File, Project, Session, Subject
from gears.mapping_audit.audit import read_file_header
from gears.mapping_audit.headers import HeaderFetcher
from tests.support.dicomgen import SeriesSpec, make_instance

SPEC = SeriesSpec(extra={"InstitutionName": "St Elsewhere", "PatientComments": "fw://psych/x"})


def acquisition_with(file: File) -> Acquisition:
    session = Session("s", "x", None, None, Subject("j", "x"), Project("p", "x", "psych"))
    return Acquisition("a", "x", None, None, session, [file])


def audit_views(ds: Dataset, config: MappingConfig, tmp_path: Path) -> list[tuple[dict, Dataset]]:
    """(header, dataset) as the audit gets them: from the agent's file info, and from the
    file itself when a file carries no header info."""
    body = upload_metadata(map_dataset(ds, config), "a.dicom.zip", header_info(ds, config), config)
    (entry,) = body["acquisition"]["files"]
    with_info = File(entry["name"], entry["type"], entry["info"])
    path = tmp_path / "a.dcm"
    ds.save_as(path, enforce_file_format=True)
    bare = File("a.dcm", "dicom", {})
    fetch = HeaderFetcher(None)
    return [
        read_file_header(None, fetch, acquisition_with(with_info), with_info, None, config),
        read_file_header(None, fetch, acquisition_with(bare), bare, path, config),
    ]


def test_a_field_added_to_the_list_reaches_file_info_and_the_audit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ds = make_instance(SPEC, 0)
    config = MappingConfig()
    assert "InstitutionName" not in header_info(ds, config)
    monkeypatch.setattr(fields, "HEADER_FIELDS", (*fields.HEADER_FIELDS, "InstitutionName"))
    (from_info, from_file) = audit_views(ds, config, tmp_path)
    assert from_info[0]["InstitutionName"] == "St Elsewhere"  # the agent's file info
    assert from_info[1].InstitutionName == "St Elsewhere"  # what the audit's rules read
    assert from_file[0] == from_info[0]  # a downloaded header is converted the same way


@pytest.mark.parametrize(
    "config",
    [
        MappingConfig(),
        MappingConfig(routing_field="PatientComments", session_label_key="InstitutionName"),
        MappingConfig(session_label_key="SeriesDescription", timezone="Asia/Tokyo"),
    ],
    ids=["defaults", "site-fields", "timezone"],
)
def test_audit_expectation_equals_the_agents_mapping(config: MappingConfig, tmp_path: Path) -> None:
    ds = make_instance(SPEC, 0)
    for _header, audited in audit_views(ds, config, tmp_path):
        assert map_dataset(audited, config) == map_dataset(ds, config)
