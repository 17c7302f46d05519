"""``fwlite tree`` shows where data landed, from the data directory or a running site."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import flywheel
from flywheel import FileSpec

from tests.support.fwlite_server import REPO, FwliteServer


def test_tree_prints_hierarchy_with_file_counts(fw: Any, fwlite: FwliteServer) -> None:
    fw.add_group(flywheel.Group(id="psych", label="Psych"))
    metadata = {
        "group": {"_id": "psych"},
        "project": {"label": "study01"},
        "session": {"uid": "1.2", "label": "My Study", "subject": {"label": "s01"}},
        "acquisition": {
            "uid": "3.4",
            "label": "T1",
            "files": [{"name": "t1.dicom.zip"}, {"name": "b.txt"}],
        },
    }
    specs = [FileSpec("t1.dicom.zip", contents=b"z"), FileSpec("b.txt", contents=b"b")]
    fw.upload_by_uid(files=specs, metadata=json.dumps(metadata))

    by_dir = subprocess.run(
        [sys.executable, "-m", "fwlite", "tree", "--data", str(fwlite.data_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    by_url = subprocess.run(
        [sys.executable, "-m", "fwlite", "tree", "--url", fwlite.url, "--api-key", fwlite.key],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for lines in (by_dir, by_url):
        assert lines[0] == "group Psych [psych]"
        assert lines[1].startswith("  project study01 [") and lines[1].endswith("(0 files)")
        assert lines[2].startswith("    subject s01 [")
        assert lines[3].startswith("      session My Study [")
        assert lines[4].startswith("        acquisition T1 [") and lines[4].endswith("(2 files)")
        assert lines[5] == "group Unknown [unknown]"
        assert len(lines) == 6


def test_tree_on_a_missing_directory_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fwlite", "tree", "--data", str(tmp_path / "none")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"fwlite: no fwlite data in {tmp_path / 'none'}"
    assert "Traceback" not in result.stderr
