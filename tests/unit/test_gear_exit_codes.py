"""Every gear exits with one code (2, gears.runtime.EXIT_CONFIG) for configuration errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gears import runtime
from tests.support.gear_root import make_gear_root


@pytest.mark.parametrize(
    ("gear", "config"),
    [
        ("dicom-send", {"destination": "127.0.0.1", "called_ae": "PACS"}),  # no file, no key
        ("dicom-send", {"destination": "127.0.0.1", "called_ae": "PACS", "group": "0x0020"}),
        ("dicom-send", {"destination": "", "called_ae": "PACS"}),
        ("mapping-audit", {}),  # no api-key
        ("unsorted-mover", {}),  # no api-key
    ],
)
def test_configuration_errors_exit_2(tmp_path: Path, gear: str, config: dict[str, str]) -> None:
    root = make_gear_root(tmp_path, config=config, destination={"type": "project", "id": "x"})
    assert runtime.main(["run", gear, "--root", str(root)]) == runtime.EXIT_CONFIG == 2
    assert list((root / "output").iterdir()) == []


def test_runtime_config_problems_exit_2(tmp_path: Path) -> None:
    assert runtime.main(["run", "dicom-send", "--root", str(tmp_path)]) == 2  # no config.json
    assert runtime.main(["run", "dicom-send", "--root", str(tmp_path / "nowhere")]) == 2
