"""dicom-send's pipeline: preparing overlaps the C-STORE in flight, the bounded queue stops
the preparer when the peer is slow, and memory stays flat on a session of large files."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from gears.dicom_send import gear
from tests.integration.dicom_send_helpers import report_rows, run_gear, storescp
from tests.support import peers
from tests.support.dicomgen import SeriesSpec, make_instance, write_series
from tests.support.gear_root import make_gear_root
from tests.support.polling import wait_until

pytestmark = pytest.mark.peers


class SlowPeer:
    """A pynetdicom storage SCP whose C-STORE handler answers only when the test allows."""

    def __init__(self) -> None:
        self.permits = threading.Semaphore(0)
        self.entered = 0
        self.stored: list[str] = []
        self.ae = AE(ae_title="SLOWSCP")
        self.ae.supported_contexts = StoragePresentationContexts
        self.ae.add_supported_context(Verification)  # dicom-send's C-ECHO first
        self.port = peers.free_port()

    def _on_store(self, event: Any) -> int:
        self.entered += 1
        if not self.permits.acquire(timeout=120):
            return 0xA700
        self.stored.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    def __enter__(self) -> SlowPeer:
        self.server = self.ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.permits.release(1000)
        self.server.shutdown()


def test_preparing_overlaps_sending_and_stops_when_the_queue_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 30
    series = write_series(tmp_path / "src", SeriesSpec(count=count))
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in series:
            zf.write(path, path.name)
    prepared = 0
    real_prepare = gear.prepare

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal prepared
        item = real_prepare(*args, **kwargs)
        prepared += 1
        return item

    monkeypatch.setattr(gear, "prepare", counting)
    result: dict[str, Any] = {}
    with SlowPeer() as peer:
        worker = threading.Thread(
            target=lambda: result.update(
                code=run_gear(
                    tmp_path / "gear",
                    peer.port,
                    called_ae="SLOWSCP",
                    files={"file": (archive, {})},
                )[0]
            )
        )
        worker.start()
        try:
            wait_until(lambda: peer.entered == 1)  # the first C-STORE is in flight, held
            # one in flight + a full queue + one prepared and waiting to be queued
            full = gear.QUEUE_SIZE + 2
            wait_until(lambda: prepared >= full)
            assert not peer.permits.acquire(timeout=0.5)  # (a short look: nothing more)
            assert prepared == full  # the preparer stopped: memory is bounded
            peer.permits.release()  # the first answered; the second goes in flight, held
            wait_until(lambda: peer.entered == 2)
            wait_until(lambda: prepared == full + 1)  # prepared during the held C-STORE
            assert len(peer.stored) == 1
        finally:
            peer.permits.release(1000)
            worker.join(timeout=120)
    assert result["code"] == 0
    assert sorted(peer.stored) == sorted(str(pydicom.dcmread(p).SOPInstanceUID) for p in series)
    assert prepared == count


def _large_series_zip(archive: Path, count: int, megabytes: int) -> int:
    """A stored zip of ``count`` MR instances of about ``megabytes`` MB each; its data size."""
    side = int((megabytes * 1024 * 1024 / 2) ** 0.5)
    spec = SeriesSpec(count=count, rows=side, cols=side)
    total = 0
    with zipfile.ZipFile(archive, "w") as zf:  # stored: the zip is as big as the data
        for index in range(count):
            buffer = io.BytesIO()
            make_instance(spec, index).save_as(buffer, enforce_file_format=True)
            zf.writestr(f"{index:04d}.dcm", buffer.getvalue())
            total += buffer.tell()
    return total


@pytest.mark.slow
def test_peak_memory_stays_flat_on_many_large_files(tmp_path: Path) -> None:
    """100 x 8 MB: the gear's peak RSS stays that of a few files in flight (measured ~315 MiB,
    flat from 40 to 100 files), not a share of the session (it grew ~12 MB per file before
    the sent tag stopped leaving a reference cycle per dataset)."""
    count, megabytes = 100, 8
    archive = tmp_path / "large.zip"
    total = _large_series_zip(archive, count, megabytes)
    assert total >= count * megabytes * 1024 * 1024 * 0.99
    root = tmp_path / "gear"
    with storescp(tmp_path / "out", ("--ignore",)) as port:
        make_gear_root(
            root,
            config={"destination": "127.0.0.1", "called_ae": "STORESCP", "port": port},
            destination={"id": "000000000000000000000000", "type": "acquisition"},
            files={"file": (archive, {})},
        )
        archive.unlink()  # the gear root has its copy
        command = [sys.executable, "-m", "gears.runtime", "run", "dicom-send", "--root", str(root)]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # wait4 gives this one child's own peak RSS (ru_maxrss, KiB on Linux): its VmHWM
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    assert proc.returncode == 0, stderr[-2000:]
    rows = report_rows(root)
    assert [(r["Images in Series"], r["Images Sent"]) for r in rows] == [(str(count),) * 2]
    peak = usage.ru_maxrss * 1024
    print(f"peak RSS {peak / 2**20:.0f} MiB for {total / 2**20:.0f} MiB sent")
    assert peak < 0.6 * total, f"peak RSS {peak / 2**20:.0f} MiB"
