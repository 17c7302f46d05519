"""Build a gear's /flywheel/v0 in a temporary directory, in Flywheel's config.json layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def make_gear_root(
    root: Path,
    *,
    config: dict[str, Any],
    destination: dict[str, str],
    api_key: str | None = None,
    files: dict[str, tuple[Path, dict[str, Any]]] | None = None,
) -> Path:
    """Write root/config.json; copy each file input to root/input/<name>/.

    ``files`` maps input name -> (local file, extra keys for the input entry such as
    ``object`` and ``hierarchy``). ``destination`` is ``{"id": ..., "type": ...}``.
    """
    (root / "input").mkdir(parents=True, exist_ok=True)
    (root / "output").mkdir(parents=True, exist_ok=True)
    inputs: dict[str, Any] = {}
    for name, (source, extra) in (files or {}).items():
        target = root / "input" / name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        entry: dict[str, Any] = {
            "base": "file",
            "location": {"name": source.name, "path": str(target)},
            "object": {"type": "dicom", "size": target.stat().st_size, "info": {}},
        }
        entry.update(extra)
        inputs[name] = entry
    if api_key is not None:
        inputs["api-key"] = {"base": "api-key", "key": api_key}
    body = {"config": config, "inputs": inputs, "destination": destination}
    (root / "config.json").write_text(json.dumps(body, indent=2))
    return root
