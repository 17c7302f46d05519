"""dicom-send throughput, one run: this gear vs fw-gear-dicom-send 4.2.0 vs dcmtk's storescu.

The same 500-image series (256x256 MR, ~132 KB each, zipped as Flywheel stores it) goes to
dcmtk's storescp (TCP_NODELAY=1) three ways. The gear is timed from the zip to the last
C-STORE response (unpack + read + tag + send, pipelined as the gear runs it), like
fw-gear-dicom-send (get_dicom_collection + dicom_send), which runs in its own virtual
environment under bench/.venvs/ (it needs pydicom 2 and pynetdicom 2). storescu sends the plain files: the limit to approach.
Each runs three times, interleaved, and the ratios are those of the medians, so a machine
shared with other work skews all three alike.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from fwmapping import SentTag

from gears.dicom_send.config import SendConfig
from gears.dicom_send.gear import Pipeline, Row, Source
from gears.dicom_send.sender import Peer, Sender
from tests.support import peers
from tests.support.dicomgen import SeriesSpec, write_series

COUNT = 500
ROUNDS = 3  # each contender runs this many times, interleaved; ratios of the medians
HERE = Path(__file__).resolve().parent
OLD_VENV = HERE / ".venvs" / "fw-gear-dicom-send"
# fw-file (under fw-gear-dicom-send) downloads the DICOM standard from the web the first time
# it saves a file, to list required tags for its OriginalAttributesSequence bookkeeping.
# Offline that download fails; with fw-file's tracking off (its default) the bookkeeping
# records nothing anyway, so the driver skips it. That only makes the old gear faster.
OLD_DRIVER = """
import json, sys, time
from pathlib import Path
from fw_file.dicom.reader import ReadContext
ReadContext.update_orig_attrs = lambda self, dataset: None
from fw_gear_dicom_send.main import get_dicom_collection, dicom_send
from fw_gear_dicom_send.parser import AEConfig
start = time.perf_counter()
dcms = get_dicom_collection(Path(sys.argv[1]))
present, sent = dicom_send(dcms, AEConfig("STORESCP", int(sys.argv[2]), "flywheel", "127.0.0.1"))
print(json.dumps({"seconds": time.perf_counter() - start, "present": present, "sent": sent}))
"""


def old_gear_python() -> Path | None:
    """fw-gear-dicom-send 4.2.0 in its own venv; None (and why, printed) if not installable."""
    python = OLD_VENV / "bin" / "python"
    check = [str(python), "-c", "import fw_gear_dicom_send"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", str(OLD_VENV)], check=True, timeout=120)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "fw-gear-dicom-send==4.2.0"],
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"fw-gear-dicom-send 4.2.0: cannot create its venv: {exc}")
        return None
    if done.returncode != 0:
        print(f"fw-gear-dicom-send 4.2.0: cannot install: {done.stderr.strip()[-500:]}")
        return None
    return python


def count_files(directory: Path) -> int:
    return sum(1 for path in directory.iterdir() if path.is_file())


def main() -> None:
    peers.require("storescp", "storescu")
    storescu = shutil.which("storescu", path="/usr/bin:/usr/local/bin") or "storescu"
    with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp:
        root = Path(tmp)
        series = write_series(root / "series", SeriesSpec(count=COUNT, rows=256, cols=256))
        archive = root / "series.dicom.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in series:
                zf.write(path, path.name)
        results: dict[str, list[float]] = {}

        def run(name: str, action) -> None:  # type: ignore[no-untyped-def]
            out = root / f"out-{name}-{len(results.get(name, []))}"
            port = peers.free_port()
            proc = peers.start_storescp(out, port)
            try:
                seconds = action(port)
            finally:
                peers.stop(proc)
            arrived = count_files(out)
            if seconds is None or arrived != COUNT:
                print(f"{name}: {arrived}/{COUNT} received; not counted")
                return
            results.setdefault(name, []).append(seconds)
            print(f"{name}: {COUNT} images in {seconds:.2f} s = {COUNT / seconds:.0f} img/s")

        def ours(port: int) -> float:
            start = time.perf_counter()
            cfg = SendConfig("127.0.0.1", "STORESCP", port=port, sent_tag=SentTag())
            row = Row("", archive.name, archive.name)
            sender = Sender(Peer("127.0.0.1", port, "STORESCP"))
            Pipeline(root / "work", cfg, sender, None).run([Source(row, path=archive)])
            shutil.rmtree(root / "work", ignore_errors=True)
            assert row.sent == COUNT, row
            return time.perf_counter() - start

        def dcmtk(port: int) -> float:
            start = time.perf_counter()
            subprocess.run(
                [storescu, "-aec", "STORESCP", "127.0.0.1", str(port), *map(str, series)],
                env=peers.PEER_ENV,
                check=True,
                capture_output=True,
            )
            return time.perf_counter() - start

        def old(port: int) -> float | None:
            python = old_gear_python()
            if python is None:
                return None
            done = subprocess.run(
                [str(python), "-c", OLD_DRIVER, str(archive), str(port)],
                capture_output=True,
                text=True,
                timeout=900,
            )
            if done.returncode != 0:
                print(f"fw-gear-dicom-send 4.2.0 failed: {done.stderr.strip()[-500:]}")
                return None
            return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])

        for _ in range(ROUNDS):  # interleaved: a busy machine slows all three alike
            run("this gear", ours)
            run("storescu", dcmtk)
            run("fw-gear-dicom-send 4.2.0", old)
        medians = {name: statistics.median(times) for name, times in results.items()}
        for name, seconds in medians.items():
            print(f"median {name}: {seconds:.2f} s over {len(results[name])} run(s)")
        if "this gear" in medians and "fw-gear-dicom-send 4.2.0" in medians:
            ratio = medians["fw-gear-dicom-send 4.2.0"] / medians["this gear"]
            verdict = "meets" if ratio >= 3 else "MISSES"
            print(
                f"this gear vs fw-gear-dicom-send 4.2.0: {ratio:.1f}x faster "
                f"({verdict} the >= 3x target)"
            )
        if "this gear" in medians and "storescu" in medians:
            ratio = medians["this gear"] / medians["storescu"]
            verdict = "meets" if ratio <= 3 else "MISSES"
            print(
                f"this gear vs storescu: {ratio:.1f}x storescu's time ({verdict} the <= 3x target)"
            )


if __name__ == "__main__":
    main()
