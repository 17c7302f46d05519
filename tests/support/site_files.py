"""Reading back what landed on fwlite, through the real SDK."""

from __future__ import annotations

import io
import zipfile
from typing import Any


def zip_members(fw: Any, acquisition_id: str) -> list[str]:
    """Sorted member names of the acquisition's only file (a DICOM zip)."""
    acquisition = fw.get_acquisition(acquisition_id)
    (entry,) = acquisition.files
    data = fw.download_file_from_acquisition_as_data(acquisition_id, entry.name)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return sorted(n for n in zf.namelist() if not n.endswith("/"))


def only_acquisition_members(fw: Any) -> list[str]:
    """Zip members of the site's only acquisition (asserting one session, one acquisition)."""
    (session,) = fw.sessions()
    (acquisition,) = fw.get_session_acquisitions(session.id)
    return zip_members(fw, acquisition.id)
