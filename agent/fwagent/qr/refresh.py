"""Keep the index in step with Flywheel, incrementally.

A quick refresh asks only for DICOM files modified since the last one (one filtered
listing, nothing downloaded when nothing changed); a full one lists every DICOM file the
key can see (ids and versions only) to drop what was deleted or is no longer visible.
Only new or replaced files are downloaded, once, to read their instances' headers.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import site
from .index import Index, Source

log = logging.getLogger(__name__)


@dataclass
class RefreshReport:
    listed: int = 0
    indexed: int = 0
    removed: int = 0
    failed: int = 0
    full: bool = False


class Refresher:
    def __init__(self, index: Index, client: Any, work_dir: Path) -> None:
        self.index = index
        self.client = client
        self.work_dir = work_dir
        self.lock = threading.Lock()

    def refresh(self, full: bool = False, wait: bool = True) -> RefreshReport | None:
        """One pass; a full pass when asked or when the index has never been filled.
        With ``wait=False`` returns None at once when another pass is running."""
        if not self.lock.acquire(blocking=wait):
            return None
        try:
            return self._refresh(full)
        finally:
            self.lock.release()

    def _refresh(self, full: bool) -> RefreshReport:
        cursor = self.index.get_meta("cursor") or ""
        full = full or not cursor
        report = RefreshReport(full=full)
        known = self.index.sources()
        seen: set[str] = set()
        newest = cursor
        for source in site.list_dicom_files(self.client, "" if full else cursor):
            report.listed += 1
            seen.add(source.file_id)
            newest = max(newest, source.modified)
            old = known.get(source.file_id)
            if old is not None and old.version == source.version:
                continue
            if self._index_file(source):
                report.indexed += 1
            else:
                report.failed += 1
        if full:
            for file_id in set(known) - seen:
                self.index.remove_source(file_id)
                report.removed += 1
            self.index.set_meta("full_at", str(time.time()))
        if newest and not report.failed:  # a file that failed is listed again next time
            self.index.set_meta("cursor", newest)
        return report

    def _index_file(self, source: Source) -> bool:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="index-", dir=self.work_dir))
        try:
            path = site.download(self.client, source, tmp / "file")
            rows = site.read_instances(path, source.is_zip)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the pass
            log.warning("qr index: cannot read %s (%s): %s", source.name, source.file_id, exc)
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.index.put_source(source, rows)
        return True

    def forget(self, source: Source) -> None:
        """A file that vanished (deleted, or the key lost access) between two passes."""
        self.index.remove_source(source.file_id)
