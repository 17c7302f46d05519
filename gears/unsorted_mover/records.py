"""Turn the sessions found on the site into planning records.

The routing value comes from what the agent kept at upload (session
``info.fwagent.routing``); for data uploaded otherwise, from the DICOM header of the
session's first acquisition: the header Flywheel's classifier keeps in the file's info,
else the file itself (downloaded, zip or plain DICOM, header only). The header field read
is the gear config's ``routing_field`` when set, else the one the agent recorded in the
session's ``info.fwagent.settings``, else PatientID. A recorded routing value is what the
agent actually placed the session by, so it is used as recorded whatever the gear config.
"""

from __future__ import annotations

import logging
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fwmapping import NotDicomError, header_text, read_first_header, text
from fwmapping.info import FROM_AGENT, choose_settings, recorded_routing, recorded_settings

from gears.common.hierarchy import Acquisition, Session
from gears.unsorted_mover.plan import Place, SessionRecord

log = logging.getLogger(__name__)

FROM_INFO = "session info"
FROM_HEADER = "DICOM header"


def place_of(session: Session) -> Place:
    return Place(session.project.group, session.project.label, session.subject.label, session.label)


def _first(acquisitions: Iterable[Acquisition]) -> list[Acquisition]:
    return sorted(acquisitions, key=lambda a: (a.timestamp is None, str(a.timestamp), a.label))


def header_value(acquisitions: list[Acquisition], field: str) -> str | None:
    """The field from the classifier's header in file info of the first acquisition."""
    for acquisition in _first(acquisitions):
        for file in (f for f in acquisition.files if f.is_dicom):
            dicom = file.dicom_header()
            if dicom is not None:
                return header_text(dicom, field)
    return None


def downloaded_value(client: Any, acquisitions: list[Acquisition], field: str) -> str | None:
    """Read the field from the first acquisition's DICOM file itself (header only)."""
    for acquisition in _first(acquisitions):
        for file in (f for f in acquisition.files if f.is_dicom):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "file"
                try:
                    client.download_file_from_acquisition(acquisition.id, file.name, str(path))
                    return text(read_first_header(path), field)
                except (NotDicomError, zipfile.BadZipFile, OSError) as exc:
                    log.warning("cannot read %s of %s: %s", file.name, acquisition.fw_path, exc)
    return None


def to_record(
    session: Session,
    acquisitions: list[Acquisition],
    gear_field: str | None = None,
    client: Any = None,
    in_scope: bool = True,
) -> SessionRecord:
    """A planning record; reads the header only when the upload left no routing record."""
    chosen = choose_settings({"routing_field": gear_field}, recorded_settings(session.info))
    field = chosen.config.routing_field
    field_source = chosen.sources["routing_field"]
    kept = recorded_routing(session.info)
    if kept is not None:
        value = kept.get("value")
        return SessionRecord(
            id=session.id,
            place=place_of(session),
            uid=session.uid,
            routing_value=None if value is None else str(value),
            routing_field=str(kept.get("field") or field),
            routing_source=FROM_INFO,
            field_source=FROM_AGENT if kept.get("field") else field_source,
            in_scope=in_scope,
        )
    value = header_value(acquisitions, field)
    if value is None and client is not None:
        value = downloaded_value(client, acquisitions, field)
    return SessionRecord(
        id=session.id,
        place=place_of(session),
        uid=session.uid,
        routing_value=value,
        routing_field=field,
        routing_source=FROM_HEADER if value is not None else "",
        field_source=field_source,
        in_scope=in_scope,
    )
