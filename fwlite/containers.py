"""Container semantics on top of the store: render as Core does, add, update and move."""

from __future__ import annotations

import re
from typing import Any

from fwlite.store import TYPES, Store, StoreError

GROUP_ID = re.compile(r"^[0-9a-z][0-9a-z.@_-]{0,62}[0-9a-z]$")
# Fields a client may never set directly (hierarchy is changed through moves only).
RESERVED = {"_id", "container_type", "parents", "files", "created", "modified", "_parent"}
SUBJECT_FIELDS = (
    "label",
    "code",
    "firstname",
    "lastname",
    "sex",
    "type",
    "race",
    "ethnicity",
    "species",
    "strain",
    "cohort",
)


def render_file(entry: dict[str, Any], lineage: dict[str, str | None]) -> dict[str, Any]:
    out = dict(entry)
    out["container_type"] = "file"
    out["parents"] = {**{t: lineage.get(t) for t in TYPES}, "analysis": None}
    out["info_exists"] = bool(entry.get("info"))
    return out


def render(store: Store, doc: dict[str, Any], files: bool = True) -> dict[str, Any]:
    """A container as Core answers it: container_type, parents, parent ids, files."""
    ctype = doc["container_type"]
    lineage = store.lineage(doc)
    out = {k: v for k, v in doc.items() if k != "_parent"}
    above = TYPES[: TYPES.index(ctype)]
    out["parents"] = {t: (lineage[t] if t in above else None) for t in TYPES}
    out["parents"]["analysis"] = None
    out["info_exists"] = bool(doc.get("info"))
    if ctype == "project":
        out["group"] = lineage["group"]
    elif ctype == "subject":
        out["project"] = lineage["project"]
        out.setdefault("code", doc.get("label"))
    elif ctype == "session":
        out["group"] = lineage["group"]
        out["project"] = lineage["project"]
        subject = store.get(lineage["subject"] or "", "subject")
        out["subject"] = render(store, subject, files=False) if subject else None
    elif ctype == "acquisition":
        out["session"] = lineage["session"]
    if files and ctype != "group":
        out["files"] = [render_file(f, lineage) for f in store.files_of(doc["_id"])]
    return out


def _ref(value: Any, what: str) -> str:
    """An id given as a string or as {"_id": ...}."""
    if isinstance(value, dict):
        value = value.get("_id") or value.get("id")
    if not isinstance(value, str) or not value:
        raise StoreError(400, f"'{what}' must be an id")
    return value


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in RESERVED}


def subject_label(spec: dict[str, Any]) -> str | None:
    label = spec.get("label") or spec.get("code")
    return str(label) if label not in (None, "") else None


def find_or_create_subject(store: Store, project_id: str, spec: dict[str, Any]) -> str:
    """The subject named by spec in the project: by _id, else by label (created if new)."""
    if spec.get("_id"):
        subject = store.require(spec["_id"], "subject")
        if subject["_parent"] != project_id:
            raise StoreError(400, f"subject '{spec['_id']}' is not in project '{project_id}'")
        return str(subject["_id"])
    label = subject_label(spec)
    if label is None:
        raise StoreError(400, "a subject needs a label (or code)")
    found = store.find_child("subject", project_id, label)
    if found:
        return str(found["_id"])
    fields = {k: spec[k] for k in SUBJECT_FIELDS if spec.get(k) is not None}
    fields["label"] = label
    fields.setdefault("code", label)
    if isinstance(spec.get("info"), dict):
        fields["info"] = spec["info"]
    return store.insert("subject", project_id, fields)


