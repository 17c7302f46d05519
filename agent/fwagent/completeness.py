"""Is an encoded dataset whole? Walks element headers and lengths, never decodes values.

A C-STORE whose dataset stops inside an element (e.g. Pixel Data shorter than its declared
length, a sequence or encapsulated pixel data without its delimiter) is not a whole image,
however well its header parses::

    reason = incomplete(raw, transfer_syntax)   # None when whole, else why not
    reason = incomplete_file(path, offset, transfer_syntax, scratch)   # same, from a file

Handles explicit and implicit VR, little and big endian, deflate, sequences and items of
defined and undefined length (PS3.5 7.5), encapsulated pixel data (PS3.5 A.4), and data
sent as implicit VR under an explicit VR transfer syntax (as pydicom tolerates).
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from pathlib import Path
from typing import Any

from pydicom.uid import UID

UNDEFINED = 0xFFFFFFFF
ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD
# explicit VR elements with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2)
LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())


class Incomplete(ValueError):
    """The dataset ends before an element, item or sequence it started."""


def incomplete(raw: bytes, transfer_syntax: str) -> str | None:
    """Why ``raw`` (a dataset as received, no File Meta) is not whole, or None if it is."""
    ts = UID(transfer_syntax)
    data = raw
    if ts.is_deflated:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            data = inflater.decompress(raw) + inflater.flush()
        except zlib.error as exc:
            return f"deflated dataset cannot be inflated: {exc}"
        if not inflater.eof:
            return "deflated dataset ends before its end-of-stream marker"
    return _walk(bytes(data), 0, ts.is_implicit_VR, ts.is_little_endian)


def incomplete_file(
    path: Path, offset: int, transfer_syntax: str, scratch: Path | None = None
) -> str | None:
    """:func:`incomplete` for the dataset at ``offset`` of the file ``path``, reading only
    element headers (the file is mapped, values are skipped, so memory stays flat whatever
    its size). A deflated dataset is inflated to ``scratch`` (a file path) first."""
    ts = UID(transfer_syntax)
    if ts.is_deflated:
        from .chunked import inflate

        if scratch is None:
            raise ValueError("a deflated dataset needs a scratch file")
        try:
            reason = inflate(path, offset, scratch)
            return reason or incomplete_file(scratch, 0, "1.2.840.10008.1.2.1")
        finally:
            scratch.unlink(missing_ok=True)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size <= offset:
            return None  # an empty dataset: nothing started, nothing cut short
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _walk(data, offset, ts.is_implicit_VR, ts.is_little_endian)


def _walk(data: Any, start: int, implicit: bool, little: bool) -> str | None:
    try:
        _Walker(data, implicit, little, start).walk()
    except Incomplete as exc:
        return str(exc)
    return None


class _Walker:
    """Walks ``data`` (bytes or a read-only mapped file) from ``start`` to its end."""

    def __init__(self, data: Any, implicit: bool, little: bool, start: int = 0) -> None:
        self.data = data
        self.start = start
        self.end = len(data)
        self.little = little
        self.implicit = implicit
        self.u16 = struct.Struct("<H" if little else ">H")
        self.u32 = struct.Struct("<I" if little else ">I")
        if not implicit and self.end - start >= 6 and not _is_vr(data[start + 4 : start + 6]):
            self.implicit = True  # implicit VR sent under an explicit VR syntax

    def walk(self) -> None:
        pos = self.elements(self.start, self.end, stop=None)
        rest = self.data[pos:]  # fewer than 8 bytes
        if rest.strip(b"\x00"):  # a few trailing NULs are padding, anything else is cut off
            raise Incomplete(f"dataset ends inside an element header at byte {pos - self.start}")

    def tag(self, pos: int) -> int:
        group = self.u16.unpack_from(self.data, pos)[0]
        element = self.u16.unpack_from(self.data, pos + 2)[0]
        return int((group << 16) | element)

    def elements(self, pos: int, end: int, stop: int | None) -> int:
        """Walk elements from ``pos`` up to ``end``; with ``stop`` (an item or sequence
        delimiter tag) until that delimiter, which must come. Returns where it ended."""
        while end - pos >= 8:
            tag = self.tag(pos)
            if stop is not None and tag == stop:
                return pos + 8
            if tag in (ITEM, ITEM_END, SEQUENCE_END):  # stray: a header with a 4-byte length
                length = self.u32.unpack_from(self.data, pos + 4)[0]
                pos += 8 + (length if tag == ITEM and length != UNDEFINED else 0)
                continue
            pos = self.element(pos, end, tag)
        if stop is not None:
            raise Incomplete(
                f"dataset ends before the delimiter of an item or sequence (byte {pos - self.start})"
            )
        return pos

    def element(self, pos: int, end: int, tag: int) -> int:
        vr = b""
        if self.implicit:
            length = self.u32.unpack_from(self.data, pos + 4)[0]
            value = pos + 8
        else:
            vr = self.data[pos + 4 : pos + 6]
            if vr in LONG_VRS:
                if end - pos < 12:
                    raise Incomplete(f"dataset ends inside the header of element {_tag(tag)}")
                length = self.u32.unpack_from(self.data, pos + 8)[0]
                value = pos + 12
            else:
                length = self.u16.unpack_from(self.data, pos + 6)[0]
                value = pos + 8
        if length != UNDEFINED:
            if value + length > end:
                raise Incomplete(
                    f"element {_tag(tag)} declares {length} bytes but only {end - value}"
                    " follow (truncated)"
                )
            return value + length
        # undefined length: a sequence, encapsulated pixel data, or UN holding a sequence
        # (whose content is implicit VR little endian, PS3.5 6.2.2)
        if vr == b"UN":
            implicit, self.implicit = self.implicit, True
            try:
                return self.items(value, end, tag)
            finally:
                self.implicit = implicit
        return self.items(value, end, tag)

    def items(self, pos: int, end: int, owner: int) -> int:
        while end - pos >= 8:
            tag = self.tag(pos)
            length = self.u32.unpack_from(self.data, pos + 4)[0]
            pos += 8
            if tag == SEQUENCE_END:
                return pos
            if tag != ITEM:
                raise Incomplete(
                    f"element {_tag(owner)}: expected an item at byte {pos - 8 - self.start}"
                )
            if length == UNDEFINED:
                pos = self.elements(pos, end, stop=ITEM_END)
            elif pos + length > end:
                raise Incomplete(
                    f"an item of {_tag(owner)} declares {length} bytes but only {end - pos}"
                    " follow (truncated)"
                )
            else:
                pos += length
        raise Incomplete(f"element {_tag(owner)} ends before its sequence delimiter (truncated)")


def _is_vr(raw: bytes) -> bool:
    return len(raw) == 2 and raw.isalpha() and raw.isupper()


def _tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
