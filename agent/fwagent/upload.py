"""Upload one acquisition zip to Flywheel through flywheel-sdk's ``/upload/uid``.

``/upload/uid`` finds or creates group/project/subject/session/acquisition by uid and label,
and a file with the same name replaces the earlier one: uploading the same series twice
(after a kill, a retry, or a late instance) never duplicates containers or files. A late
instance re-uploads its whole series: the earlier zip's members come back from the site
(:func:`find_acquisition`, :func:`earlier_members`).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

from fwmapping import (
    MappingConfig,
    NotDicomError,
    header_info,
    read_first_header,
    resolve_placement,
)
from fwmapping.flywheel_errors import http_status
from fwmapping.info import AGENT, agent_info, file_info, settings_record
from fwmapping.paths import inside, safe_component
from fwmapping.site import SdkSite, quote_filter_value

from .package import zip_name


def upload_metadata(
    metadata: dict[str, Any],
    file_name: str,
    header: dict[str, Any],
    config: MappingConfig | None = None,
) -> dict:
    """The uid-upload body: the routing (and, given ``config``, the mapping settings) moved
    into ``info.fwagent`` of the acquisition and the session, and the zip named in
    acquisition.files with type dicom and its header info."""
    body = copy.deepcopy(metadata)
    routing = body.pop("routing", None)
    session = body.setdefault("session", {})
    acquisition = body.setdefault("acquisition", {})
    if routing is not None:
        record = agent_info(routing, settings_record(config) if config else None)[AGENT]
        # per series, always; on the session only when this upload decided where it went
        # (a followed session keeps the record that placed it, and any mover history)
        acquisition.setdefault("info", {}).setdefault(AGENT, {}).update(record)
        if routing.get("resolved") != "followed":
            session.setdefault("info", {}).setdefault(AGENT, {}).update(copy.deepcopy(record))
    if session.get("timestamp") is None:
        session.pop("timestamp", None)
    if acquisition.get("timestamp") is None:
        acquisition.pop("timestamp", None)
    acquisition["files"] = [{"name": file_name, "type": "dicom", "info": file_info(header)}]
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
    config: MappingConfig | None = None,
) -> dict[str, Any]:
    """Upload ``zip_path`` as ``<acquisition label>.dicom.zip``; return the metadata used
    (resolved against the site). ``header`` is the file info header (read from the zip
    when not given); ``config`` the settings the metadata was mapped with, recorded in
    ``info.fwagent.settings``. Raises the SDK's exception on failure."""
    placed = resolve(client, metadata)
    if header is None:
        try:
            header = header_info(read_first_header(zip_path), config)
        except NotDicomError:
            header = {}
    name = zip_name(placed)
    body = upload_metadata(placed, name, header, config)
    from flywheel.file_spec import FileSpec

    size = Path(zip_path).stat().st_size
    with open(zip_path, "rb") as fh:
        spec = FileSpec(name, contents=fh, content_type="application/zip", size=size)
        # the raw answer: Flywheel versions differ in what they return; a non-2xx raises
        client.upload_by_uid(files=[spec], metadata=json.dumps(body), _preload_content=False)
    return placed


def make_client(api_key: str) -> Any:
    import flywheel

    return flywheel.Client(api_key)


def where(placed: dict[str, Any]) -> str:
    """``group/project/subject/session`` of a placement, for logs and the status page."""
    session = placed.get("session", {})
    subject = session.get("subject", {}).get("label", "")
    return f"{placed['group']['_id']}/{placed['project']['label']}/{subject}/{session.get('label', '')}"


def acquisition_id(client: Any, placed: dict[str, Any]) -> str | None:
    """The id of the acquisition an upload of ``placed`` went to (found through its
    session), None if the site does not show it."""
    acq_uid = str(placed["acquisition"]["uid"])
    session = client.sessions.find_first(f"uid={quote_filter_value(str(placed['session']['uid']))}")
    for acquisition in client.get_session_acquisitions(session.id) if session else []:
        if acquisition.uid == acq_uid:
            return str(acquisition.id)
    return None


def find_acquisition(client: Any, acq_uid: str, known_id: str | None = None) -> Any:
    """The acquisition with ``acq_uid``: by ``known_id`` when one was recorded (and still
    exists), else by its uid; None if there is none."""
    if known_id:
        try:
            return client.get_acquisition(known_id)
        except Exception as exc:
            if http_status(exc) != 404:
                raise
    found = client.acquisitions.find_first(f"uid={quote_filter_value(acq_uid)}")
    return client.get_acquisition(found.id) if found is not None else None


def earlier_members(
    client: Any, acquisition: Any, name: str, work: Path, have: set[str]
) -> list[Path]:
    """The members of the zip ``name`` uploaded before to ``acquisition``, downloaded into
    ``work``, except those in ``have`` (names of newer copies; updated in place)."""
    if not any(f.name == name for f in acquisition.files or []):
        return []
    earlier = inside(work, "earlier.zip")
    client.download_file_from_acquisition(acquisition.id, name, str(earlier))
    out = inside(work, "earlier")
    kept: list[Path] = []
    with zipfile.ZipFile(earlier) as zf:
        for info in zf.infolist():
            base = safe_component(os.path.basename(info.filename))
            if info.is_dir() or base in have:
                continue
            target = inside(out, base)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            kept.append(target)
            have.add(base)
    return kept