def add_container(store: Store, ctype: str, body: dict[str, Any]) -> str:
    """POST /{type}s: create and return the new id (Core's InsertedId).

    ``body`` was checked by fwlite.models.ContainerBody (an object; info/tags typed).
    """
    with store.lock:
        if ctype == "group":
            gid = body.get("_id") or body.get("id")
            if not isinstance(gid, str) or not GROUP_ID.match(gid):
                raise StoreError(400, "group '_id' must be 2-64 of [0-9a-z.@_-]")
            return store.insert(
                "group", None, {"label": body.get("label") or gid, **_fields(body)}, cid=gid
            )
        if ctype == "project":
            group = store.require(_ref(body.get("group"), "group"), "group")
            label = body.get("label")
            if not label:
                raise StoreError(400, "a project needs a label")
            if store.find_child("project", group["_id"], label):
                raise StoreError(409, f"project '{label}' already exists in group '{group['_id']}'")
            fields = _fields(body)
            fields.pop("group", None)
            return store.insert("project", group["_id"], fields)
        if ctype == "subject":
            project = store.require(_ref(body.get("project"), "project"), "project")
            label = subject_label(body)
            if label is None:
                raise StoreError(400, "a subject needs a label (or code)")
            if store.find_child("subject", project["_id"], label):
                raise StoreError(
                    409, f"subject '{label}' already exists in project '{project['_id']}'"
                )
            fields = _fields(body)
            fields.pop("project", None)
            fields["label"] = label
            fields.setdefault("code", label)
            return store.insert("subject", project["_id"], fields)
        if ctype == "session":
            subject_id = _session_subject(store, body)
            fields = _fields(body)
            for key in ("project", "subject", "group"):
                fields.pop(key, None)
            return store.insert("session", subject_id, fields)
        if ctype == "acquisition":
            session = store.require(_ref(body.get("session"), "session"), "session")
            fields = _fields(body)
            fields.pop("session", None)
            return store.insert("acquisition", session["_id"], fields)
    raise StoreError(400, f"cannot add a {ctype}")


def _session_subject(store: Store, body: dict[str, Any]) -> str:
    subject = body.get("subject")
    project_id = body.get("project")
    if isinstance(subject, str):
        return str(store.require(subject, "subject")["_id"])
    if isinstance(subject, dict) and subject.get("_id") and not project_id:
        return str(store.require(subject["_id"], "subject")["_id"])
    if not project_id:
        raise StoreError(400, "a session needs a 'project' (and a subject)")
    project = store.require(_ref(project_id, "project"), "project")
    if not isinstance(subject, dict):
        raise StoreError(400, "a session needs a 'subject' ({'label': ...} or an id)")
    return find_or_create_subject(store, project["_id"], subject)


def update_container(store: Store, ctype: str | None, cid: str, body: dict[str, Any]) -> None:
    """PUT /{type}s/{id}: set fields; moves by group=/project=/subject=/session=."""
    with store.lock:
        doc = store.require(cid, ctype)
        ctype = doc["container_type"]
        fields = _fields(body)
        move_key = {"project": "group", "subject": "project", "acquisition": "session"}.get(ctype)
        if ctype == "session":
            _move_session(store, doc, fields.pop("project", None), fields.pop("subject", None))
        elif move_key and move_key in fields:
            target = store.require(_ref(fields.pop(move_key), move_key), move_key)
            doc["_parent"] = target["_id"]
        for key in ("group", "project", "session"):
            if ctype != "group":
                fields.pop(key, None)
        if "info" in fields:
            doc["info"] = {**doc.get("info", {}), **fields.pop("info")}
        renamed = ctype == "project" and fields.get("label", doc.get("label")) != doc.get("label")
        if renamed and store.find_child("project", doc["_parent"], fields["label"]):
            raise StoreError(409, f"project '{fields['label']}' already exists in the group")
        if ctype == "subject" and "code" in fields and "label" not in fields:
            fields["label"] = fields["code"]
        doc.update(fields)
        store.save(doc)


def _move_session(store: Store, doc: dict[str, Any], project: Any, subject: Any) -> None:
    """Move a session: to a subject (by id or label spec) and/or another project.

    Moving to another project without a subject keeps the subject's label: the session
    joins the subject of that label there, created (as a copy) when missing, as Core does.
    """
    if project is None and subject is None:
        return
    current_subject = store.require(doc["_parent"], "subject")
    if project is not None:
        project_id = str(store.require(_ref(project, "project"), "project")["_id"])
    elif isinstance(subject, str) or (isinstance(subject, dict) and subject.get("_id")):
        target = store.require(_ref(subject, "subject"), "subject")
        doc["_parent"] = target["_id"]
        store.save(doc)
        return
    else:
        project_id = current_subject["_parent"]
    if subject is None:
        spec = {k: current_subject.get(k) for k in SUBJECT_FIELDS}
        spec["info"] = current_subject.get("info")
    elif isinstance(subject, str):
        spec = {"_id": subject}
    elif isinstance(subject, dict):
        spec = subject
    else:
        raise StoreError(400, "'subject' must be an id or an object")
    doc["_parent"] = find_or_create_subject(store, project_id, spec)
