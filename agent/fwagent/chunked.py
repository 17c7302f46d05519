"""Received datasets go to a file as they arrive, never whole into memory.

pynetdicom's supported switch ``_config.STORE_RECV_CHUNKED_DATASET`` (set through
:func:`fwmapping.dimse.receive_chunked`) makes it write each
C-STORE's dataset, PDU by PDU, to a ``NamedTemporaryFile`` (``tmpXXXX.dcm``, a File Meta
built from the command set and the presentation context, then the dataset as received) in
``tempfile.gettempdir()``; the C-STORE handler gets its path as ``event.dataset_path``.
``fwagent run`` points the process's ``tempfile.tempdir`` at ``spool/tmp`` at start-up
(:func:`receive_into`), so those files are on the spool's file system (the rename into
``spool/instances`` is atomic, and a small ``/tmp`` tmpfs is never filled). A file that
arrives elsewhere anyway (another process-wide temp dir) is moved or copied in.

Only what is needed is read from the file: the File Meta's length, the header up to the
pixel data (:func:`read_header`), element headers for the completeness check
(:func:`fwagent.completeness.incomplete_file`). A deflated dataset is inflated to a
scratch file, never in memory.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Any, BinaryIO

from fwmapping import dimse
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import UID

from .completeness import LONG_VRS

log = logging.getLogger(__name__)

PIXEL_DATA = 0x7FE00010
DEFER_BYTES = 64 * 1024  # header values larger than this are read only if asked for
STALE_SECONDS = 600.0  # a partial received file untouched this long: its association died
COPY_CHUNK = 1 << 20


def enable() -> None:
    """Chunked receive for every association of this process (pynetdicom's switch is
    process-wide; every storage SCP and C-GET of the agent uses it)."""
    dimse.receive_chunked()


def receive_into(tmp_dir: Path) -> None:
    """Chunked receive, with pynetdicom's temporary files (and any other temporary file of
    this process) in ``tmp_dir``, the spool's own ``tmp`` folder. Called once by ``fwagent
    run`` at start-up: ``tempfile.tempdir`` is process-wide."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    _previous.append(tempfile.tempdir)
    tempfile.tempdir = str(tmp_dir)
    enable()


def release(tmp_dir: Path) -> None:
    """Undo :func:`receive_into` when the agent stops (several agents started and stopped
    in one process, as in tests, each leave the temporary folder as they found it)."""
    if tempfile.tempdir == str(tmp_dir) and _previous:
        tempfile.tempdir = _previous.pop()


_previous: list[str | None] = []


def received_file(event: Any, tmp_dir: Path, file_meta: bytes) -> Path:
    """The C-STORE's dataset as a PS3.10 file inside ``tmp_dir``: pynetdicom's chunked file
    (moved in if it was written elsewhere), or, without chunked receive, ``file_meta`` +
    the dataset bytes written there."""
    try:
        path = event.dataset_path
    except AttributeError:  # not chunked (or not a C-STORE event)
        path = None
    dest = tmp_dir / f"{uuid.uuid4().hex}.part"
    if path is None:
        raw = event.request.DataSet.getvalue()
        with open(dest, "wb") as fh:
            fh.write(file_meta)
            fh.write(raw)
        return dest
    path = Path(path)
    if path.parent == tmp_dir or os.path.realpath(path.parent) == os.path.realpath(tmp_dir):
        return path
    try:
        os.replace(path, dest)  # same file system: pynetdicom then finds nothing to remove
    except OSError:
        shutil.copyfile(path, dest)  # streamed; pynetdicom removes its own copy
    return dest


def dataset_offset(fh: BinaryIO) -> int:
    """Where the dataset starts in a PS3.10 file (see :func:`read_meta`)."""
    return read_meta(fh)[0]


