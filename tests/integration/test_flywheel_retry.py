"""dicom-send's downloads follow fwmapping's one classification of Flywheel errors: a rate
limit or an outage is retried, a refusal is not (real flywheel-sdk against fwlite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flywheel.rest import ApiException

from gears.dicom_send.session import dicom_files, download, scope_of
from tests.support.dicomgen import SeriesSpec
from tests.support.seed import seed_series


def _one_file(fw: Any, tmp_path: Path) -> Any:
    spec = SeriesSpec(count=2)
    seed_series(fw, tmp_path / "seed", spec)
    session = fw.sessions.find_first(f"uid={spec.study_uid}")
    [remote] = dicom_files(scope_of(fw, "session", session.id))
    return remote


@pytest.mark.parametrize("status", [429, 503])
def test_dicom_send_download_retries_rate_limit_and_outage(
    tmp_path: Path, fwlite: Any, fw: Any, status: int
) -> None:
    remote = _one_file(fw, tmp_path)
    fwlite.set_fault(status=status, count=2, path_prefix="/api/acquisitions")
    dest = download(fw, remote, tmp_path / "got.zip", max_time=30)
    assert dest.stat().st_size > 0
    gets = [r["status"] for r in fwlite.requests() if "/files/" in r["path"]]
    assert gets == [status, status, 200]


def test_dicom_send_download_stops_at_a_permanent_error(
    tmp_path: Path, fwlite: Any, fw: Any
) -> None:
    remote = _one_file(fw, tmp_path)
    fwlite.set_fault(status=403, count=2, path_prefix="/api/acquisitions")
    with pytest.raises(ApiException) as raised:
        download(fw, remote, tmp_path / "got.zip", max_time=30)
    assert raised.value.status == 403
    assert [r["status"] for r in fwlite.requests() if "/files/" in r["path"]] == [403]
