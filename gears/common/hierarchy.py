"""Walk the acquisitions under a project, subject, session or acquisition with few API calls.

Listings are paged (``limit`` + ``after_id``) and ask for ``include_all_info`` so that file
info (where Flywheel's classifier and the agent keep the DICOM header) comes with them.
A project costs one paged listing of subjects, one of sessions and one of acquisitions
(project-wide, by filter); should the site refuse that filter, one listing per session.
Everything is copied into plain dataclasses so checks stay pure and testable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fwmapping.info import header_from_info

log = logging.getLogger(__name__)

PAGE = 1000
SCOPES = ("project", "subject", "session", "acquisition")


@dataclass
class Project:
    id: str
    label: str
    group: str


@dataclass
class Subject:
    id: str
    label: str


@dataclass
class Session:
    id: str
    label: str
    uid: str | None
    timestamp: datetime | None
    subject: Subject
    project: Project
    tags: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def fw_path(self) -> str:
        """``group/project/subject/session`` (labels), as a user finds it in Flywheel."""
        return "/".join((self.project.group, self.project.label, self.subject.label, self.label))


@dataclass
class File:
    name: str
    type: str | None
    info: dict[str, Any]
    size: int | None = None

    @property
    def is_dicom(self) -> bool:
        """A DICOM file as Flywheel types it, or named like one when untyped."""
        if self.type:
            return self.type.lower() == "dicom"
        return self.name.lower().endswith(DICOM_SUFFIXES)

    def dicom_header(self) -> dict[str, Any] | None:
        """The header Flywheel's classifier (and the agent) keep in file info, when present
        and non-empty (:func:`fwmapping.info.header_from_info`)."""
        return header_from_info(self.info)


DICOM_SUFFIXES = (".dcm", ".dicom", ".ima", ".dcm.zip", ".dicom.zip", ".zip")


@dataclass
class Acquisition:
    id: str
    label: str
    uid: str | None
    timestamp: datetime | None
    session: Session
    files: list[File] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def fw_path(self) -> str:
        return f"{self.session.fw_path}/{self.label}"


@dataclass
class Scope:
    """What a walk found: the container it started from and the acquisitions under it."""

    type: str
    id: str
    label: str
    project: Project
    sessions: list[Session]
    acquisitions: list[Acquisition]


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    value = getattr(obj, key, default)
    return default if value is None else value


def _id(obj: Any) -> str:
    return str(_get(obj, "id") or _get(obj, "_id"))


def _info(obj: Any) -> dict[str, Any]:
    info = _get(obj, "info")
    return dict(info) if isinstance(info, dict) else {}


def paged(list_fn: Callable[..., list[Any]], *args: Any, **kwargs: Any) -> Iterator[Any]:
    """Every item of a Flywheel listing, ``PAGE`` at a time (``after_id`` paging)."""
    after: str | None = None
    while True:
        extra = {"after_id": after} if after else {}
        page = list_fn(*args, limit=PAGE, **kwargs, **extra)
        yield from page
        if len(page) < PAGE:
            return
        after = _id(page[-1])


def to_file(raw: Any) -> File:
    return File(
        name=str(_get(raw, "name", "")),
        type=_get(raw, "type"),
        info=_info(raw),
        size=_get(raw, "size"),
    )


def to_project(raw: Any) -> Project:
    group = _get(raw, "group") or _get(_get(raw, "parents"), "group", "")
    return Project(id=_id(raw), label=str(_get(raw, "label", "")), group=str(group))


def to_subject(raw: Any) -> Subject:
    return Subject(id=_id(raw), label=str(_get(raw, "label") or _get(raw, "code") or ""))


def to_session(raw: Any, subject: Subject, project: Project) -> Session:
    return Session(
        id=_id(raw),
        label=str(_get(raw, "label", "")),
        uid=_get(raw, "uid"),
        timestamp=_get(raw, "timestamp"),
        subject=subject,
        project=project,
        tags=list(_get(raw, "tags", []) or []),
        info=_info(raw),
    )


def to_acquisition(raw: Any, session: Session) -> Acquisition:
    return Acquisition(
        id=_id(raw),
        label=str(_get(raw, "label", "")),
        uid=_get(raw, "uid"),
        timestamp=_get(raw, "timestamp"),
        session=session,
        files=[to_file(item) for item in _get(raw, "files", []) or []],
        tags=list(_get(raw, "tags", []) or []),
        info=_info(raw),
    )


class Walker:
    """Collects the acquisitions under one container; caches parents it already fetched."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._projects: dict[str, Project] = {}
        self._subjects: dict[str, Subject] = {}

    def project(self, project_id: str) -> Project:
        if project_id not in self._projects:
            self._projects[project_id] = to_project(self.client.get_project(project_id))
        return self._projects[project_id]

    def subject(self, subject_id: str) -> Subject:
        if subject_id not in self._subjects:
            self._subjects[subject_id] = to_subject(self.client.get_subject(subject_id))
        return self._subjects[subject_id]

    def session_from(self, raw: Any) -> Session:
        parents = _get(raw, "parents")
        project = self.project(str(_get(parents, "project") or _get(raw, "project")))
        subject_id = str(_get(parents, "subject") or _id(_get(raw, "subject")))
        return to_session(raw, self.subject(subject_id), project)

    def acquisitions_of(self, sessions: list[Session]) -> list[Acquisition]:
        """One listing per session (works on any site)."""
        found: list[Acquisition] = []
        for session in sessions:
            for raw in paged(
                self.client.get_session_acquisitions, session.id, include_all_info=True
            ):
                found.append(to_acquisition(raw, session))
        return found

    def project_acquisitions(self, project: Project, sessions: list[Session]) -> list[Acquisition]:
        """All acquisitions of a project in one paged listing; per session if refused."""
        by_id = {session.id: session for session in sessions}
        try:
            raws = list(
                paged(
                    self.client.get_all_acquisitions,
                    filter=f"parents.project={project.id}",
                    include_all_info=True,
                )
            )
        except Exception as exc:  # an older site may not filter acquisitions by parents
            if getattr(exc, "status", None) not in (400, 404, 405, 422, 501):
                raise
            log.info("project-wide acquisition listing refused (%s); listing per session", exc)
            return self.acquisitions_of(sessions)
        found = []
        for raw in raws:
            session = by_id.get(str(_get(_get(raw, "parents"), "session") or _get(raw, "session")))
            if session is not None:  # a site that ignored the filter returns more
                found.append(to_acquisition(raw, session))
        return found

    def walk(self, container_type: str, container_id: str) -> Scope:
        """The acquisitions under a project, subject, session or acquisition."""
        client = self.client
        if container_type == "project":
            project = self.project(container_id)
            for raw in paged(client.get_project_subjects, container_id):
                subject = to_subject(raw)
                self._subjects[subject.id] = subject
            sessions = [
                self.session_from(raw)
                for raw in paged(client.get_project_sessions, container_id, include_all_info=True)
            ]
            acquisitions = self.project_acquisitions(project, sessions)
            return Scope("project", container_id, project.label, project, sessions, acquisitions)
        if container_type == "subject":
            raw_subject = client.get_subject(container_id)
            subject = to_subject(raw_subject)
            self._subjects[subject.id] = subject
            project = self.project(str(_get(_get(raw_subject, "parents"), "project")))
            sessions = [
                self.session_from(raw)
                for raw in paged(client.get_subject_sessions, container_id, include_all_info=True)
            ]
            return Scope(
                "subject",
                container_id,
                subject.label,
                project,
                sessions,
                self.acquisitions_of(sessions),
            )
        if container_type == "session":
            session = self.session_from(client.get_session(container_id))
            return Scope(
                "session",
                container_id,
                session.label,
                session.project,
                [session],
                self.acquisitions_of([session]),
            )
        if container_type == "acquisition":
            raw = client.get_acquisition(container_id)
            session = self.session_from(
                client.get_session(str(_get(_get(raw, "parents"), "session")))
            )
            acquisition = to_acquisition(raw, session)
            return Scope(
                "acquisition",
                container_id,
                acquisition.label,
                session.project,
                [session],
                [acquisition],
            )
        raise ValueError(f"cannot walk a {container_type}: expected one of {', '.join(SCOPES)}")


def walk(client: Any, container_type: str, container_id: str) -> Scope:
    """Shortcut for ``Walker(client).walk(...)``."""
    return Walker(client).walk(container_type, container_id)
