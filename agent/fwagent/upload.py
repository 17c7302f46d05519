"""Upload one acquisition zip to Flywheel through flywheel-sdk's ``/upload/uid``.

``/upload/uid`` finds or creates group/project/subject/session/acquisition by uid and label,
and a file with the same name replaces the earlier one: uploading the same series twice
(after a kill, a retry, or a late instance) never duplicates containers or files.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pydicom
from fwmapping import NotDicomError, read_first_header, resolve_placement
from fwmapping.site import SdkSite
from pydicom.dataset import Dataset

from .package import zip_name

# header keywords copied into file.info.header.dicom, as Flywheel's classifier would
HEADER_KEYWORDS = (
    "PatientID",
    "PatientName",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "StudyDescription",
    "SeriesDescription",
    "StudyDate",
    "StudyTime",
    "SeriesDate",
    "SeriesTime",
    "AcquisitionDate",
    "AcquisitionTime",
    "AcquisitionNumber",
    "ImageType",
    "Manufacturer",
    "OperatorsName",
    "SeriesNumber",
    "ProtocolName",
    "Modality",
    "SOPClassUID",
    "PatientComments",
)


def header_info(ds: Dataset, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Plain JSON values of the header keywords that are present, plus ``extra`` ones (the
    site's routing, policy and session-label fields, so the audit and the mover read the
    same values the agent did)."""
    info: dict[str, Any] = {}
    for keyword in dict.fromkeys((*HEADER_KEYWORDS, *extra)):
        if keyword not in ds:
            continue
        value = ds.get(keyword)
        if isinstance(value, pydicom.multival.MultiValue | list | tuple):
            info[keyword] = [_plain(v) for v in value]
        else:
            info[keyword] = _plain(value)
    return info


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1", "replace")
    if isinstance(value, pydicom.valuerep.IS):
        return int(value)
    if isinstance(value, pydicom.valuerep.DSfloat | pydicom.valuerep.DSdecimal):
        return float(value)
    return str(value)


def upload_metadata(metadata: dict[str, Any], file_name: str, header: dict[str, Any]) -> dict:
    """The uid-upload body: routing moved into session.info.fwagent.routing and the zip
    named in acquisition.files with type dicom and its header info."""
    body = copy.deepcopy(metadata)
    routing = body.pop("routing", None)
    session = body.setdefault("session", {})
    if routing is not None:
        # per series, always; on the session only when this upload decided where it went
        # (a followed session keeps the routing that placed it, and any mover history)
        acq_info = body.setdefault("acquisition", {}).setdefault("info", {})
        acq_info.setdefault("fwagent", {})["routing"] = routing
        if routing.get("resolved") != "followed":
            session.setdefault("info", {}).setdefault("fwagent", {})["routing"] = routing
    if session.get("timestamp") is None:
        session.pop("timestamp", None)
    acquisition = body.setdefault("acquisition", {})
    if acquisition.get("timestamp") is None:
        acquisition.pop("timestamp", None)
    acquisition["files"] = [
        {"name": file_name, "type": "dicom", "info": {"header": {"dicom": header}}}
    ]
    return body


def resolve(client: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    """Placement against the site (missing group/project, moved sessions), unless done."""
    if metadata.get("routing", {}).get("resolved"):
        return metadata
    return resolve_placement(metadata, SdkSite(client))


def upload_acquisition(
    client: Any,
    metadata: dict[str, Any],
    zip_path: Path,
    header: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Upload ``zip_path`` as ``<acquisition label>.dicom.zip``; return the metadata used
    (resolved against the site). Raises the SDK's exception on failure."""
    placed = resolve(client, metadata)
    if header is None:
        try:
            header = header_info(read_first_header(zip_path))
        except NotDicomError:
            header = {}
    name = zip_name(placed)
    body = upload_metadata(placed, name, header)
    from flywheel.file_spec import FileSpec

    size = Path(zip_path).stat().st_size
    with open(zip_path, "rb") as fh:
        spec = FileSpec(name, contents=fh, content_type="application/zip", size=size)
        # the raw answer: Flywheel versions differ in what they return; a non-2xx raises
        client.upload_by_uid(files=[spec], metadata=json.dumps(body), _preload_content=False)
    return placed
