"""Read each file once, add dicom-send's private tag, keep everything else as it is.

A file is parsed once (that read also decides whether it is DICOM at all). Its data
elements stay raw (as read), so they are sent byte for byte; the private tag is the only
addition. Files up to 16 MB stay in memory and are sent from there (writing and reading
them back costs more than the send itself); larger ones are written as a tagged copy to
the work folder and sent from that file in chunks. The input is never modified.

A data set whose encoding disagrees with its File Meta (e.g. "Explicit VR Little Endian"
over an Implicit VR body, as some old exports write) is sent as what it really is.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

from fwmapping import NotDicomError, SentTag, add_sent_tag, read_dataset
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
)

log = logging.getLogger(__name__)

IN_MEMORY = 16 * 1024 * 1024  # files up to this size are tagged and sent from memory
DEFER = 1024 * 1024  # larger files: values above this stay on disk until written


class NotSendable(ValueError):
    """DICOM that cannot be sent (no SOP class/instance UID, no room for the tag)."""


@dataclass
class Prepared:
    """One tagged instance ready to send: in memory (``dataset``) or on disk (``path``)."""

    name: str
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    dataset: Dataset | None = None
    path: Path | None = None

    def release(self) -> None:
        """Drop the data once sent (or given up): memory freed, tagged copy removed."""
        self.dataset = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _head(source: bytes | Path) -> bytes:
    if isinstance(source, bytes):
        return source[:132]
    with source.open("rb") as handle:
        return handle.read(132)


def _uid(ds: Dataset, tag: int) -> str:
    """A UID read without converting the raw element (so it is written back as read)."""
    element = ds.get_item(tag)
    value = None if element is None else element.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value or "").strip(" \x00")


def body_encoding(ds: Dataset) -> tuple[bool, bool] | None:
    """(implicit VR, little endian) as the data set was really read, or None if unknown."""
    for key in ds.keys():  # noqa: SIM118 - iterating ds itself would convert raw elements
        element = ds.get_item(key)
        if isinstance(element, RawDataElement):
            return bool(element.is_implicit_VR), bool(element.is_little_endian)
    implicit, little = ds.original_encoding
    if implicit is None or little is None:
        return None
    return bool(implicit), bool(little)


def truncated(ds: Dataset) -> str | None:
    """Why the data set is cut short (an element holds fewer bytes than it declares)."""
    for key in ds.keys():  # noqa: SIM118 - iterating ds itself would convert raw elements
        element = ds.get_item(key)
        if not isinstance(element, RawDataElement) or element.length == 0xFFFFFFFF:
            continue
        if isinstance(element.value, bytes) and len(element.value) < element.length:
            return (
                f"truncated: element {element.tag} holds {len(element.value)} of its "
                f"{element.length} bytes"
            )
    return None


def _syntax_for(encoding: tuple[bool, bool]) -> UID:
    implicit, little = encoding
    if not little:
        return ExplicitVRBigEndian
    return ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian


def transfer_syntax(ds: Dataset, name: str) -> UID:
    """The syntax the data set is really in; its File Meta is corrected when it lies."""
    meta = ds.get("file_meta") or FileMetaDataset()
    declared = meta.get("TransferSyntaxUID")
    real = body_encoding(ds)
    if declared is not None and real is None:
        return UID(declared)
    if real is None:
        raise NotSendable(f"{name}: empty data set")
    if declared is None:
        return _syntax_for(real)
    declared = UID(declared)
    if declared.is_compressed or declared.is_deflated or not declared.is_transfer_syntax:
        return declared  # encapsulated and deflated data sets are explicit VR LE inside
    if (declared.is_implicit_VR, declared.is_little_endian) != real:
        actual = _syntax_for(real)
        log.warning(
            "%s: File Meta says %s but the data set is %s: sent as %s",
            name,
            declared.name,
            actual.name,
            actual.name,
        )
        return actual
    return declared


def prepare(
    source: bytes | Path, name: str, tag: SentTag, spill: Path | None = None
) -> Prepared | None:
    """Read ``source`` once and tag it; None when it is not DICOM to send (not DICOM, or a
    DICOMDIR). Files up to :data:`IN_MEMORY` stay in memory; larger ones are written
    tagged to ``spill`` and sent from there.

    Raises NotSendable (with the reason) for DICOM that cannot be sent.
    """
    data: bytes | None = None
    try:
        if isinstance(source, bytes):
            data = source
        elif source.stat().st_size <= IN_MEMORY:
            data = source.read_bytes()
        if data is not None:
            ds = read_dataset(io.BytesIO(data))
        else:
            assert isinstance(source, Path)
            ds = read_dataset(source, defer_size=DEFER)
    except NotDicomError as exc:
        head = data[:132] if data is not None else _head(source)
        if head[128:132] == b"DICM":  # DICOM by its preamble, but damaged: not sent, counted
            raise NotSendable(str(exc).replace(str(source), name)) from None
        return None
    meta = ds.get("file_meta") or FileMetaDataset()
    if _uid(meta, 0x00020002) == MediaStorageDirectoryStorage:
        return None  # a DICOMDIR indexes images; it is not one
    sop_class, sop_instance = _uid(ds, 0x00080016), _uid(ds, 0x00080018)
    if not sop_class or not sop_instance:
        raise NotSendable(f"{name}: no SOP Class/Instance UID")
    cut = truncated(ds)
    if cut:
        raise NotSendable(f"{name}: {cut}")
    syntax = transfer_syntax(ds, name)
    if not (syntax.is_compressed or syntax.is_deflated):
        ds.set_original_encoding(
            syntax.is_implicit_VR, syntax.is_little_endian, ds.original_character_set
        )
    meta.TransferSyntaxUID = syntax
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    if "ImplementationClassUID" not in meta:
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    try:
        add_sent_tag(ds, tag)
    except ValueError as exc:
        raise NotSendable(f"{name}: {exc}") from None
    item = Prepared(name, sop_class, sop_instance, str(syntax))
    if data is not None or spill is None:
        item.dataset = ds  # sent from memory: raw elements are copied, not re-encoded
        return item
    spill.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(spill, enforce_file_format=True)  # large: a tagged copy, sent in chunks
    item.path = spill
    return item


def convert(item: Prepared, syntax: str) -> Prepared:
    """The instance in an uncompressed ``syntax``, for a peer that refused its own syntax.

    Raises ValueError (with the reason) when the pixel data cannot be decompressed here.
    """
    ds = item.dataset if item.dataset is not None else read_dataset(item.path or Path())
    source_syntax = UID(ds.file_meta.TransferSyntaxUID)
    if source_syntax.is_compressed:
        try:
            ds.decompress(generate_instance_uid=False)  # the same image, not a new one
        except Exception as exc:  # pydicom raises by plugin; one clear reason is enough
            raise ValueError(
                f"peer refused {source_syntax.name} and it cannot be decompressed here: {exc}"
            ) from None
    target = UID(syntax)
    ds.file_meta.TransferSyntaxUID = target
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)  # re-encoded in the target syntax
    converted = read_dataset(io.BytesIO(buffer.getvalue()))
    return Prepared(item.name, item.sop_class, item.sop_instance, str(target), converted)
