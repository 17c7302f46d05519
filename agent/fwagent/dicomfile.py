"""DICOM file handling for received datasets: the File Meta a PS3.10 file starts with, and
the header read from the bytes as they arrived (whether they are whole is
:mod:`fwagent.completeness`)."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from typing import Any

from fwmapping import acquisition_uid
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

PIXEL_DATA = 0x7FE00010
IMPLEMENTATION_VERSION = "FWAGENT"


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH", 0x0002, element) + vr + struct.pack("<H", len(value)) + value


def _uid(value: str) -> bytes:
    raw = value.encode("ascii", "replace")
    return raw + b"\x00" if len(raw) % 2 else raw


def _text(value: str) -> bytes:
    raw = value.encode("ascii", "replace")
    return raw + b" " if len(raw) % 2 else raw


def encode_file_meta(
    sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str
) -> bytes:
    """Preamble, ``DICM`` and the File Meta group, encoded directly (explicit VR little
    endian, PS3.10 7.1); pydicom's generic writer costs ~1.5 ms per instance here."""
    body = b"".join(
        (
            struct.pack("<HH", 0x0002, 0x0001) + b"OB\x00\x00" + struct.pack("<I", 2) + b"\x00\x01",
            _element(0x0002, b"UI", _uid(sop_class)),
            _element(0x0003, b"UI", _uid(sop_instance)),
            _element(0x0010, b"UI", _uid(transfer_syntax)),
            _element(0x0012, b"UI", _uid(PYDICOM_IMPLEMENTATION_UID)),
            _element(0x0013, b"SH", _text(IMPLEMENTATION_VERSION)),
            _element(0x0016, b"AE", _text(source_ae.strip()[:16])) if source_ae.strip() else b"",
        )
    )
    group_length = _element(0x0000, b"UL", struct.pack("<I", len(body)))
    return b"\x00" * 128 + b"DICM" + group_length + body


def _stop_at_pixels(tag: Any, vr: Any, length: int) -> bool:
    return int(tag) >= PIXEL_DATA


def parse_header(raw: bytes, transfer_syntax: UID | str) -> Dataset:
    """The dataset's elements before the pixel data, from the bytes as received."""
    ts = UID(transfer_syntax)
    fp: Any = BytesIO(raw)
    if ts.is_deflated:
        fp = BytesIO(zlib.decompress(raw, -zlib.MAX_WBITS))
    return read_dataset(fp, ts.is_implicit_VR, ts.is_little_endian, stop_when=_stop_at_pixels)


def header_text(header: Dataset, keyword: str) -> str:
    """A UID or short text element as a plain string ('' if absent), padding stripped."""
    return str(header.get(keyword, "") or "").strip().rstrip("\x00")


def acquisition_key(header: Dataset) -> str:
    """The acquisition this instance belongs to (fwmapping's rule), '' if it cannot tell."""
    try:
        return str(acquisition_uid(header))
    except Exception:  # noqa: BLE001 - the pipeline recomputes it from the file
        return ""


def series_description(header: Dataset) -> str:
    """SeriesDescription for the status page, '' if absent or undecodable."""
    try:
        return " ".join(str(header.get("SeriesDescription", "") or "").split())[:200]
    except Exception:  # noqa: BLE001 - a display field never fails a C-STORE
        return ""
