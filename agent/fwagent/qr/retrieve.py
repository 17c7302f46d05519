"""C-MOVE/C-GET sub-operations: the instances' datasets, read from their Flywheel files
(each file downloaded once per request), fitted to what the destination accepted.

Instances go out as stored (same transfer syntax, same dataset) whenever the destination
accepts that; a compressed instance for a destination that accepts only uncompressed
syntaxes is decompressed (pydicom + pylibjpeg); if that fails it is counted as failed.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

from fwmapping.paths import inside, safe_component
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from . import site
from .index import Located

log = logging.getLogger(__name__)

UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
NATIVE = {
    str(ExplicitVRLittleEndian),
    str(ImplicitVRLittleEndian),
    str(ExplicitVRBigEndian),
    str(DeflatedExplicitVRLittleEndian),
}

# (abstract syntax, transfer syntax) -> accepted?
Accepts = Callable[[str, str], bool]


def is_native(ts: str) -> bool:
    return ts in NATIVE or not ts


def wanted_contexts(located: Sequence[Located]) -> list[tuple[str, list[str]]]:
    """Presentation contexts to propose to a move destination: per SOP class its stored
    syntaxes each alone (so a destination that can take them gets them unchanged) and,
    for compressed ones, a second context with the uncompressed syntaxes to fall back to."""
    pairs = sorted(
        {(x.sop_class, x.transfer_syntax or str(ExplicitVRLittleEndian)) for x in located}
    )
    out: list[tuple[str, list[str]]] = []
    fallback: set[str] = set()
    for sop_class, ts in pairs:
        if is_native(ts):
            out.append((sop_class, list(dict.fromkeys([ts, *map(str, UNCOMPRESSED)]))))
        else:
            out.append((sop_class, [ts]))
            if sop_class not in fallback:
                fallback.add(sop_class)
                out.append((sop_class, [str(t) for t in UNCOMPRESSED]))
    return out[:128]  # the most a requestor may propose


def fit(ds: Dataset, accepts: Accepts) -> Dataset:
    """``ds`` as stored when the destination accepts its syntax, else decompressed."""
    ts = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
    sop_class = str(ds.get("SOPClassUID", ""))
    if accepts(sop_class, ts) or is_native(ts):
        return ds
    try:
        ds.decompress(generate_instance_uid=False)  # the same instance, losslessly unpacked
    except Exception as exc:  # noqa: BLE001 - counted as a failed sub-operation
        log.warning(
            "qr: cannot decompress %s (%s): %s", ds.get("SOPInstanceUID"), UID(ts).name, exc
        )
    return ds


def failed_placeholder(sop_uid: str) -> Dataset:
    """What to hand pynetdicom for an instance that cannot be read: it fails to send and
    is counted in the final response's failed sub-operations with its UID."""
    ds = Dataset()
    ds.SOPInstanceUID = sop_uid
    return ds


class Fetcher:
    """Reads located instances from Flywheel, one download per file, into ``work_dir``."""

    def __init__(self, client: Any, work_dir: Path) -> None:
        self.client = client
        self.work_dir = work_dir

    def datasets(self, located: Sequence[Located]) -> Iterator[tuple[Located, Dataset | None]]:
        """(instance, dataset or None when it cannot be read), in ``located`` order."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="retrieve-", dir=self.work_dir))
        try:
            for file_id, group in groupby(located, key=lambda x: x.source.file_id):
                items = list(group)
                path = inside(tmp, safe_component(file_id))  # the id comes from the server
                try:
                    site.download(self.client, items[0].source, path)
                except Exception as exc:  # noqa: BLE001 - reported per instance
                    log.warning("qr: cannot download %s: %s", items[0].source.name, exc)
                    for item in items:
                        yield item, None
                    continue
                for item in items:
                    yield item, self._read(path, item)
                path.unlink(missing_ok=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _read(path: Path, item: Located) -> Dataset | None:
        try:
            ds = site.open_instance(path, item.member)
        except Exception as exc:  # noqa: BLE001 - reported per instance
            log.warning("qr: cannot read %s in %s: %s", item.member, item.source.name, exc)
            return None
        if str(ds.get("SOPInstanceUID", "")) != item.sop_uid:
            log.warning("qr: %s changed since it was indexed", item.source.name)
            return None
        return ds
