"""pynetdicom is used through fwmapping.dimse only: no other module of the agent, the gears
or fwmapping imports it (the benchmarks' stand-in peers and the tests may)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DIMSE = REPO / "shared" / "fwmapping" / "dimse"
FOLDERS = [REPO / "agent" / "fwagent", REPO / "gears", REPO / "shared" / "fwmapping"]


def pynetdicom_importers(folders: list[Path] = FOLDERS, root: Path = REPO) -> list[str]:
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            if path.is_relative_to(DIMSE):
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                if any(m.split(".")[0] == "pynetdicom" for m in modules):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_only_the_adapter_imports_pynetdicom() -> None:
    assert pynetdicom_importers() == []


def test_the_check_sees_an_import(tmp_path: Path) -> None:
    """The scan above would report a module importing pynetdicom (it is not vacuous)."""
    (tmp_path / "a.py").write_text("import os\nfrom pynetdicom import AE\n")
    (tmp_path / "b.py").write_text("import pynetdicom.sop_class as s\n")
    (tmp_path / "c.py").write_text("from fwmapping.dimse import AE\n")
    assert pynetdicom_importers([tmp_path], tmp_path) == ["a.py:2", "b.py:1"]
