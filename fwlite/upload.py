"""``POST /upload/uid|reaper|label``: place files by metadata, with scitran-core's rules.

- group: must exist (404 otherwise); project: by label in the group, created if missing.
- uid / reaper: a session is matched by uid anywhere on the site, so a session an admin
  moved is followed; acquisitions by uid within that session. New sessions go under the
  subject of the given label in the project (created if missing).
- label: subject, session and acquisition matched by label under their parent.
- Files: only files named in a ``files`` list of the metadata are stored, on the
  container that names them; a file part not named there is a 400. Same name replaces.
Everything runs under the store lock, so concurrent uploads create each container once.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from fwlite.containers import find_or_create_subject, render_file, subject_label
from fwlite.store import Store, StoreError

LEVELS = ("group", "project", "session", "acquisition")
CONTAINER_FIELDS = {
    "project": ("label", "description", "info", "tags"),
    "session": (
        "label",
        "uid",
        "operator",
        "timestamp",
        "timezone",
        "age",
        "weight",
        "info",
        "tags",
    ),
    "acquisition": ("label", "uid", "timestamp", "timezone", "info", "tags", "metadata"),
}


def _section(metadata: dict[str, Any], level: str) -> dict[str, Any] | None:
    value = metadata.get(level)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise StoreError(400, f"metadata '{level}' must be an object")
    return value


def _file_specs(section: dict[str, Any] | None, level: str) -> list[dict[str, Any]]:
    if section is None or "files" not in section:
        return []
    files = section["files"]
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and isinstance(f.get("name"), str) and f["name"] for f in files
    ):
        raise StoreError(400, f"metadata '{level}.files' must be a list of objects with a 'name'")
    return files


def _new_fields(level: str, section: dict[str, Any]) -> dict[str, Any]:
    fields = {k: section[k] for k in CONTAINER_FIELDS[level] if section.get(k) is not None}
    if "info" in fields and not isinstance(fields["info"], dict):
        raise StoreError(400, f"metadata '{level}.info' must be an object")
    return fields


def _merge(store: Store, doc: dict[str, Any], section: dict[str, Any]) -> None:
    """An existing container keeps its label and place; info and tags are merged in."""
    changed = False
    info = section.get("info")
    if isinstance(info, dict) and info:
        doc["info"] = {**doc.get("info", {}), **info}
        changed = True
    tags = section.get("tags")
    if isinstance(tags, list):
        merged = list(dict.fromkeys([*doc.get("tags", []), *tags]))
        changed = changed or merged != doc.get("tags")
        doc["tags"] = merged
    if changed:
        store.save(doc)


def validate(kind: str, metadata: Any, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Check the metadata shape before anything is written; return file specs per level."""
    if kind not in ("uid", "reaper", "label"):
        raise StoreError(404, f"unknown upload type '{kind}'")
    if not isinstance(metadata, dict):
        raise StoreError(400, "metadata must be a JSON object")
    group = _section(metadata, "group")
    if not group or not isinstance(group.get("_id"), str) or not group["_id"]:
        raise StoreError(400, "metadata needs group._id")
    project = _section(metadata, "project")
    if not project or not isinstance(project.get("label"), str) or not project["label"]:
        raise StoreError(400, "metadata needs project.label")
    session = _section(metadata, "session")
    acquisition = _section(metadata, "acquisition")
    if acquisition is not None and session is None:
        raise StoreError(400, "metadata with an acquisition needs a session")
    if session is not None:
        if kind != "label" and not session.get("uid"):
            raise StoreError(400, f"{kind} upload needs session.uid")
        if kind == "label" and not session.get("label"):
            raise StoreError(400, "label upload needs session.label")
        subject = session.get("subject") or {}
        if not isinstance(subject, dict):
            raise StoreError(400, "metadata 'session.subject' must be an object")
    if acquisition is not None:
        if kind != "label" and not acquisition.get("uid"):
            raise StoreError(400, f"{kind} upload needs acquisition.uid")
        if kind == "label" and not acquisition.get("label"):
            raise StoreError(400, "label upload needs acquisition.label")
    specs = {level: _file_specs(_section(metadata, level), level) for level in LEVELS[1:]}
    named = {spec["name"] for level_specs in specs.values() for spec in level_specs}
    unnamed = sorted(set(names) - named)
    if unnamed:
        raise StoreError(400, f"file(s) not named in the metadata: {', '.join(unnamed)}")
    if not names:
        raise StoreError(400, "no file in the upload")
    return specs


def place(
    store: Store, kind: str, metadata: Any, parts: dict[str, BinaryIO]
) -> list[dict[str, Any]]:
    """Find or create the containers the metadata names and store the files there."""
    specs = validate(kind, metadata, list(parts))
    with store.lock:
        group = store.get(metadata["group"]["_id"], "group")
        if group is None:
            raise StoreError(404, f"group '{metadata['group']['_id']}' not found")
        project_meta = metadata["project"]
        project = store.find_child("project", group["_id"], project_meta["label"])
        if project is None:
            pid = store.insert("project", group["_id"], _new_fields("project", project_meta))
            project = store.require(pid)
        else:
            _merge(store, project, project_meta)
        targets: dict[str, dict[str, Any]] = {"project": project}

        session_meta = _section(metadata, "session")
        if session_meta is not None:
            targets["session"] = _session(store, kind, project, session_meta)
        acquisition_meta = _section(metadata, "acquisition")
        if acquisition_meta is not None:
            targets["acquisition"] = _acquisition(store, kind, targets["session"], acquisition_meta)

        stored = []
        for level in ("project", "session", "acquisition"):
            for spec in specs[level]:
                source = parts.get(spec["name"])
                if source is None:
                    continue  # named but not sent: nothing to store, as in Core
                fields = {
                    k: spec.get(k) for k in ("type", "modality", "classification", "info", "tags")
                }
                container = store.require(targets[level]["_id"])
                entry = store.put_file(container, spec["name"], source, fields)
                stored.append(render_file(entry, store.lineage(container)))
        return stored


def _session(
    store: Store, kind: str, project: dict[str, Any], meta: dict[str, Any]
) -> dict[str, Any]:
    subject_meta = meta.get("subject") or {}
    if kind == "label":
        label = subject_label(subject_meta) or "unknown"
        subject_id = find_or_create_subject(store, project["_id"], {**subject_meta, "label": label})
        existing = store.find_child("session", subject_id, meta["label"])
    else:
        existing = store.find_uid("session", str(meta["uid"]))
    if existing is not None:
        _merge(store, existing, meta)
        return store.require(existing["_id"])
    if kind != "label":
        named = subject_label(subject_meta)
        if named is None:
            raise StoreError(400, f"{kind} upload of a new session needs session.subject.label")
        subject_id = find_or_create_subject(store, project["_id"], {**subject_meta, "label": named})
    fields = _new_fields("session", meta)
    fields.setdefault("label", str(meta.get("uid") or "session"))
    return store.require(store.insert("session", subject_id, fields))


def _acquisition(
    store: Store, kind: str, session: dict[str, Any], meta: dict[str, Any]
) -> dict[str, Any]:
    if kind == "label":
        existing = store.find_child("acquisition", session["_id"], meta["label"])
    else:
        existing = store.find_uid("acquisition", str(meta["uid"]), parent=session["_id"])
    if existing is not None:
        _merge(store, existing, meta)
        return store.require(existing["_id"])
    fields = _new_fields("acquisition", meta)
    fields.setdefault("label", str(meta.get("uid") or "acquisition"))
    return store.require(store.insert("acquisition", session["_id"], fields))
