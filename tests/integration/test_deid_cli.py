"""De-id from the command line: a bad profile stops `fwagent run` and `fwagent echo` with
one line naming the problem; `fwagent map --deid-profile` previews the upload."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.support import peers
from tests.support.agent_process import fwagent
from tests.support.phi import PHI, PROFILE, phi_spec, write_phi_series


def profile_with(tmp_path: Path, name: str, **dicom: object) -> Path:
    """The site profile with ``dicom`` keys replaced."""
    config = yaml.safe_load(PROFILE.read_text())
    config["dicom"].update(dicom)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def agent_yaml(tmp_path: Path, profile: Path | None = None) -> Path:
    config: dict[str, object] = {
        "spool_dir": str(tmp_path / "spool"),
        "spool_min_free_mb": 0,
        "flywheel": {"api_key": "127.0.0.1:1:__force_insecure:nokey"},
        "push": {"port": peers.free_port()},
    }
    if profile is not None:
        config["deid"] = {"profile": str(profile)}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_run_refuses_a_profile_with_an_unknown_keyword(tmp_path: Path) -> None:
    fields = [{"name": "PatientNme", "remove": True}]
    profile = profile_with(tmp_path, "typo", fields=fields)
    # set through the environment, as a container would
    env = {**os.environ, "FWAGENT_DEID_PROFILE": str(profile)}
    out = fwagent("run", "--config", str(agent_yaml(tmp_path)), env=env)
    assert out.returncode == 2
    line = one_line(out.stderr)
    assert "bad de-id profile" in line and str(profile) in line
    assert "Not in DICOM keyword list: PatientNme" in line
    assert not (tmp_path / "spool" / "deid").exists() or not any(
        (tmp_path / "spool" / "deid").iterdir()
    )


@pytest.mark.parametrize(
    ("dicom", "why"),
    [
        ({"salt": None}, "uses hash without a salt (an unsalted SHA-256 is reversible"),
        (
            {"fields": [{"name": "StudyDate", "increment-date": True, "jitter-date": True}]},
            "uses jitter-date (a random shift per file splits a series",
        ),
        ({"fields": [{"name": "SeriesInstanceUID", "remove": True}]}, "use hashuid"),
        ({"fields": [{"name": "PatientName", "replace_with": "X"}]}, "unknown action replace_with"),
    ],
)
def test_echo_refuses_what_a_privacy_officer_would_not_sign(
    tmp_path: Path, dicom: dict[str, object], why: str
) -> None:
    profile = profile_with(tmp_path, "refused", **dicom)
    out = fwagent("echo", "--config", str(agent_yaml(tmp_path, profile)), "--timeout", "2")
    assert out.returncode == 2, out.stdout + out.stderr
    line = one_line(out.stderr)
    assert why in line and str(profile) in line
    assert out.stdout == ""  # stopped before any check ran


def test_map_previews_the_de_identified_upload(tmp_path: Path) -> None:
    spec = phi_spec("fw://psych/study01/s01", count=3)
    paths = write_phi_series(tmp_path / "in", spec)
    (tmp_path / "in" / "notes.txt").write_text("not DICOM")
    out = fwagent("map", "--deid-profile", str(PROFILE), str(tmp_path / "in"))
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    metadata = json.loads(line)
    assert (metadata["group"], metadata["project"]) == ({"_id": "psych"}, {"label": "study01"})
    assert metadata["routing"]["value"] == "fw://psych/study01/s01"
    assert metadata["session"]["subject"] == {
        "label": "s01",
        "firstname": "",
        "lastname": "ANONYMOUS",
    }
    assert metadata["session"]["operator"] == ""
    assert metadata["acquisition"]["uid"] not in (spec.series_uid, "")
    assert metadata["acquisition"]["uid"].endswith(".12")  # hashuid's "000012", made valid
    assert metadata["session"]["timestamp"].startswith("2020-10-06")
    for value in PHI.values():
        for part in value.split("^"):
            assert part.lower() not in out.stdout.lower()
    assert "notes.txt" in out.stderr
    raw = fwagent("map", str(paths[0]))
    assert "Quixley" in raw.stdout  # without the profile, the same file shows its PHI


def test_map_refuses_a_bad_profile(tmp_path: Path) -> None:
    profile = tmp_path / "broken.yaml"
    profile.write_text("dicom: [unclosed\n")
    paths = write_phi_series(tmp_path / "in", phi_spec(count=1))
    out = fwagent("map", "--deid-profile", str(profile), str(paths[0]))
    assert out.returncode == 2
    assert "not valid YAML" in one_line(out.stderr)
    assert out.stdout == ""
