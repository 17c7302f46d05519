"""One zip per acquisition, written file by file so memory stays flat whatever the size."""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+-]+")


def safe_label(label: str) -> str:
    """A container label as a file name (no path separators or control characters)."""
    cleaned = _UNSAFE.sub("_", label).strip(" .")
    return cleaned[:200] or "acquisition"


def zip_name(metadata: dict) -> str:
    """``<acquisition label or uid>.dicom.zip``: the same series always gets the same name,
    so a re-upload replaces the file instead of adding a second one."""
    acquisition = metadata.get("acquisition", {})
    return f"{safe_label(str(acquisition.get('label') or acquisition.get('uid') or ''))}.dicom.zip"


def zip_series(
    paths: Iterable[Path], dest: Path, folder: str | None = None, compresslevel: int = 1
) -> Path:
    """Write ``paths`` into the zip ``dest`` (via ``dest.part`` + rename, so a zip that
    exists is always whole). Members go under ``folder/`` (default: dest's stem)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    folder = folder if folder is not None else dest.name.removesuffix(".zip").removesuffix(".dicom")
    part = dest.with_name(dest.name + ".part")
    used: set[str] = set()
    with zipfile.ZipFile(
        part, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel, allowZip64=True
    ) as zf:
        for path in paths:
            path = Path(path)
            name = path.name
            stem, dot, ext = name.partition(".")
            n = 1
            while name in used:
                n += 1
                name = f"{stem}_{n}{dot}{ext}"
            used.add(name)
            zf.write(path, f"{folder}/{name}" if folder else name)
    os.replace(part, dest)
    return dest
