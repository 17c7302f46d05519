"""``fwlite tree``: the hierarchy with file counts, so a user sees where data landed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fwlite.store import CHILD_TYPE, Store


def tree_lines(store: Store) -> Iterator[str]:
    """One indented line per container, groups first: `label  [type id] files=N`."""

    def walk(doc: dict[str, Any], depth: int) -> Iterator[str]:
        ctype = doc["container_type"]
        label = doc.get("label") or doc["_id"]
        files = store.file_count(doc["_id"])
        suffix = f"  ({files} file{'s' if files != 1 else ''})" if ctype != "group" else ""
        ident = doc["_id"] if ctype == "group" else doc["_id"][-6:]
        yield f"{'  ' * depth}{ctype} {label} [{ident}]{suffix}"
        child = CHILD_TYPE.get(ctype)
        if child:
            for sub in store.children(child, doc["_id"]):
                yield from walk(sub, depth + 1)

    for group in store.children("group", None):
        yield from walk(group, 0)


def tree_from_client(client: Any) -> Iterator[str]:
    """The same listing through flywheel-sdk, against any running site."""

    def count(container: Any) -> str:
        files = len(container.get("files") or [])
        return f"  ({files} file{'s' if files != 1 else ''})"

    for group in client.groups.iter():
        yield f"group {group.label or group.id} [{group.id}]"
        for project in group.projects.iter():
            yield f"  project {project.label} [{project.id[-6:]}]{count(project.reload())}"
            for subject in project.subjects.iter():
                yield f"    subject {subject.label} [{subject.id[-6:]}]{count(subject.reload())}"
                for session in subject.sessions.iter():
                    yield f"      session {session.label} [{session.id[-6:]}]{count(session.reload())}"
                    for acq in session.acquisitions.iter():
                        yield f"        acquisition {acq.label} [{acq.id[-6:]}]{count(acq.reload())}"


def print_tree(data_dir: Path) -> int:
    store = Store(data_dir)
    try:
        for line in tree_lines(store):
            print(line)
    finally:
        store.close()
    return 0
