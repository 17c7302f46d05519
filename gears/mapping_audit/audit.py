"""Run the checks over a walked scope: headers -> fwmapping -> findings."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwmapping import (
    MappingConfig,
    NotDicomError,
    dataset_from_header,
    header_info,
    map_dataset,
    parse_routing,
    read_first_header,
    resolve_placement,
)
from fwmapping.info import ChosenSettings, choose_settings, header_from_info, recorded_settings
from fwmapping.site import SdkSite, quote_filter_value
from pydicom.dataset import Dataset

from gears.common.hierarchy import Acquisition, File, Scope, Session, Walker

from .checks import Audited, Finding, check_item, check_splits, dedupe, redact, unreadable
from .headers import HeaderFetcher
from .phi import routing_phi

log = logging.getLogger(__name__)


@dataclass
class AuditResult:
    findings: list[Finding] = field(default_factory=list)
    acquisitions: int = 0  # DICOM acquisitions audited
    files: int = 0  # DICOM files audited
    skipped: int = 0  # acquisitions without a DICOM file
    downloads: int = 0  # files (or zip members) downloaded for want of header info
    settings: Counter[str] = field(default_factory=Counter)  # settings used -> acquisitions


def settings_for(gear_config: Mapping[str, Any], acquisition: Acquisition) -> ChosenSettings:
    """Gear config, else the settings the agent recorded when it uploaded this acquisition
    (or its session), else the defaults."""
    recorded = recorded_settings(acquisition.info) or recorded_settings(acquisition.session.info)
    return choose_settings(gear_config, recorded)


def read_file_header(
    client: Any,
    fetch: HeaderFetcher,
    acquisition: Acquisition,
    file: File,
    local: Path | None,
    config: MappingConfig | None = None,
) -> tuple[dict[str, Any], Dataset]:
    """Header dict and the dataset the rules read: file info, else the local input, else the
    file on the site, converted to what the agent would have kept in file info."""
    header = file.dicom_header()
    if header is None and not file.info and local is None:
        # listings may leave info out: ask for this file's info before downloading
        raw = client.get_acquisition_file_info(acquisition.id, file.name)
        info = raw.get("info") if raw is not None else None
        header = header_from_info(info if isinstance(info, Mapping) else None)
    if header is None:
        ds = read_first_header(local) if local else fetch(acquisition.id, file.name)
        header = header_info(ds, config)
    return header, dataset_from_header(header)


def elsewhere(
    client: Any, walker: Walker, items: list[Audited]
) -> tuple[dict[str, list[Session]], dict[str, list[Acquisition]]]:
    """Sessions / acquisitions elsewhere on the site with the studies / series in ``items``."""
    sessions: dict[str, list[Session]] = {}
    acquisitions: dict[str, list[Acquisition]] = {}
    for study in {
        item.expected["session"]["uid"] for item in items if item.expected["session"]["uid"]
    }:
        raws = client.get_all_sessions(filter=f"uid={quote_filter_value(study)}")
        sessions[study] = [walker.session_from(raw) for raw in raws]
    for series in {
        item.expected["acquisition"]["uid"] for item in items if item.expected["acquisition"]["uid"]
    }:
        found = []
        for raw in client.get_all_acquisitions(filter=f"uid={quote_filter_value(series)}"):
            parent = raw.parents.session if raw.parents else raw.session
            found.append(
                Acquisition(
                    raw.id,
                    raw.label or "",
                    raw.uid,
                    raw.timestamp,
                    walker.session_from(client.get_session(parent)),
                )
            )
        acquisitions[series] = found
    return sessions, acquisitions


def audit(
    client: Any,
    walker: Walker,
    scope: Scope,
    gear_config: Mapping[str, Any],
    local_files: Mapping[tuple[str, str], Path] | None = None,
    look_elsewhere: bool = False,
) -> AuditResult:
    """Audit every DICOM file under ``scope``.

    ``gear_config`` holds the settings the admin set (routing_field, session_label_key,
    timezone); the rest come from what the agent recorded per acquisition (see
    :func:`settings_for`). ``local_files`` maps (acquisition id, file name) to an already downloaded copy (the
    gear's file input). ``look_elsewhere`` also searches the whole site for the same study
    and series uids, for runs that see less than a project.
    """
    site = SdkSite(client)
    fetch = HeaderFetcher(client)
    result = AuditResult()
    items: list[Audited] = []
    findings: list[Finding] = []
    for acquisition in scope.acquisitions:
        dicom_files = [f for f in acquisition.files if f.is_dicom]
        if not dicom_files:
            result.skipped += 1
            continue
        result.acquisitions += 1
        settings = settings_for(gear_config, acquisition)
        result.settings[settings.describe()] += 1
        config = settings.config
        for file in dicom_files:
            result.files += 1
            local = (local_files or {}).get((acquisition.id, file.name))
            try:
                header, ds = read_file_header(client, fetch, acquisition, file, local, config)
            except NotDicomError as exc:
                findings.append(unreadable(acquisition, file, str(exc)))
                continue
            if not header.get("StudyInstanceUID") and not header.get("SeriesInstanceUID"):
                findings.append(unreadable(acquisition, file, "header without Study/Series UID"))
                continue
            # where the rules alone put the data: not following the session to wherever it
            # is now (as the agent does), else a misplacement could never show
            expected = resolve_placement(map_dataset(ds, config), site, follow_sessions=False)
            item = Audited(acquisition, file, header, expected)
            items.append(item)
            findings.extend(check_item(item))
    others: tuple[dict[str, list[Session]], dict[str, list[Acquisition]]] = ({}, {})
    if look_elsewhere and items:
        try:
            others = elsewhere(client, walker, items)
        except Exception as exc:  # noqa: BLE001 - the in-scope checks still stand
            log.warning("could not search the site for split studies/series: %s", exc)
    findings.extend(check_splits(items, *others))
    secrets = set()
    for item in items:
        routing = item.expected.get("routing", {})
        for hit in routing_phi(routing.get("value"), item.header, str(routing.get("field"))):
            secrets.add(getattr(parse_routing(routing.get("value")), hit.part) or "")
    result.findings = redact(dedupe(findings), secrets)
    result.downloads = fetch.downloads
    return result
