"""Each part's pyproject extra carries what the part imports, and nothing of the others.

The images install one extra each (``.[agent]``, ``.[gears]``): a part importing a package
its extra does not bring in would fail only inside the image, so the imports are checked
here against the installed metadata's dependency closure of each extra.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
SELF = canonicalize_name(PYPROJECT["name"])

DIMSE = REPO / "shared" / "fwmapping" / "dimse"
# part -> (source folder, extra installed for it; None = the base dependencies only).
# fwmapping's base needs no pynetdicom: its DIMSE adapter, fwmapping.dimse, is a part of its
# own that both image extras must satisfy (the agent and dicom-send use it).
PARTS = {
    "fwmapping": (REPO / "shared" / "fwmapping", None),
    "fwmapping.dimse (agent)": (DIMSE, "agent"),
    "fwmapping.dimse (gears)": (DIMSE, "gears"),
    "fwagent": (REPO / "agent" / "fwagent", "agent"),
    "gears": (REPO / "gears", "gears"),
    "fwlite": (REPO / "fwlite", "fwlite"),
}
OURS = {"fwmapping", "fwagent", "gears", "fwlite", "demo", "tests"}
# what an image of a part must not carry (the agent carries pandas: flywheel-migration,
# its de-identification library, requires it)
FORBIDDEN = {
    "agent": {"fw-gear", "fastapi", "uvicorn", "starlette", "pylibjpeg"},
    "gears": {"fastapi", "uvicorn", "starlette", "python-multipart", "prometheus-client"},
}


def third_party_imports(folder: Path) -> set[str]:
    """Top-level names of everything imported under ``folder`` that is neither stdlib nor ours
    (type-checking-only imports included: harmless, and mypy runs in the image's terms);
    fwmapping's own folder without fwmapping.dimse, a part of its own."""
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        if folder != DIMSE and path.is_relative_to(DIMSE):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name not in OURS}


def _direct(extra: str | None) -> list[Requirement]:
    reqs = [Requirement(text) for text in PYPROJECT["dependencies"]]
    if extra is not None:
        reqs += [Requirement(text) for text in PYPROJECT["optional-dependencies"][extra]]
    return reqs


@cache
def closure(extra: str | None) -> frozenset[str]:
    """Distribution names installed by ``pip install '.[extra]'`` (from installed metadata)."""
    seen: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = []
    for req in _direct(extra):
        name = canonicalize_name(req.name)
        if name == SELF:  # a self-reference such as fw-dicom-connector[agent,gears]
            for other in req.extras:
                seen |= closure(other)
            continue
        todo.append((name, frozenset(req.extras)))
    while todo:
        name, extras = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            wanted = [{"extra": e} for e in extras] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in wanted):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return frozenset(seen)


def distributions_of(module: str) -> set[str]:
    found = metadata.packages_distributions().get(module)
    assert found, f"{module} is imported but no installed distribution provides it"
    return {canonicalize_name(name) for name in found}


@pytest.mark.parametrize("part", sorted(PARTS))
def test_extra_brings_every_package_the_part_imports(part: str) -> None:
    folder, extra = PARTS[part]
    have = closure(extra)
    missing = {
        module for module in third_party_imports(folder) if not distributions_of(module) & have
    }
    assert not missing, f"{part} imports {sorted(missing)}, not installed by extra {extra!r}"


@pytest.mark.parametrize("extra", sorted(FORBIDDEN))
def test_image_extra_carries_nothing_of_the_other_parts(extra: str) -> None:
    carried = closure(extra) & {canonicalize_name(name) for name in FORBIDDEN[extra]}
    assert not carried, f"extra {extra!r} pulls in {sorted(carried)}"


def test_dev_installs_every_part() -> None:
    for extra in ("agent", "gears", "fwlite"):
        assert closure(extra) <= closure("dev")


def test_fwmapping_imports_without_pynetdicom() -> None:
    """Importing fwmapping (everything but the DIMSE adapter) loads no pynetdicom."""
    code = (
        "import sys, pkgutil, importlib, fwmapping\n"
        "for m in pkgutil.iter_modules(fwmapping.__path__):\n"
        "    if m.name != 'dimse': importlib.import_module('fwmapping.' + m.name)\n"
        "print('pynetdicom' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