def read_meta(fh: BinaryIO) -> tuple[int, str, str]:
    """(where the dataset starts, MediaStorageSOPClassUID, MediaStorageSOPInstanceUID) of a
    PS3.10 file: the preamble, ``DICM`` and the File Meta group (explicit VR little endian)
    read element by element, values read only for those two UIDs."""
    fh.seek(0)
    head = fh.read(132)
    if len(head) < 132 or head[128:] != b"DICM":
        raise ValueError("not a PS3.10 file (no DICM prefix)")
    pos, uids = 132, {2: "", 3: ""}
    while True:
        fh.seek(pos)
        header = fh.read(8)
        if len(header) < 8 or struct.unpack("<H", header[:2])[0] != 0x0002:
            return pos, uids[2], uids[3]
        element = struct.unpack("<H", header[2:4])[0]
        if header[4:6] in LONG_VRS:
            extra = fh.read(4)
            if len(extra) < 4:
                return pos, uids[2], uids[3]
            pos += 12 + struct.unpack("<I", extra)[0]
        else:
            length = struct.unpack("<H", header[6:8])[0]
            if element in uids:
                uids[element] = fh.read(length).decode("ascii", "replace").strip(" \x00")
            pos += 8 + length


def _stop_at_pixels(tag: Any, vr: Any, length: int) -> bool:
    return int(tag) >= PIXEL_DATA


def read_header(path: Path, offset: int, transfer_syntax: str) -> Dataset:
    """The dataset's elements before the pixel data, read from the file (values larger than
    DEFER_BYTES stay on disk until asked for). File Meta is ignored: the presentation
    context's transfer syntax says how the dataset is encoded."""
    ts = UID(transfer_syntax)
    with open(path, "rb") as fp:
        fp.seek(offset)
        header = read_dataset(
            fp,
            ts.is_implicit_VR,
            ts.is_little_endian,
            stop_when=_stop_at_pixels,
            defer_size=DEFER_BYTES,
        )
    # deferred values are read again from this file if asked for (only before the rename)
    header.filename = str(path)
    header.buffer = None
    header.fileobj_type = open
    header.timestamp = os.stat(path).st_mtime
    return header


def read_deflated_header(inflated: Path) -> Dataset:
    """The header of an inflated dataset (explicit VR little endian, no File Meta)."""
    with open(inflated, "rb") as fp:
        return read_dataset(fp, False, True, stop_when=_stop_at_pixels)


def inflate(path: Path, offset: int, dest: Path) -> str | None:
    """Inflate the deflated dataset at ``offset`` of ``path`` into ``dest`` chunk by chunk;
    why it cannot be inflated, or None."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        with open(path, "rb") as src, open(dest, "wb") as out:
            src.seek(offset)
            while chunk := src.read(COPY_CHUNK):
                out.write(inflater.decompress(chunk))
                while inflater.unconsumed_tail:  # never more than a chunk's worth at once
                    out.write(inflater.decompress(inflater.unconsumed_tail, COPY_CHUNK))
            out.write(inflater.flush())
    except zlib.error as exc:
        return f"deflated dataset cannot be inflated: {exc}"
    if not inflater.eof:
        return "deflated dataset ends before its end-of-stream marker"
    return None


def replace_meta(path: Path, offset: int, file_meta: bytes, dest: Path) -> None:
    """Write ``file_meta`` + the dataset of ``path`` (from ``offset``) to ``dest``,
    streamed; the dataset's bytes are copied unchanged."""
    with open(path, "rb") as src, open(dest, "wb") as out:
        out.write(file_meta)
        src.seek(offset)
        shutil.copyfileobj(src, out, COPY_CHUNK)


def sweep_stale(tmp_dir: Path, max_age: float = STALE_SECONDS) -> int:
    """Remove pynetdicom's partial files left by associations that died mid-dataset
    (untouched for ``max_age``; a live transfer writes its file at every PDU)."""
    removed = 0
    cutoff = time.time() - max_age
    for path in tmp_dir.glob("tmp*.dcm"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue
    if removed:
        log.info("removed %d partial received files (associations that broke off)", removed)
    return removed
